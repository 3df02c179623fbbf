#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "autograd/error.h"
#include "autograd/rng.h"
#include "model/sampling.h"

namespace hone {
namespace {

std::vector<double> softmax(const std::vector<float>& logits, double temperature) {
  double mx = logits[0];
  for (float l : logits) mx = std::max<double>(mx, l);
  std::vector<double> p(logits.size());
  double sum = 0;
  for (size_t i = 0; i < logits.size(); ++i) sum += p[i] = std::exp((logits[i] - mx) / temperature);
  for (double& x : p) x /= sum;
  return p;
}

// Draw counts per token over n samples.
std::vector<int> histogram(const std::vector<float>& logits, const SamplingParams& params, int n,
                           uint64_t seed) {
  Rng rng(seed);
  std::vector<TokenProb> scratch;
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < n; ++i) {
    int32_t id =
        sample_token(logits.data(), static_cast<int64_t>(logits.size()), params, rng, scratch);
    EXPECT_GE(id, 0);
    EXPECT_LT(id, static_cast<int32_t>(logits.size()));
    ++counts[id];
  }
  return counts;
}

TEST(Sampling, GreedyIsArgmaxFirstOnTies) {
  std::vector<TokenProb> scratch;
  Rng rng(1);
  SamplingParams greedy;
  greedy.temperature = 0;
  const std::vector<float> a = {0.1f, 2.0f, -1.0f, 1.9f};
  EXPECT_EQ(sample_token(a.data(), 4, greedy, rng, scratch), 1);
  const std::vector<float> tie = {-3.0f, 5.0f, 1.0f, 5.0f, 5.0f};
  EXPECT_EQ(sample_token(tie.data(), 5, greedy, rng, scratch), 1);
  const std::vector<float> first = {7.0f, 7.0f};
  EXPECT_EQ(sample_token(first.data(), 2, greedy, rng, scratch), 0);
  const std::vector<float> one = {-1e30f};
  EXPECT_EQ(sample_token(one.data(), 1, greedy, rng, scratch), 0);
  EXPECT_EQ(rng.state(), Rng(1).state());  // greedy never draws
  EXPECT_EQ(argmax_token(tie.data(), 5), 1);
}

TEST(Sampling, TopK1IsArgmaxAtAnyTemperature) {
  Rng gen(7);
  std::vector<float> logits(97);
  for (auto& l : logits) l = static_cast<float>(gen.normal());
  logits[40] = logits[13] = 3.5f;  // a tie for the maximum: the lower id wins
  const int32_t best = argmax_token(logits.data(), 97);
  ASSERT_EQ(best, 13);
  std::vector<TokenProb> scratch;
  Rng rng(3);
  for (float t : {0.01f, 0.5f, 1.0f, 2.0f, 100.0f}) {
    SamplingParams p;
    p.temperature = t;
    p.top_k = 1;
    for (int i = 0; i < 50; ++i) EXPECT_EQ(sample_token(logits.data(), 97, p, rng, scratch), best);
  }
}

TEST(Sampling, TinyTopPKeepsOnlyTheMax) {
  std::vector<float> logits = {0.5f, 0.2f, 0.9f, 0.89f, -2.0f, 0.0f};
  std::vector<TokenProb> scratch;
  Rng rng(11);
  SamplingParams p;
  p.top_p = 1e-6f;
  for (float t : {0.7f, 1.0f, 5.0f}) {
    p.temperature = t;
    for (int i = 0; i < 200; ++i) EXPECT_EQ(sample_token(logits.data(), 6, p, rng, scratch), 2);
  }
  // Uniform logits with a tiny top_p: still exactly one token (the first), never none.
  std::vector<float> flat(1000, 0.25f);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(sample_token(flat.data(), 1000, p, rng, scratch), 0);
}

TEST(Sampling, TopPKeepsTheSmallestNucleus) {
  // probabilities 0.5, 0.3, 0.15, 0.05: top_p 0.75 needs {0, 1}; 0.9 needs {0, 1, 2}
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f),
                                     std::log(0.05f)};
  SamplingParams p;
  p.top_p = 0.75f;
  auto counts = histogram(logits, p, 4000, 5);
  EXPECT_GT(counts[0], 0);
  EXPECT_GT(counts[1], 0);
  EXPECT_EQ(counts[2], 0);
  EXPECT_EQ(counts[3], 0);
  p.top_p = 0.9f;
  counts = histogram(logits, p, 4000, 5);
  EXPECT_GT(counts[2], 0);
  EXPECT_EQ(counts[3], 0);
}

