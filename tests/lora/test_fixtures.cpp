// The whole model against PyTorch: logits, loss and every LoRA gradient for each fixture in
// ../shared/fixtures/models (tiny Llama, Qwen2, Qwen3, Llama-3 rope scaling, real stories260K).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "common.h"
#include "lora/lora.h"
#include "model/io/model_files.h"
#include "model/io/safetensors.h"
#include "optim/adamw.h"

using namespace hone;

namespace {

struct Fixture {
  std::string dir;
  nlohmann::json ref;
};

Fixture open_fixture(const std::string& name) {
  Fixture f;
  f.dir = test::shared_file("fixtures/models/" + name);
  if (f.dir.empty()) return f;
  std::ifstream in(f.dir + "/ref.json");
  f.ref = nlohmann::json::parse(in);
  return f;
}

LoraConfig lora_config_from(const nlohmann::json& ref) {
  LoraConfig c;
  c.rank = ref["lora"]["r"].get<int64_t>();
  c.alpha = ref["lora"]["lora_alpha"].get<double>();
  c.rslora = ref["lora"]["use_rslora"].get<bool>();
  c.dropout = ref["lora"]["dropout"].get<double>();
  c.targets = ref["lora"]["targets"].get<std::vector<std::string>>();
  return c;
}

// Copies lora_init.safetensors into the adapters; every fixture tensor must be used.
void load_lora(LoraAdapters& ad, const std::string& path) {
  SafetensorsFile f = read_safetensors(path);
  size_t used = 0;
  for (const LoraTensor& t : ad.tensors()) {
    for (auto [which, var] : {std::pair{'A', t.a}, std::pair{'B', t.b}}) {
      std::string name = LoraAdapters::peft_name(t.module, which);
      auto it = f.tensors.find(name);
      ASSERT_NE(it, f.tensors.end()) << name;
      ASSERT_EQ(it->second.shape(), var.shape()) << name;
      Tensor src = it->second.to(var.dtype());
      std::memcpy(var.value().raw(), src.raw(), src.nbytes());
      ++used;
    }
  }
  EXPECT_EQ(used, f.tensors.size());
}

// Inputs and next-token targets of batch `step` of a tokens tensor (steps?, B, S+1).
struct Tokens {
  std::vector<int32_t> ids, targets;
};
Tokens inputs_and_targets(const Tensor& tokens, int64_t step, int64_t batch, int64_t seq) {
  Tokens t;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t s = 0; s < seq; ++s) {
      const int64_t at = (step * batch + b) * (seq + 1) + s;
      t.ids.push_back(static_cast<int32_t>(tokens.item(at)));
      t.targets.push_back(static_cast<int32_t>(tokens.item(at + 1)));
    }
  return t;
}

// max |a - b| over the tensor.
double max_abs_diff(const Tensor& a, const Tensor& b) {
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(a.item(i) - b.item(i)));
  return m;
}

double max_abs(const Tensor& a) {
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(a.item(i)));
  return m;
}

class PyTorchFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(PyTorchFixture, LogitsLossAndLoraGradientsMatch) {
  Fixture fx = open_fixture(GetParam());
  if (fx.dir.empty()) GTEST_SKIP() << "../shared/fixtures/models/" << GetParam() << " not present";

  ModelFiles files = load_model_files(fx.dir);
  Transformer model(files.config, files.tensors);
  LoraAdapters adapters(model, lora_config_from(fx.ref));
  load_lora(adapters, fx.dir + "/lora_init.safetensors");
  ASSERT_FALSE(::testing::Test::HasFatalFailure());

  SafetensorsFile io = read_safetensors(fx.dir + "/io.safetensors");
  const Tensor& tokens = io.tensors.at("tokens");  // (B, S+1) int32
  const int64_t batch = tokens.dim(0), seq = tokens.dim(1) - 1;
  ASSERT_EQ(batch, fx.ref["batch"].get<int64_t>());
  ASSERT_EQ(seq, fx.ref["seq"].get<int64_t>());
  const auto [ids, targets] = inputs_and_targets(tokens, 0, batch, seq);

  Tape tape;
  Var logits = model.forward(&tape, ids, batch, seq);  // (B*S, V)
  const Tensor& ref_logits = io.tensors.at("logits");  // (B, S, V)
  ASSERT_EQ(logits.value().numel(), ref_logits.numel());
  EXPECT_LE(max_abs_diff(logits.value(), ref_logits), 1e-4);

