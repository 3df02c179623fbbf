// The small Llama-style shapes the model, LoRA and planner tests build from random weights: one
// definition, each test naming only what it changes (head_dim = hidden / heads).
#pragma once

#include <cstdint>

#include "model/config.h"

namespace hone::test {

struct TinyShape {
  int64_t hidden = 32, intermediate = 64, layers = 2, heads = 4, kv_heads = 2, vocab = 61;
  int64_t max_positions = 64;
};

inline ModelConfig tiny_model(const TinyShape& s) {
  ModelConfig c;
  c.hidden_size = s.hidden;
  c.intermediate_size = s.intermediate;
  c.num_layers = s.layers;
  c.num_heads = s.heads;
  c.num_kv_heads = s.kv_heads;
  c.head_dim = s.hidden / s.heads;
  c.vocab_size = s.vocab;
  c.max_position_embeddings = s.max_positions;
  return c;
}

}  // namespace hone::test
