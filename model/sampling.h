// Choosing the next token from a row of logits: greedy, temperature, top-k and top-p (nucleus).
// Draws come from hone::Rng, so a seed gives the same text on every platform.
#pragma once

#include <cstdint>
#include <vector>

#include "autograd/rng.h"

namespace hone {

struct SamplingParams {
  float temperature = 1.0f;  // 0 = greedy (argmax); must be >= 0
  int top_k = 0;             // keep the k most probable tokens; 0 = off
  float top_p = 1.0f;        // keep the smallest most-probable set with mass >= top_p; 1 = off
  uint64_t seed = 0;         // for the caller's Rng; sample_token itself uses the Rng it is given
};

// One candidate in sample_token's scratch buffer.
struct TokenProb {
  float prob;
  int32_t id;
};

// The index of the first maximum of logits[0..vocab).
int32_t argmax_token(const float* logits, int64_t vocab);

// Samples one token id from logits (vocab,). temperature 0 → argmax_token (no draw). Otherwise
// softmax(logits / temperature), keep the top_k most probable, then (renormalised) the smallest
// prefix of the most probable whose mass reaches top_p (at least one token), renormalise, and
// draw once with rng.uniform(). Ties in probability rank by lower id. `scratch` is reused
// across calls to avoid allocating per token. Throws hone::Error on invalid parameters.
int32_t sample_token(const float* logits, int64_t vocab, const SamplingParams& params, Rng& rng,
                     std::vector<TokenProb>& scratch);

}  // namespace hone
