#include <gtest/gtest.h>

#include <cmath>

#include "autograd/kernels/bf16_gemm.h"
#include "model/random_weights.h"
#include "model/transformer.h"

using namespace hone;

namespace {

ModelConfig qwen3ish() {
  ModelConfig c;
  c.model_type = "qwen3";
  c.hidden_size = 24;
  c.intermediate_size = 40;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 8;  // explicit, != hidden / heads
  c.vocab_size = 30;
  c.max_position_embeddings = 32;
  c.qk_norm = true;
  c.attention_bias = true;
  c.tie_word_embeddings = true;
  c.rope_theta = 1e6;
  return c;
}

// Generation feeds the prompt at once, then one token at a time through the KV cache; every
// step's logits must equal the full causal forward's logits at that position.
TEST(Transformer, KvCacheMatchesFullForward) {
  ModelConfig cfg = qwen3ish();
  Transformer m(cfg, random_weights(cfg, 9));
  std::vector<int32_t> ids = {1, 5, 9, 2, 29, 0, 17, 3, 3, 11};
  Tensor full = m.forward(nullptr, ids, 1, static_cast<int64_t>(ids.size())).value();  // (T, V)
  KVCache cache = m.make_cache(16);
  std::vector<int32_t> prompt(ids.begin(), ids.begin() + 4);
  Tensor first = m.forward_cached(cache, prompt);  // (4, V)
  for (int64_t i = 0; i < first.numel(); ++i) ASSERT_NEAR(first.item(i), full.item(i), 1e-5);
  for (size_t t = 4; t < ids.size(); ++t) {
    Tensor step = m.forward_cached(cache, {ids[t]});  // (1, V)
    for (int64_t v = 0; v < cfg.vocab_size; ++v)
      ASSERT_NEAR(step.item(v), full.item(static_cast<int64_t>(t) * cfg.vocab_size + v), 1e-5)
          << "position " << t;
  }
  EXPECT_EQ(cache.len, static_cast<int64_t>(ids.size()));
  EXPECT_THROW(m.forward_cached(cache, std::vector<int32_t>(7, 1)), Error);  // over capacity
}

TEST(Transformer, RowsOfABatchAreIndependent) {
  ModelConfig cfg = qwen3ish();
  Transformer m(cfg, random_weights(cfg, 10));
  std::vector<int32_t> a = {4, 8, 15, 16, 23}, b = {1, 2, 3, 4, 5};
  std::vector<int32_t> ab = a;
  ab.insert(ab.end(), b.begin(), b.end());
  Tensor la = m.forward(nullptr, a, 1, 5).value();
  Tensor lab = m.forward(nullptr, ab, 2, 5).value();
  for (int64_t i = 0; i < la.numel(); ++i) ASSERT_NEAR(la.item(i), lab.item(i), 1e-5);
}

TEST(Transformer, RejectsOutOfVocabularyIds) {
  ModelConfig cfg = qwen3ish();
  Transformer m(cfg, random_weights(cfg, 11));
  EXPECT_THROW(m.forward(nullptr, {1, 30}, 1, 2), Error);
  EXPECT_THROW(m.forward(nullptr, {1, 2, 3}, 1, 2), Error);
}

// Under bf16 products an f32 base's projections are held as bf16 (the products round them to
// bf16 anyway), the embedding stays f32 and is looked up unrounded, and the logits stay those
// of the f32-stored model up to the order of the f32 sums.
TEST(Transformer, Bf16ProductsHoldF32ProjectionsAsBf16) {
  if (!kernels::bf16_gemm_available()) GTEST_SKIP() << kernels::bf16_gemm_info();
  for (bool tied : {true, false}) {
    ModelConfig cfg = qwen3ish();
    cfg.tie_word_embeddings = tied;
    const auto weights = random_weights(cfg, 12);
    Transformer f32_stored(cfg, weights);  // built with f32 products: stored as given
    kernels::ScopedBf16Products bf16(true);
    Transformer m(cfg, weights);
    for (const NamedLinear& l : m.linears())
      EXPECT_EQ((*l.slot)->weight().dtype(), DType::BF16) << l.name;
    for (const NamedLinear& l : f32_stored.linears())
      EXPECT_EQ((*l.slot)->weight().dtype(), DType::F32) << l.name;
    // Only the projections and an untied head went from 4 bytes an element to 2: embedding,
    // norms and biases are as before.
    size_t converted = tied ? 0 : static_cast<size_t>(cfg.vocab_size * cfg.hidden_size);
    for (const NamedLinear& l : m.linears())
      converted += static_cast<size_t>((*l.slot)->weight().value().numel());
    EXPECT_EQ(f32_stored.nbytes() - m.nbytes(), 2 * converted) << "tied " << tied;
    const std::vector<int32_t> ids = {4, 8, 15, 16, 23, 2};
    Tape t1, t2;
    const Tensor e0 = f32_stored.embed(&t1, ids, 1, 6).value(),
                 e1 = m.embed(&t2, ids, 1, 6).value();
    for (int64_t i = 0; i < e0.numel(); ++i) ASSERT_EQ(e0.item(i), e1.item(i));
    const Tensor l0 = f32_stored.forward(nullptr, ids, 1, 6).value();
    const Tensor l1 = m.forward(nullptr, ids, 1, 6).value();
    for (int64_t i = 0; i < l0.numel(); ++i)
      ASSERT_NEAR(l0.item(i), l1.item(i), 1e-4 * (1 + std::fabs(l0.item(i)))) << i;
  }
}

}  // namespace