  Var loss = cross_entropy(&tape, logits, targets);
  const double ref_loss = io.tensors.at("loss").item(0);
  EXPECT_NEAR(loss.value().item(0), ref_loss, 1e-5 * std::fabs(ref_loss));
  EXPECT_NEAR(ref_loss, fx.ref["losses"][0].get<double>(), 1e-6);

  adapters.zero_grad();
  tape.backward(loss);
  SafetensorsFile grads = read_safetensors(fx.dir + "/lora_grad.safetensors");
  size_t checked = 0;
  for (const LoraTensor& t : adapters.tensors()) {
    for (auto [which, var] : {std::pair{'A', t.a}, std::pair{'B', t.b}}) {
      std::string name = LoraAdapters::peft_name(t.module, which);
      auto it = grads.tensors.find(name);
      ASSERT_NE(it, grads.tensors.end()) << name;
      const double scale = max_abs(it->second);
      ASSERT_GT(scale, 0.0) << name;
      EXPECT_LE(max_abs_diff(var.grad(), it->second) / scale, 1e-4) << name;
      ++checked;
    }
  }
  EXPECT_EQ(checked, grads.tensors.size());
}

// Several AdamW steps (torch.optim.AdamW, constant lr, decoupled decay) on the fixture's token
// batches. Returns the worst max-abs difference to PyTorch's weights after the last step,
// relative to each tensor's max. The loss before every step must match within 1e-5 relative.
// `dtype` F32 is the production path (hone's AdamW); F64 runs the model in double with a
// plain-loop double AdamW, i.e. what exact arithmetic gives.
double run_trajectory(const Fixture& fx, DType dtype) {
  ModelFiles files = load_model_files(fx.dir);
  Transformer model(files.config, files.tensors, dtype);
  LoraAdapters adapters(model, lora_config_from(fx.ref));
  load_lora(adapters, fx.dir + "/lora_init.safetensors");
  const auto& o = fx.ref["optimizer"];
  AdamWConfig ac;
  ac.lr = o["lr"].get<double>();
  ac.beta1 = o["betas"][0].get<double>();
  ac.beta2 = o["betas"][1].get<double>();
  ac.eps = o["eps"].get<double>();
  ac.weight_decay = o["weight_decay"].get<double>();
  std::unique_ptr<AdamW> opt;
  if (dtype == DType::F32) opt = std::make_unique<AdamW>(adapters.values(), adapters.grads(), ac);
  const int64_t n = adapters.values().numel();
  std::vector<double> m(n, 0), v(n, 0);

  SafetensorsFile traj = read_safetensors(fx.dir + "/trajectory.safetensors");
  const Tensor& tokens = traj.tensors.at("tokens");  // (steps, B, S+1)
  const int64_t steps = tokens.dim(0), batch = tokens.dim(1), seq = tokens.dim(2) - 1;
  for (int64_t st = 0; st < steps; ++st) {
    const auto [ids, targets] = inputs_and_targets(tokens, st, batch, seq);
    Tape tape;
    adapters.zero_grad();
    Var loss = model.loss(&tape, ids, targets, batch, seq);
    const double ref = traj.tensors.at("losses").item(st);
    EXPECT_NEAR(loss.value().item(0), ref, 1e-5 * std::fabs(ref)) << "step " << st;
    tape.backward(loss);
    if (opt) {
      opt->step(ac.lr);
      continue;
    }
    double* p = adapters.values().data<double>();
    const double* g = adapters.grads().data<double>();
    const double t = static_cast<double>(st + 1);
    for (int64_t i = 0; i < n; ++i) {
      p[i] *= 1 - ac.lr * ac.weight_decay;
      m[i] = ac.beta1 * m[i] + (1 - ac.beta1) * g[i];
      v[i] = ac.beta2 * v[i] + (1 - ac.beta2) * g[i] * g[i];
      p[i] -= ac.lr / (1 - std::pow(ac.beta1, t)) * m[i] /
              (std::sqrt(v[i] / (1 - std::pow(ac.beta2, t))) + ac.eps);
    }
  }
  SafetensorsFile after = read_safetensors(fx.dir + "/lora_after.safetensors");
  double worst = 0;
  for (const LoraTensor& t : adapters.tensors())
    for (auto [which, var] : {std::pair{'A', t.a}, std::pair{'B', t.b}}) {
      const Tensor& ref = after.tensors.at(LoraAdapters::peft_name(t.module, which));
      worst = std::max(worst, max_abs_diff(var.value(), ref) / max_abs(ref));
    }
  return worst;
}

