// Gradient accumulation: the loss of a step is the mean over all its target tokens, so one batch
// of 8 and four micro-batches of 2 give the same gradients even when the micro-batches hold
// different numbers of masked tokens (a mean of per-micro-batch means would not).
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>

#include "autograd/block_cache.h"
#include "model/io/model_files.h"
#include "recipes/train_step.h"
#include "train_helpers.h"

using namespace hone;

TEST(TrainStep, AccumulationEqualsOneBigBatchWithUnevenMasks) {
  ModelFiles f = load_model_files(test::repo_file("data/samples/stories260K/stories260K.bin"));
  // In f64: the two ways sum the same terms in other orders (other gemm shapes pick other BLAS
  // kernels), so they differ by rounding alone, and in f64 that is far below what this test looks
  // for. accumulate_step's weighting is the same code for every compute dtype.
  Transformer model(f.config, f.tensors, DType::F64);
  LoraConfig lc;
  lc.rank = 4;
  lc.targets = {"all-linear"};
  LoraAdapters ad(model, lc);
  Rng r(5);
  for (int64_t i = 0; i < ad.values().numel(); ++i)
    ad.values().data<double>()[i] = r.normal() * 0.05;

  const int64_t B = 8, T = 16;
  Batch big;
  big.batch = B;
  big.seq = T;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      big.ids.push_back(static_cast<int32_t>(r.next_u64() % 512));
      // Row b masks its first 2*b targets, so the micro-batches hold different target counts.
      bool masked = t < 2 * b;
      big.targets.push_back(masked ? kIgnoreIndex : static_cast<int32_t>(r.next_u64() % 512));
      big.n_targets += !masked;
    }
  std::vector<Batch> micro;
  for (int64_t m = 0; m < 4; ++m) {
    Batch mb;
    mb.batch = 2;
    mb.seq = T;
    mb.ids.assign(big.ids.begin() + m * 2 * T, big.ids.begin() + (m + 1) * 2 * T);
    mb.targets.assign(big.targets.begin() + m * 2 * T, big.targets.begin() + (m + 1) * 2 * T);
    for (int32_t t : mb.targets) mb.n_targets += t != kIgnoreIndex;
    micro.push_back(mb);
  }
  ASSERT_NE(micro[0].n_targets, micro[3].n_targets);

  const double loss_big = accumulate_step(model, ad, {big});
  Tensor g_big = ad.grads().clone();
  const double loss_acc = accumulate_step(model, ad, micro);
  Tensor g_acc = ad.grads();
  // f64 rounding (u = 1.1e-16) amplified even 10^6-fold through the network stays below 1e-9 of
  // the scale (f32 runs of this test differ by ~20 u); a mean of the micro-batches' means
  // instead of the mean over all tokens is off by 22% here.
  const double tol = 1e-9;
  EXPECT_LE(std::fabs(loss_acc - loss_big), tol * std::fabs(loss_big));
  double max_g = 0, max_d = 0;
  for (int64_t i = 0; i < g_big.numel(); ++i) {
    max_g = std::max(max_g, std::fabs(g_big.item(i)));
    max_d = std::max(max_d, std::fabs(g_big.item(i) - g_acc.item(i)));
  }
  ASSERT_GT(max_g, 0.0);
  EXPECT_LE(max_d / max_g, tol);
  std::cout << "[accumulate] f64: max |big - accumulated| / max |g| = " << max_d / max_g
            << ", loss " << std::fabs(loss_acc - loss_big) / std::fabs(loss_big) << "\n";
}

// A partial last evaluation batch asks for block sizes no training step uses: the cache gives
// them back to the system (with the full batches' blocks, which would otherwise be resident
// beside the partial batch's), so evaluation leaves nothing cached.
TEST(TrainStep, EvaluationWithAPartialBatchLeavesNoCachedBlocks) {
  ModelFiles f = load_model_files(test::repo_file("data/samples/stories260K/stories260K.bin"));
  Transformer model(f.config, f.tensors, DType::F32);
  const int64_t T = 256;  // (T, C) and (T, V) activations are above the cache's 64 KiB floor
  Rng r(3);
  std::vector<Example> ex(5);
  for (Example& e : ex)
    for (int64_t t = 0; t < T; ++t) {
      e.ids.push_back(static_cast<int32_t>(r.next_u64() % 512));
      e.targets.push_back(static_cast<int32_t>(r.next_u64() % 512));
    }
  const ExampleSet full(std::vector<Example>(ex.begin(), ex.begin() + 4));
  const EvalResult a = evaluate(model, nullptr, full, 2, 0);  // 2 + 2: whole batches
  EXPECT_EQ(a.tokens, 4 * T);
  EXPECT_GT(block_cache_bytes(), 0u);  // kept for the training step's same sizes
  const EvalResult b = evaluate(model, nullptr, ExampleSet(ex), 2, 0);  // 2 + 2 + 1
  EXPECT_EQ(b.tokens, 5 * T);
  EXPECT_EQ(block_cache_bytes(), 0u);
}
