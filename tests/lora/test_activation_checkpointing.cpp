// Activation checkpointing recomputes each block in backward: the loss, every LoRA gradient and
// the dropout generator's state afterwards must be bitwise those of the ordinary tape, with
// dropout on (the recompute must replay the same masks) and with packed segments.
#include <gtest/gtest.h>

#include <cstring>

#include "lora/lora.h"
#include "model/random_weights.h"
#include "tiny_model.h"

using namespace hone;

namespace {

ModelConfig tiny(bool qwen3_like) {
  ModelConfig cfg = test::tiny_model({.layers = 3});
  cfg.attention_bias = qwen3_like;
  cfg.qk_norm = qwen3_like;
  return cfg;
}

struct StepResult {
  float loss = 0;
  Tensor grads;
  uint64_t rng_after = 0;
  size_t tape_nodes = 0;
};

// Two steps (so the second starts from the generator state the first left), returns the second.
StepResult two_steps(const ModelConfig& cfg, bool checkpointing, double dropout, bool packed,
                     DType weights, bool dora = false) {
  Transformer model(cfg, random_weights(cfg, 5), weights);
  model.set_activation_checkpointing(checkpointing);
  LoraConfig lc;
  lc.rank = 4;
  lc.dropout = dropout;
  lc.targets = {"all-linear"};
  lc.layers = {0, 2};  // block 1 has no adapter: its recompute still carries the gradient through
  lc.dora = dora;
  LoraAdapters ad(model, lc);
  Rng r(11);
  float* v = ad.values().data<float>();
  for (int64_t i = 0; i < ad.values().numel(); ++i) v[i] = static_cast<float>(r.normal() * 0.2);
  const int64_t B = 2, T = 13;
  std::vector<int32_t> ids(B * T), tg(B * T), starts(B * T);
  for (auto& x : ids) x = static_cast<int32_t>(r.next_u64() % cfg.vocab_size);
  for (auto& x : tg) x = static_cast<int32_t>(r.next_u64() % cfg.vocab_size);
  tg[3] = -100;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) starts[b * T + t] = t < 5 ? 0 : 5;
  StepResult res;
  for (int step = 0; step < 2; ++step) {
    Tape tape;
    ad.zero_grad();
    Var l = model.loss(&tape, ids, tg, B, T, packed ? &starts : nullptr);
    res.tape_nodes = tape.size();
    tape.backward(l);
    res.loss = l.value().data<float>()[0];
  }
  res.grads = ad.grads().clone();
  res.rng_after = ad.dropout_rng().state();
  return res;
}

void expect_bitwise(const StepResult& a, const StepResult& b) {
  EXPECT_EQ(std::memcmp(&a.loss, &b.loss, sizeof(float)), 0) << a.loss << " vs " << b.loss;
  ASSERT_EQ(a.grads.numel(), b.grads.numel());
  int64_t differ = 0, nonzero = 0;
  for (int64_t i = 0; i < a.grads.numel(); ++i) {
    const float x = a.grads.data<float>()[i], y = b.grads.data<float>()[i];
    if (std::memcmp(&x, &y, sizeof(float)) != 0) ++differ;
    if (x != 0.0f) ++nonzero;
  }
  EXPECT_EQ(differ, 0) << "of " << a.grads.numel() << " gradient elements";
  EXPECT_GT(nonzero, a.grads.numel() / 2);  // the gradients are real, not all zero
  EXPECT_EQ(a.rng_after, b.rng_after);
}

TEST(ActivationCheckpointing, SameLossAndGradientsBitwise) {
  for (bool qwen3 : {false, true})
    for (bool packed : {false, true}) {
      SCOPED_TRACE(std::string(qwen3 ? "qk-norm+bias" : "llama") + (packed ? ", packed" : ""));
      const ModelConfig cfg = tiny(qwen3);
      StepResult plain = two_steps(cfg, false, 0.0, packed, DType::F32);
      StepResult ckpt = two_steps(cfg, true, 0.0, packed, DType::F32);
      expect_bitwise(plain, ckpt);
      // One tape node per block instead of every op of it.
      EXPECT_LT(ckpt.tape_nodes, plain.tape_nodes / 3);
    }
}

TEST(ActivationCheckpointing, ReplaysDropoutMasks) {
  const ModelConfig cfg = tiny(false);
  StepResult plain = two_steps(cfg, false, 0.3, false, DType::F32);
  StepResult ckpt = two_steps(cfg, true, 0.3, false, DType::F32);
  expect_bitwise(plain, ckpt);
  // Dropout really drew: without it the gradients differ.
  StepResult no_dropout = two_steps(cfg, false, 0.0, false, DType::F32);
  EXPECT_NE(std::memcmp(no_dropout.grads.raw(), plain.grads.raw(), plain.grads.nbytes()), 0);
}

TEST(ActivationCheckpointing, QuantizedBase) {
  ModelConfig cfg = tiny(false);
  cfg.intermediate_size = 96;  // rows of 32-blocks everywhere
  StepResult plain = two_steps(cfg, false, 0.0, false, DType::Q4_0);
  StepResult ckpt = two_steps(cfg, true, 0.0, false, DType::Q4_0);
  expect_bitwise(plain, ckpt);
}

// DoRA's op recomputes its weight norm in the replay: the same loss, gradients (m's too) and
// dropout state, with a float and a quantized base.
TEST(ActivationCheckpointing, Dora) {
  ModelConfig cfg = tiny(false);
  cfg.intermediate_size = 96;
  for (DType d : {DType::F32, DType::Q4_0}) {
    SCOPED_TRACE(dtype_name(d));
    StepResult plain = two_steps(cfg, false, 0.3, false, d, true);
    StepResult ckpt = two_steps(cfg, true, 0.3, false, d, true);
    expect_bitwise(plain, ckpt);
    StepResult lora = two_steps(cfg, false, 0.3, false, d, false);
    EXPECT_GT(plain.grads.numel(), lora.grads.numel());  // the magnitudes
  }
}

TEST(ActivationCheckpointing, InferenceIgnoresIt) {
  const ModelConfig cfg = tiny(false);
  Transformer model(cfg, random_weights(cfg, 5));
  std::vector<int32_t> ids = {1, 2, 3, 4, 5};
  Var a = model.forward(nullptr, ids, 1, 5);
  model.set_activation_checkpointing(true);
  Var b = model.forward(nullptr, ids, 1, 5);
  EXPECT_EQ(std::memcmp(a.value().raw(), b.value().raw(), a.value().nbytes()), 0);
}

}  // namespace