TEST(Sampling, SameSeedSameSequence) {
  Rng gen(42);
  std::vector<float> logits(300);
  for (auto& l : logits) l = static_cast<float>(2.0 * gen.normal());
  SamplingParams p;
  p.temperature = 0.8f;
  p.top_k = 40;
  p.top_p = 0.9f;
  auto run = [&](uint64_t seed) {
    Rng rng(seed);
    std::vector<TokenProb> scratch;
    std::vector<int32_t> out;
    for (int i = 0; i < 200; ++i) out.push_back(sample_token(logits.data(), 300, p, rng, scratch));
    return out;
  };
  EXPECT_EQ(run(123), run(123));
  EXPECT_NE(run(123), run(124));
}

TEST(Sampling, FrequenciesMatchSoftmax) {
  const std::vector<float> logits = {1.0f, 0.0f, 2.0f, -1.0f, 0.5f};
  const int n = 20000;
  for (float t : {1.0f, 0.7f}) {
    SCOPED_TRACE(t);
    SamplingParams p;
    p.temperature = t;
    auto counts = histogram(logits, p, n, 2024);
    auto probs = softmax(logits, t);
    // Pearson chi-square with 4 degrees of freedom: P(chi2 > 23.5) ≈ 1e-4.
    double chi2 = 0;
    for (size_t i = 0; i < probs.size(); ++i) {
      const double expected = n * probs[i];
      chi2 += (counts[i] - expected) * (counts[i] - expected) / expected;
      // and each count within 5 standard errors of its binomial expectation
      EXPECT_NEAR(counts[i], expected, 5 * std::sqrt(expected * (1 - probs[i]))) << "token " << i;
    }
    EXPECT_LT(chi2, 23.5);
  }
}

TEST(Sampling, TopK2NeverLeavesTheTop2AndRenormalises) {
  const std::vector<float> logits = {0.3f, 1.2f, -0.5f, 1.0f, 0.9f, 0.0f};
  SamplingParams p;
  p.top_k = 2;
  const int n = 20000;
  auto counts = histogram(logits, p, n, 99);
  for (int i : {0, 2, 4, 5}) EXPECT_EQ(counts[i], 0) << "token " << i;
  EXPECT_EQ(counts[1] + counts[3], n);
  // Renormalised over {1, 3}: P(1) = 1 / (1 + e^-0.2).
  const double p1 = 1.0 / (1.0 + std::exp(-0.2));
  EXPECT_NEAR(counts[1], n * p1, 5 * std::sqrt(n * p1 * (1 - p1)));
}

TEST(Sampling, RejectsInvalidParameters) {
  const std::vector<float> logits = {0.0f, 1.0f};
  std::vector<TokenProb> scratch;
  Rng rng(0);
  auto bad = [&](SamplingParams p, int64_t vocab = 2) {
    EXPECT_THROW(sample_token(logits.data(), vocab, p, rng, scratch), Error);
  };
  SamplingParams p;
  bad(p, 0);
  p.temperature = -1.0f;
  bad(p);
  p = {};
  p.temperature = NAN;
  bad(p);
  p = {};
  p.top_k = -1;
  bad(p);
  p = {};
  p.top_p = 0.0f;
  bad(p);
  p.top_p = 1.5f;
  bad(p);
}

}  // namespace
}  // namespace hone
