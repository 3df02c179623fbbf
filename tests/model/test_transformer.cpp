#include <gtest/gtest.h>

#include <cmath>

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

}  // namespace
