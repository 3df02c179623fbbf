// hone's DoRA against an independent PyTorch implementation of PEFT's definition
// (tests/lora/fixtures/dora_reference.py, whose output is committed in fixtures/dora/): logits,
// loss and the gradients of every A, B and magnitude m of a tiny Llama with DoRA on all seven
// projections. The tolerances are the LoRA fixtures' (test_fixtures.cpp): logits within 1e-4,
// loss within 1e-5 relative, each gradient within 1e-4 of its tensor's largest entry, and hone's
// f32 gradients as close to the exact (f64) ones as PyTorch's f32 gradients are, within twice.
// In f64 both sides are exact to ~1e-15, so there they must agree to 1e-10.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "lora/lora.h"
#include "lora/peft.h"
#include "model/io/model_files.h"
#include "model/io/safetensors.h"

using namespace hone;

namespace {

const std::string kDir = std::string(HONE_SOURCE_DIR) + "/tests/lora/fixtures/dora";

LoraConfig fixture_config() {
  const nlohmann::json ref = nlohmann::json::parse(std::ifstream(kDir + "/ref.json"));
  LoraConfig c;
  c.rank = ref["r"].get<int64_t>();
  c.alpha = ref["lora_alpha"].get<double>();
  c.targets = ref["targets"].get<std::vector<std::string>>();
  c.dora = true;
  return c;
}

struct Result {
  Tensor logits;
  double loss = 0;
  std::map<std::string, Tensor> grads;  // by PEFT name
};

Result run_hone(DType dtype) {
  ModelFiles files = load_model_files(kDir);
  Transformer model(files.config, files.tensors, dtype);
  LoraAdapters ad(model, fixture_config());
  load_peft_weights(ad, kDir + "/adapter.safetensors");
  SafetensorsFile ref = read_safetensors(kDir + "/ref.safetensors");
  const Tensor& tokens = ref.tensors.at("tokens");  // (B, S+1)
  const int64_t batch = tokens.dim(0), seq = tokens.dim(1) - 1;
  std::vector<int32_t> ids, targets;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t s = 0; s < seq; ++s) {
      ids.push_back(static_cast<int32_t>(tokens.item(b * (seq + 1) + s)));
      targets.push_back(static_cast<int32_t>(tokens.item(b * (seq + 1) + s + 1)));
    }
  Tape tape;
  Var logits = model.forward(&tape, ids, batch, seq);
  Var loss = cross_entropy(&tape, logits, targets);
  tape.backward(loss);
  Result r;
  r.logits = logits.value().clone();
  r.loss = loss.value().item(0);
  for (const LoraTensor& t : ad.tensors()) {
    r.grads[LoraAdapters::peft_name(t.module, 'A')] = t.a.grad().clone();
    r.grads[LoraAdapters::peft_name(t.module, 'B')] = t.b.grad().clone();
    r.grads[LoraAdapters::peft_name(t.module, 'm')] = t.m.grad().clone();
  }
  return r;
}

double max_abs(const Tensor& a) {
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::abs(a.item(i)));
  return m;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.numel(), b.numel());
  double m = 0;
  for (int64_t i = 0; i < std::min(a.numel(), b.numel()); ++i)
    m = std::max(m, std::abs(a.item(i) - b.item(i)));
  return m;
}

TEST(DoraFixture, LogitsLossAndGradientsMatchPyTorch) {
  SafetensorsFile ref = read_safetensors(kDir + "/ref.safetensors");
  const Tensor& logits = ref.tensors.at("logits");
  const double loss = ref.tensors.at("loss").item(0);
  const Result exact = run_hone(DType::F64);
  const Result f32 = run_hone(DType::F32);
  const double scale = max_abs(logits);
  EXPECT_LE(max_abs_diff(exact.logits, logits), 1e-10 * scale);
  EXPECT_NEAR(exact.loss, loss, 1e-12 * loss);
  EXPECT_LE(max_abs_diff(f32.logits, logits), 1e-4);
  EXPECT_NEAR(f32.loss, loss, 1e-5 * loss);

  ASSERT_EQ(exact.grads.size(), 3 * 14u);  // A, B, m of 7 projections in 2 layers
  double ours = 0, theirs = 0;
  int magnitudes = 0;
  for (const auto& [name, g] : exact.grads) {
    SCOPED_TRACE(name);
    const Tensor& want = ref.tensors.at("grad64/" + name);
    const Tensor& torch32 = ref.tensors.at("grad32/" + name);
    const double s = max_abs(want);
    ASSERT_GT(s, 0.0);
    EXPECT_LE(max_abs_diff(g, want), 1e-10 * s);
    EXPECT_LE(max_abs_diff(f32.grads.at(name), want), 1e-4 * s);
    ours = std::max(ours, max_abs_diff(f32.grads.at(name), want) / s);
    theirs = std::max(theirs, max_abs_diff(torch32, want) / s);
    magnitudes += name.ends_with("lora_magnitude_vector");
  }
  EXPECT_EQ(magnitudes, 14);
  std::cout << "DoRA f32 gradient error vs exact: hone " << ours << ", PyTorch " << theirs << "\n";
  EXPECT_LE(theirs, 1e-5);
  EXPECT_LE(ours, 2 * theirs);
}

}  // namespace
