#include "optim/sgd.h"

#include <tbb/parallel_for.h>

#include <cstring>

namespace hone {

SGD::SGD(Tensor params, Tensor grads, const OptimizerConfig& cfg)
    : p_(std::move(params)), g_(std::move(grads)), cfg_(cfg) {
  if (p_.dtype() != DType::F32 || g_.dtype() != DType::F32 || p_.shape() != g_.shape())
    throw Error("SGD: parameters and gradients must be F32 arenas of the same shape");
  if (cfg_.nesterov && (cfg_.momentum <= 0.0 || cfg_.dampening != 0.0))
    throw Error("SGD: nesterov needs momentum > 0 and dampening == 0");
  if (cfg_.momentum != 0.0) b_ = Tensor::zeros(DType::F32, p_.shape());
}

void SGD::step(double lr) {
  const float wd = static_cast<float>(cfg_.weight_decay);
  const float mom = static_cast<float>(cfg_.momentum);
  const float keep = static_cast<float>(1.0 - cfg_.dampening);
  const float lr_f = static_cast<float>(lr);
  const bool use_momentum = cfg_.momentum != 0.0, first = t_ == 0, nesterov = cfg_.nesterov;
  float* p = p_.data<float>();
  const float* g = g_.data<float>();
  float* b = use_momentum ? b_.data<float>() : nullptr;
  // Elementwise and independent: any partition gives bitwise the same result.
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, p_.numel(), 1 << 14),
                    [&](const tbb::blocked_range<int64_t>& r) {
                      for (int64_t i = r.begin(); i < r.end(); ++i) {
                        float d = g[i];
                        if (wd != 0.0f) d += wd * p[i];
                        if (use_momentum) {
                          // torch: the buffer is a copy of the gradient on its first update.
                          b[i] = first ? d : mom * b[i] + keep * d;
                          d = nesterov ? d + mom * b[i] : b[i];
                        }
                        p[i] -= lr_f * d;
                      }
                    });
  ++t_;
}

std::map<std::string, Tensor> SGD::state() const {
  std::map<std::string, Tensor> s{{"step", step_tensor(t_)}};
  if (b_.defined()) s["momentum_buffer"] = b_.clone();
  return s;
}

void SGD::load_state(const std::map<std::string, Tensor>& state) {
  const bool use_momentum = b_.defined();
  const int64_t t = check_optimizer_state(
      "SGD.load_state", state,
      use_momentum ? std::vector<std::string>{"momentum_buffer"} : std::vector<std::string>{},
      p_.shape());
  if (use_momentum) std::memcpy(b_.raw(), state.at("momentum_buffer").raw(), b_.nbytes());
  t_ = t;
}

}  // namespace hone
