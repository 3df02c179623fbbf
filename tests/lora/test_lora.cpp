#include <gtest/gtest.h>

#include <cmath>

#include "lora/lora.h"
#include "model/random_weights.h"
#include "tiny_model.h"

using namespace hone;

namespace {

ModelConfig tiny_config() {
  return test::tiny_model({.intermediate = 48, .layers = 3, .vocab = 40});
}

std::vector<int32_t> some_ids(size_t n, int32_t vocab) {
  std::vector<int32_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>((i * 7 + 3) % vocab);
  return ids;
}

TEST(Lora, FreshAdapterLeavesTheModelUnchanged) {
  ModelConfig cfg = tiny_config();
  auto w = random_weights(cfg, 1);
  Transformer base(cfg, w);
  Transformer adapted(cfg, w);
  LoraConfig lc;
  lc.targets = {"all-linear"};
  LoraAdapters ad(adapted, lc);
  auto ids = some_ids(10, 40);
  Tensor a = base.forward(nullptr, ids, 2, 5).value();
  Tensor b = adapted.forward(nullptr, ids, 2, 5).value();
  for (int64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(a.item(i), b.item(i));
  // A is Kaiming-uniform(a=√5): U(-1/√in, 1/√in), not all zero; B is zero.
  for (const auto& t : ad.tensors()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(t.a.shape()[1]));
    double maxa = 0;
    for (int64_t i = 0; i < t.a.value().numel(); ++i) {
      maxa = std::max(maxa, std::fabs(t.a.value().item(i)));
      ASSERT_LE(std::fabs(t.a.value().item(i)), bound);
    }
    EXPECT_GT(maxa, bound * 0.5);
    for (int64_t i = 0; i < t.b.value().numel(); ++i) ASSERT_EQ(t.b.value().item(i), 0.0);
  }
}

TEST(Lora, TargetsLayersAndShapes) {
  ModelConfig cfg = tiny_config();
  Transformer m(cfg, random_weights(cfg, 2));
  LoraConfig lc;
  lc.rank = 3;
  lc.targets = {"q_proj", "down_proj"};
  lc.layers = {0, 2};
  LoraAdapters ad(m, lc);
  ASSERT_EQ(ad.tensors().size(), 4u);
  EXPECT_EQ(ad.tensors()[0].module, "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(ad.tensors()[1].module, "model.layers.0.mlp.down_proj");
  EXPECT_EQ(ad.tensors()[2].module, "model.layers.2.self_attn.q_proj");
  EXPECT_EQ(ad.tensors()[0].a.shape(), (Shape{3, 32}));
  EXPECT_EQ(ad.tensors()[0].b.shape(), (Shape{32, 3}));
  EXPECT_EQ(ad.tensors()[1].a.shape(), (Shape{3, 48}));
  EXPECT_EQ(ad.num_parameters(), 2 * (3 * 64) + 2 * (3 * 48 + 32 * 3));
  EXPECT_EQ(LoraAdapters::peft_name(ad.tensors()[0].module, 'A'),
            "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
}

TEST(Lora, Scaling) {
  LoraConfig lc;
  lc.rank = 16;
  lc.alpha = 32;
  EXPECT_DOUBLE_EQ(lc.scaling(), 2.0);
  lc.rslora = true;
  EXPECT_DOUBLE_EQ(lc.scaling(), 8.0);
}

TEST(Lora, BadConfigsAreNamed) {
  ModelConfig cfg = tiny_config();
  Transformer m(cfg, random_weights(cfg, 3));
  LoraConfig lc;
  lc.targets = {"qproj"};
  try {
    LoraAdapters ad(m, lc);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lora.targets: unknown target \"qproj\""),
              std::string::npos);
  }
  lc.targets = {"q_proj"};
  lc.rank = 0;
  EXPECT_THROW(LoraAdapters(m, lc), Error);
  lc.rank = 4;
  lc.layers = {3};
  EXPECT_THROW(LoraAdapters(m, lc), Error);
}

TEST(Lora, OnlyAdaptersGetGradients) {
  ModelConfig cfg = tiny_config();
  Transformer m(cfg, random_weights(cfg, 4));
  LoraConfig lc;
  lc.targets = {"all-linear"};
  lc.dropout = 0.1;
  LoraAdapters ad(m, lc);
  // Make B non-zero so every gradient flows.
  float* v = ad.values().data<float>();
  for (int64_t i = 0; i < ad.values().numel(); ++i) v[i] = 0.01f * static_cast<float>(i % 7);
  auto ids = some_ids(12, 40);
  auto targets = some_ids(12, 40);
  Tape tape;
  Var loss = m.loss(&tape, ids, targets, 2, 6);
  tape.backward(loss);
  double gsum = 0;
  for (int64_t i = 0; i < ad.grads().numel(); ++i) gsum += std::fabs(ad.grads().item(i));
  EXPECT_GT(gsum, 0.0);
  for (auto& nl : m.linears()) {
    EXPECT_FALSE((*nl.slot)->weight().has_grad()) << nl.name;
    EXPECT_FALSE((*nl.slot)->weight().requires_grad()) << nl.name;
  }
  for (const Block& b : m.blocks()) EXPECT_FALSE(b.input_norm.has_grad());
}

TEST(Lora, BaseInBf16StaysCloseToF32) {
  ModelConfig cfg = tiny_config();
  auto w = random_weights(cfg, 5);
  Transformer f32(cfg, w, DType::F32);
  Transformer bf16(cfg, w, DType::BF16);
  auto ids = some_ids(8, 40);
  Tensor a = f32.forward(nullptr, ids, 1, 8).value();
  Tensor b = bf16.forward(nullptr, ids, 1, 8).value();
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(a.item(i) - b.item(i)));
  EXPECT_GT(m, 0.0);   // really a different storage
  EXPECT_LT(m, 0.05);  // bf16 keeps ~3 significant digits
}

}  // namespace
