#include "optim/optimizer.h"

#include <cmath>
#include <sstream>

#include "optim/adamw.h"
#include "optim/sgd.h"

namespace hone {

namespace {

void check_range(std::vector<std::string>& problems, const char* key, double v, double lo,
                 double hi, bool hi_open) {
  const bool ok = std::isfinite(v) && v >= lo && (hi_open ? v < hi : v <= hi);
  if (ok) return;
  std::ostringstream s;
  s << key << ": must be in [" << lo << ", " << hi << (hi_open ? ")" : "]") << " (got " << v << ")";
  problems.push_back(s.str());
}

}  // namespace

std::unique_ptr<Optimizer> make_optimizer(const std::string& name, Tensor params, Tensor grads,
                                          const OptimizerConfig& cfg) {
  std::vector<std::string> problems;
  const double inf = HUGE_VAL;
  if (name == "adamw") {
    check_range(problems, "beta1", cfg.beta1, 0.0, 1.0, true);
    check_range(problems, "beta2", cfg.beta2, 0.0, 1.0, true);
    check_range(problems, "eps", cfg.eps, 0.0, inf, true);
    check_range(problems, "weight_decay", cfg.weight_decay, 0.0, inf, true);
  } else if (name == "sgd") {
    check_range(problems, "weight_decay", cfg.weight_decay, 0.0, inf, true);
    check_range(problems, "momentum", cfg.momentum, 0.0, inf, true);
    check_range(problems, "dampening", cfg.dampening, 0.0, 1.0, false);
    if (cfg.nesterov && (cfg.momentum <= 0.0 || cfg.dampening != 0.0))
      problems.push_back("nesterov: needs momentum > 0 and dampening == 0");
  } else {
    throw Error("optimizer: unknown name '" + name + "' (known: adamw, sgd)");
  }
  if (!problems.empty()) {
    std::string msg = "optimizer " + name + ":";
    for (const auto& p : problems) msg += "\n  " + p;
    throw Error(msg);
  }
  if (name == "adamw") {
    AdamWConfig a;
    a.lr = cfg.lr;
    a.beta1 = cfg.beta1;
    a.beta2 = cfg.beta2;
    a.eps = cfg.eps;
    a.weight_decay = cfg.weight_decay;
    return std::make_unique<AdamW>(std::move(params), std::move(grads), a);
  }
  return std::make_unique<SGD>(std::move(params), std::move(grads), cfg);
}

Tensor step_tensor(int64_t step) {
  Tensor t = Tensor::empty(DType::I64, {1});
  t.data<int64_t>()[0] = step;
  return t;
}

int64_t check_optimizer_state(const std::string& who, const std::map<std::string, Tensor>& state,
                              const std::vector<std::string>& moments, const Shape& arena) {
  std::vector<std::string> expected = moments;
  expected.push_back("step");
  std::string missing, unexpected;
  for (const auto& n : expected)
    if (!state.count(n)) missing += (missing.empty() ? "'" : ", '") + n + "'";
  for (const auto& [n, t] : state) {
    bool known = false;
    for (const auto& e : expected) known = known || e == n;
    if (!known) unexpected += (unexpected.empty() ? "'" : ", '") + n + "'";
  }
  if (!missing.empty() || !unexpected.empty()) {
    std::string msg = who + ":";
    if (!missing.empty()) msg += " missing " + missing;
    if (!unexpected.empty()) msg += (missing.empty() ? " " : "; ") + ("unexpected " + unexpected);
    throw Error(msg);
  }
  for (const auto& n : moments) {
    const Tensor& t = state.at(n);
    if (!t.defined() || t.dtype() != DType::F32)
      throw Error(who + ": " + n + ": dtype must be F32 (got " +
                  (t.defined() ? dtype_name(t.dtype()) : "undefined") + ")");
    if (t.shape() != arena)
      throw Error(who + ": " + n + ": shape " + shape_str(t.shape()) +
                  " does not match the parameter arena " + shape_str(arena));
  }
  const Tensor& s = state.at("step");
  if (!s.defined() || s.dtype() != DType::I64 || s.numel() != 1)
    throw Error(who + ": step: must be a 1-element I64 tensor (got " +
                (s.defined() ? std::string(dtype_name(s.dtype())) + " " + shape_str(s.shape())
                             : std::string("undefined")) +
                ")");
  const int64_t step = s.data<int64_t>()[0];
  if (step < 0) throw Error(who + ": step: must be >= 0 (got " + std::to_string(step) + ")");
  return step;
}

}  // namespace hone