// hone's f32 LoRA gradients are as accurate as PyTorch's f32 ones, both measured against
// hone's f64 computation (measured: 7.6e-7 to 6.4e-6 of each tensor's max, PyTorch 7.8e-7 to
// 4.1e-6); and the f64 ones agree with PyTorch's to that precision.
TEST_P(PyTorchFixture, F32GradientsAreAsAccurateAsPyTorchs) {
  Fixture fx = open_fixture(GetParam());
  if (fx.dir.empty()) GTEST_SKIP() << "../shared/fixtures/models/" << GetParam() << " not present";
  ModelFiles files = load_model_files(fx.dir);
  SafetensorsFile io = read_safetensors(fx.dir + "/io.safetensors");
  const Tensor& tokens = io.tensors.at("tokens");
  const int64_t batch = tokens.dim(0), seq = tokens.dim(1) - 1;
  const auto [ids, targets] = inputs_and_targets(tokens, 0, batch, seq);
  std::map<std::string, Tensor> grads[2];
  for (int k = 0; k < 2; ++k) {
    Transformer model(files.config, files.tensors, k ? DType::F64 : DType::F32);
    LoraAdapters ad(model, lora_config_from(fx.ref));
    load_lora(ad, fx.dir + "/lora_init.safetensors");
    Tape tape;
    tape.backward(model.loss(&tape, ids, targets, batch, seq));
    for (const LoraTensor& t : ad.tensors()) {
      grads[k][LoraAdapters::peft_name(t.module, 'A')] = t.a.grad().clone();
      grads[k][LoraAdapters::peft_name(t.module, 'B')] = t.b.grad().clone();
    }
  }
  SafetensorsFile torch = read_safetensors(fx.dir + "/lora_grad.safetensors");
  double ours = 0, theirs = 0;
  for (const auto& [name, exact] : grads[1]) {
    const double scale = max_abs(exact);
    ours = std::max(ours, max_abs_diff(grads[0].at(name), exact) / scale);
    theirs = std::max(theirs, max_abs_diff(torch.tensors.at(name), exact) / scale);
  }
  std::cout << GetParam() << ": f32 gradient error vs f64: hone " << ours << ", PyTorch " << theirs
            << "\n";
  EXPECT_LE(theirs, 1e-5);      // f64 agrees with PyTorch to f32 precision
  EXPECT_LE(ours, 2 * theirs);  // and hone's f32 is as close to exact as PyTorch's f32
}

// Tolerances on the weights after the AdamW steps (max-abs difference / tensor max-abs), from
// measurements. The fixture README suggests 1e-5. Exact (f64) arithmetic meets it on every
// fixture but tiny-qwen3; f32 lands within 3e-5, because two independent f32 computations
// (ours and PyTorch's, whose gradients we measured to be equally far, ~1e-6 of the max, from
// the f64 ones) drift apart about twice as fast as one does from exact. tiny-qwen3 has a
// parameter whose first gradient, -3.9e-8, is within PyTorch's own f32 rounding of Adam's
// eps (1e-8): there m/(sqrt(v)+eps) is rounding noise scaled to a full step, and even f64 lands
// 4.6e-4 from PyTorch (f32: 1.2e-3).
struct TrajectoryBar {
  double f32, f64;
};
TrajectoryBar trajectory_bar(const std::string& name) {
  if (name == "tiny-qwen3") return {2e-3, 1e-3};
  return {3e-5, 1e-5};
}

TEST_P(PyTorchFixture, AdamWTrajectoryMatches) {
  Fixture fx = open_fixture(GetParam());
  if (fx.dir.empty()) GTEST_SKIP() << "../shared/fixtures/models/" << GetParam() << " not present";
  const double worst = run_trajectory(fx, DType::F32);
  std::cout << GetParam() << ": f32 weights after AdamW within " << worst << " of PyTorch\n";
  EXPECT_LE(worst, trajectory_bar(GetParam()).f32);
}

TEST_P(PyTorchFixture, AdamWTrajectoryInF64MatchesToPyTorchsPrecision) {
  Fixture fx = open_fixture(GetParam());
  if (fx.dir.empty()) GTEST_SKIP() << "../shared/fixtures/models/" << GetParam() << " not present";
  const double worst = run_trajectory(fx, DType::F64);
  std::cout << GetParam() << ": f64 weights after AdamW within " << worst << " of PyTorch\n";
  EXPECT_LE(worst, trajectory_bar(GetParam()).f64);
}

INSTANTIATE_TEST_SUITE_P(Models, PyTorchFixture,
                         ::testing::Values("tiny-llama", "tiny-qwen2", "tiny-qwen3", "tiny-llama3",
                                           "stories260K"),
                         [](const auto& p) {
                           std::string n = p.param;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

}  // namespace
