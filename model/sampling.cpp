#include "model/sampling.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "autograd/error.h"

namespace hone {

namespace {

void validate(int64_t vocab, const SamplingParams& p) {
  if (vocab <= 0) throw Error("sampling: vocab must be > 0 (got " + std::to_string(vocab) + ")");
  if (!(p.temperature >= 0.0f) || std::isinf(p.temperature)) {
    throw Error("sampling: temperature must be finite and >= 0 (got " +
                std::to_string(p.temperature) + ")");
  }
  if (p.top_k < 0) {
    throw Error("sampling: top_k must be >= 0 (got " + std::to_string(p.top_k) + ")");
  }
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
    throw Error("sampling: top_p must be in (0, 1] (got " + std::to_string(p.top_p) + ")");
  }
}

// Most probable first; equal probabilities by lower id, so results never depend on sort order.
bool more_probable(const TokenProb& a, const TokenProb& b) {
  return a.prob != b.prob ? a.prob > b.prob : a.id < b.id;
}

}  // namespace

int32_t argmax_token(const float* logits, int64_t vocab) {
  int64_t best = 0;
  for (int64_t i = 1; i < vocab; ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return static_cast<int32_t>(best);
}

int32_t sample_token(const float* logits, int64_t vocab, const SamplingParams& params, Rng& rng,
                     std::vector<TokenProb>& scratch) {
  validate(vocab, params);
  if (params.temperature == 0.0f) return argmax_token(logits, vocab);

  // Unnormalised softmax(logits / T); `total` carries the normaliser through the filters.
  const float max_logit = logits[argmax_token(logits, vocab)];
  const float inv_t = 1.0f / params.temperature;
  scratch.resize(static_cast<size_t>(vocab));
  double total = 0.0;
  for (int64_t i = 0; i < vocab; ++i) {
    float p = std::exp((logits[i] - max_logit) * inv_t);
    scratch[i] = {p, static_cast<int32_t>(i)};
    total += p;
  }

  bool sorted = false;
  if (params.top_k > 0 && params.top_k < vocab) {
    auto mid = scratch.begin() + params.top_k;
    std::partial_sort(scratch.begin(), mid, scratch.end(), more_probable);
    scratch.erase(mid, scratch.end());
    sorted = true;
    total = 0.0;
    for (const auto& t : scratch) total += t.prob;
  }

  if (params.top_p < 1.0f) {
    if (!sorted) {
      // As llama2.c does: a token below (1 - p) / (n - 1) of the mass cannot be in the nucleus
      // (if at most n - 1 tokens are below, they hold < 1 - p together), so drop them before
      // the O(n log n) sort. When every token is below (near-uniform, tiny p) keep them all.
      const size_t n = scratch.size();
      const double cutoff = n > 1 ? total * (1.0 - params.top_p) / static_cast<double>(n - 1) : 0;
      if (cutoff <= 1.0) {  // the max token's unnormalised probability is exp(0) = 1
        auto end = std::remove_if(scratch.begin(), scratch.end(),
                                  [&](const TokenProb& t) { return t.prob < cutoff; });
        scratch.erase(end, scratch.end());
      }
      std::sort(scratch.begin(), scratch.end(), more_probable);
    }
    const double target = params.top_p * total;
    double cum = 0.0;
    size_t keep = 0;
    while (keep < scratch.size()) {
      cum += scratch[keep++].prob;
      if (cum >= target) break;
    }
    scratch.resize(keep);
    total = cum;
  }

  const double r = rng.uniform() * total;
  double cum = 0.0;
  for (const auto& t : scratch) {
    cum += t.prob;
    if (r < cum) return t.id;
  }
  return scratch.back().id;  // rounding left r at the very top
}

}  // namespace hone
