#include <gtest/gtest.h>

#include <cmath>

#include "autograd/rng.h"
#include "optim/adamw.h"

using namespace hone;

// torch.optim.AdamW's single-tensor update written out in f64, element by element.
TEST(AdamW, MatchesPlainLoopReferenceOfTorchSemantics) {
  const int64_t n = 1037;  // odd size: no vector-width luck
  AdamWConfig c;
  c.lr = 3e-3;
  c.beta1 = 0.85;
  c.beta2 = 0.99;
  c.eps = 1e-6;
  c.weight_decay = 0.1;
  Tensor p = Tensor::empty(DType::F32, {n}), g = Tensor::empty(DType::F32, {n});
  Rng rng(3);
  std::vector<double> rp(n), rm(n, 0), rv(n, 0);
  for (int64_t i = 0; i < n; ++i) rp[i] = p.data<float>()[i] = static_cast<float>(rng.normal());
  AdamW opt(p, g, c);
  for (int step = 1; step <= 6; ++step) {
    const double lr = c.lr * (1.0 - 0.1 * step);  // a schedule changes lr between steps
    for (int64_t i = 0; i < n; ++i) g.data<float>()[i] = static_cast<float>(rng.normal() * 0.1);
    opt.step(lr);
    for (int64_t i = 0; i < n; ++i) {
      const double gi = g.data<float>()[i];
      rp[i] *= 1 - lr * c.weight_decay;
      rm[i] = c.beta1 * rm[i] + (1 - c.beta1) * gi;
      rv[i] = c.beta2 * rv[i] + (1 - c.beta2) * gi * gi;
      const double bc1 = 1 - std::pow(c.beta1, step), bc2 = 1 - std::pow(c.beta2, step);
      rp[i] -= lr / bc1 * rm[i] / (std::sqrt(rv[i]) / std::sqrt(bc2) + c.eps);
    }
  }
  EXPECT_EQ(opt.steps_taken(), 6);
  for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(p.data<float>()[i], rp[i], 2e-6) << i;
}

TEST(AdamW, RejectsMismatchedArenas) {
  Tensor p = Tensor::zeros(DType::F32, {4}), g = Tensor::zeros(DType::F32, {5});
  EXPECT_THROW(AdamW(p, g, AdamWConfig{}), Error);
}
