#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "autograd/rng.h"
#include "optim/adamw.h"
#include "rounding.h"

using namespace hone;

// torch.optim.AdamW's single-tensor update written out in f64, element by element, with a running
// bound on how far the f32 optimizer can be from it (to first order in u): each f32 operation
// rounds once (u of its result), each f64 setting converted to f32 once (u of its term; 1 − β
// in f32 inherits β's error, u·β), and errors already made carry through: linearly through the
// moments, and through u = s·m / (√(v/bc2) + eps) as s·e_m / D + |u|·e_v / (2v) (∂u/∂v is at
// most |u| / 2v). γ_8 on u: step size, 1/√bc2 and eps as constants, √, ×, +, ÷, ×.
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
  std::vector<double> rp(n), rm(n, 0), rv(n, 0), ep(n, 0), em(n, 0), ev(n, 0);
  for (int64_t i = 0; i < n; ++i) rp[i] = p.data<float>()[i] = static_cast<float>(rng.normal());
  AdamW opt(p, g, c);
  const double u = test::kUnitF32, b1 = c.beta1, b2 = c.beta2;
  const double g2 = test::gamma_n(2), g3 = test::gamma_n(3), g4 = test::gamma_n(4);
  const double g8 = test::gamma_n(8);
  for (int step = 1; step <= 6; ++step) {
    const double lr = c.lr * (1.0 - 0.1 * step);  // a schedule changes lr between steps
    for (int64_t i = 0; i < n; ++i) g.data<float>()[i] = static_cast<float>(rng.normal() * 0.1);
    opt.step(lr);
    const double bc1 = 1 - std::pow(b1, step), bc2 = 1 - std::pow(b2, step);
    const double decay = 1 - lr * c.weight_decay;
    for (int64_t i = 0; i < n; ++i) {
      const double gi = g.data<float>()[i];
      ep[i] = decay * ep[i] + g2 * std::abs(decay * rp[i]);
      rp[i] *= decay;
      em[i] = b1 * em[i] + g3 * (b1 * std::abs(rm[i]) + (1 - b1) * std::abs(gi)) +
              u * b1 * std::abs(gi);
      rm[i] = b1 * rm[i] + (1 - b1) * gi;
      ev[i] = b2 * ev[i] + g4 * (b2 * rv[i] + (1 - b2) * gi * gi) + u * b2 * gi * gi;
      rv[i] = b2 * rv[i] + (1 - b2) * gi * gi;
      const double D = std::sqrt(rv[i]) / std::sqrt(bc2) + c.eps;
      const double upd = lr / bc1 * rm[i] / D;
      const double eu =
          lr / bc1 * em[i] / D + std::abs(upd) * ((rv[i] > 0 ? ev[i] / (2 * rv[i]) : 0) + g8);
      ep[i] += eu + u * (std::abs(rp[i]) + std::abs(upd));
      rp[i] -= upd;
    }
  }
  EXPECT_EQ(opt.steps_taken(), 6);
  test::BoundCheck chk;
  for (int64_t i = 0; i < n; ++i) chk.add(p.data<float>()[i], rp[i], ep[i], i);
  EXPECT_LE(chk.worst(), 1.0) << chk.where();
}

TEST(AdamW, RejectsMismatchedArenas) {
  Tensor p = Tensor::zeros(DType::F32, {4}), g = Tensor::zeros(DType::F32, {5});
  EXPECT_THROW(AdamW(p, g, AdamWConfig{}), Error);
}
