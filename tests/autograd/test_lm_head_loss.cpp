// lm_head_cross_entropy: equal to cross_entropy(linear(x, W)) — loss and gradients — for odd row
// counts and vocabularies, every chunk size, ignored rows, frozen 16-bit and quantized W; f64
// gradient checks for x and for a W that trains.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "rounding.h"

using namespace hone;

namespace {

Var randv(Shape shape, uint64_t seed, bool rg = true, double sd = 1.0) {
  Tensor t = Tensor::empty(DType::F64, std::move(shape));
  Rng r(seed);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = sd * r.normal();
  return Var(t, rg);
}

Tensor randf(Shape shape, uint64_t seed, double sd = 1.0) {
  Tensor t = Tensor::empty(DType::F32, std::move(shape));
  Rng r(seed);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(sd * r.normal());
  return t;
}

// Targets in [0, V); with_ignored: rows 1, 4, 7, ... get the ignore_index -100.
std::vector<int32_t> make_targets(int64_t N, int64_t V, uint64_t seed, bool with_ignored = true) {
  std::vector<int32_t> t(N);
  Rng r(seed);
  for (int64_t n = 0; n < N; ++n)
    t[n] = with_ignored && n % 3 == 1
               ? -100
               : static_cast<int32_t>(std::fmod(std::fabs(r.normal()) * 7919.0, double(V)));
  return t;
}

struct Result {
  double loss;
  Tensor dx, dw;
};

// Bounds on how far a pass in precision u (unit roundoff) may be from the exact loss, dx and dW
// of mean_n CE(x_n·Wᵀ, t_n), in any kernel order: from an f64 pass over the same values.
// To first order, with γ_n = test::gamma_n and, per counted row n,
//   δ_n = γ_C·max_v Σ_c|x_nc||W_vc|                 logits (dots of length C)
//   λ_n = |lse_n| + max_v |l_nv − lse_n|             the exponents' magnitude
//   ε_n = 2δ_n + γ_{V+8} + 2u·λ_n                    relative error of p_nv = exp(l_nv − lse_n):
//         its logit and lse (a sum of V exps within 2 ulp, its log) and the rounded arguments
// g = (p − onehot)/count (rounded: 2u more), dx = g·W (dots of length V, in tiles: γ_2V),
//   |Δdx_nc| ≤ (γ_2V + 2u)·Σ_v|g_nv||W_vc| + ε_n·Σ_v p_nv|W_vc|/count,
// dW = gᵀ·x likewise over the counted rows, and the loss, a mean of lse_n − l_n,t_n:
//   |Δloss| ≤ Σ_n (2δ_n + γ_{V+8} + 2u·λ_n)/count + γ_{count+1}·loss.
// Two such passes (fused, unfused) differ by at most the sum of their bounds: twice these.
struct Bounds {
  double loss = 0;
  std::vector<double> dx, dw;
};

Bounds exact_bounds(const Tensor& x, const Tensor& w, const std::vector<int32_t>& tg, double u,
                    int32_t ignore = -100) {
  const int64_t N = x.dim(0), C = x.dim(1), V = w.dim(0);
  const Tensor wd = w.to(DType::F64), xd = x.to(DType::F64);
  const double *X = xd.data<double>(), *W = wd.data<double>();
  int64_t count = 0;
  for (int32_t t : tg) count += t != ignore;
  Bounds b;
  b.dx.assign(static_cast<size_t>(N * C), 0.0);
  b.dw.assign(static_cast<size_t>(V * C), 0.0);
  if (count == 0) return b;
  const double gV = test::gamma_n(static_cast<double>(2 * V), u);
  const double gN = test::gamma_n(static_cast<double>(2 * count), u);
  double loss = 0, loss_err = 0;
  std::vector<double> l(V), a(V), p(V);
  for (int64_t n = 0; n < N; ++n) {
    if (tg[n] == ignore) continue;
    double amax = 0, m = -INFINITY;
    for (int64_t v = 0; v < V; ++v) {
      double s = 0, sa = 0;
      for (int64_t c = 0; c < C; ++c) {
        s += X[n * C + c] * W[v * C + c];
        sa += std::abs(X[n * C + c] * W[v * C + c]);
      }
      l[v] = s;
      amax = std::max(amax, sa);
      m = std::max(m, s);
    }
    double z = 0;
    for (int64_t v = 0; v < V; ++v) z += std::exp(l[v] - m);
    const double lse = m + std::log(z);
    double lam = 0;
    for (int64_t v = 0; v < V; ++v) {
      p[v] = std::exp(l[v] - lse);
      lam = std::max(lam, std::abs(l[v] - lse));
    }
    lam += std::abs(lse);
    const double delta = test::gamma_n(static_cast<double>(C), u) * amax;
    const double eps = 2 * delta + test::gamma_n(static_cast<double>(V + 8), u) + 2 * u * lam;
    loss += lse - l[tg[n]];
    loss_err += eps;
    for (int64_t v = 0; v < V; ++v) {
      const double g = std::abs(p[v] - (v == tg[n] ? 1.0 : 0.0)) / count;
      for (int64_t c = 0; c < C; ++c) {
        const double aw = std::abs(W[v * C + c]), ax = std::abs(X[n * C + c]);
        b.dx[n * C + c] += (gV + 2 * u) * g * aw + eps * p[v] * aw / count;
        b.dw[v * C + c] += (gN + 2 * u) * g * ax + eps * p[v] * ax / count;
      }
    }
  }
  loss /= count;
  b.loss = loss_err / count + test::gamma_n(static_cast<double>(count + 1), u) * loss;
  return b;
}

// Expects |a − b| within twice the bound (two passes, each within it of the exact value).
void expect_within(const Tensor& a, const Tensor& b, const std::vector<double>& bound,
                   const std::string& what) {
  ASSERT_EQ(a.numel(), static_cast<int64_t>(bound.size()));
  test::BoundCheck chk;
  for (int64_t i = 0; i < a.numel(); ++i) chk.add(a.item(i), b.item(i), 2 * bound[i], i);
  EXPECT_LE(chk.worst(), 1.0) << what << ": " << chk.where();
}

Result fused(const Tensor& x, const Var& w, const std::vector<int32_t>& tg, int64_t chunk,
             int32_t ignore = -100) {
  Var xv(x.clone(), true);
  Tape t;
  Var l = lm_head_cross_entropy(&t, xv, w, tg, ignore, chunk);
  t.backward(l);
  return {l.value().item(), xv.has_grad() ? xv.grad().clone() : Tensor(),
          w.has_grad() ? w.grad().clone() : Tensor()};
}

Result unfused(const Tensor& x, const Var& w, const std::vector<int32_t>& tg,
               int32_t ignore = -100) {
  Var xv(x.clone(), true);
  Tape t;
  Var l = cross_entropy(&t, linear(&t, xv, w), tg, ignore);
  t.backward(l);
  return {l.value().item(), xv.has_grad() ? xv.grad().clone() : Tensor(),
          w.has_grad() ? w.grad().clone() : Tensor()};
}

}  // namespace

TEST(LmHeadLoss, GradcheckXAndTrainedW) {
  for (int64_t chunk : {1, 2, 256}) {
    Var x = randv({7, 6}, 11), w = randv({5, 6}, 12, true, 0.7);
    auto tg = make_targets(7, 5, 13);
    auto fn = [&](Tape* t, const std::vector<Var>& in) {
      return lm_head_cross_entropy(t, in[0], in[1], tg, -100, chunk);
    };
    std::string where;
    EXPECT_LT(gradcheck(fn, {x, w}, 1e-6, 7, &where), 1e-6) << "chunk " << chunk << " " << where;
    Var wf = randv({5, 6}, 14, false);  // frozen W: only dx
    EXPECT_LT(gradcheck(fn, {x, wf}, 1e-6, 7, &where), 1e-6) << "chunk " << chunk << " " << where;
    EXPECT_FALSE(wf.has_grad());
  }
  // A custom ignore_index.
  Var x = randv({4, 3}, 15), w = randv({6, 3}, 16);
  auto fn = [&](Tape* t, const std::vector<Var>& in) {
    return lm_head_cross_entropy(t, in[0], in[1], {5, 5, 2, 0}, 5, 1);
  };
  EXPECT_LT(gradcheck(fn, {x, w}), 1e-6);
}

TEST(LmHeadLoss, F64EqualsUnfusedIncludingDw) {
  Tensor x = randv({9, 8}, 21).value();
  Var w1 = randv({11, 8}, 22), w2(w1.value().clone(), true);
  auto tg = make_targets(9, 11, 23);
  Result a = fused(x, w1, tg, 4), b = unfused(x, w2, tg);
  const Bounds e = exact_bounds(x, w1.value(), tg, test::kUnitF64);
  EXPECT_LE(std::abs(a.loss - b.loss), 2 * e.loss);
  expect_within(a.dx, b.dx, e.dx, "dx");
  expect_within(a.dw, b.dw, e.dw, "dw");
}

TEST(LmHeadLoss, F32EqualsUnfusedOnOddShapes) {
  const int64_t C = 48;
  for (int64_t V : {5, 1000})
    for (int64_t N : {1, 3, 257})
      for (int64_t chunk : {1, 7, 256}) {
        Tensor x = randf({N, C}, 31 + N);
        Var w(randf({V, C}, 32 + V, 0.2));
        auto tg = make_targets(N, V, 33, N > 1);
        Result a = fused(x, w, tg, chunk), b = unfused(x, w, tg);
        const std::string at = "V " + std::to_string(V) + " N " + std::to_string(N) + " chunk " +
                               std::to_string(chunk);
        const Bounds e = exact_bounds(x, w.value(), tg, test::kUnitF32);
        EXPECT_LE(std::abs(a.loss - b.loss), 2 * e.loss) << at;
        expect_within(a.dx, b.dx, e.dx, at);
        // Ignored rows get exactly no gradient.
        for (int64_t n = 0; n < N; ++n) {
          if (tg[n] != -100) continue;
          for (int64_t c = 0; c < C; ++c) ASSERT_EQ(a.dx.item(n * C + c), 0.0) << at;
        }
      }
}

TEST(LmHeadLoss, FrozenBf16AndQuantizedWeightsEqualUnfused) {
  // V*C over the 4M-element conversion workspace for one case: W converted in two tiles.
  struct Case {
    int64_t N, V, C;
  };
  for (Case c : {Case{10, 37, 64}, Case{5, 1100, 4096}})
    for (DType dt : {DType::BF16, DType::F16, DType::Q8_0, DType::Q4_0}) {
      Var w(randf({c.V, c.C}, 41, 0.05).to(dt));
      Tensor x = randf({c.N, c.C}, 42);
      auto tg = make_targets(c.N, c.V, 43);
      Result a = fused(x, w, tg, 3), b = unfused(x, w, tg);
      // Both multiply by the same f32 values of W, tiled and blocked differently.
      const Bounds e = exact_bounds(x, w.value(), tg, test::kUnitF32);
      EXPECT_LE(std::abs(a.loss - b.loss), 2 * e.loss) << dtype_name(dt);
      expect_within(a.dx, b.dx, e.dx, dtype_name(dt));
      EXPECT_FALSE(w.has_grad());
    }
}

TEST(LmHeadLoss, AllRowsIgnoredGivesZeroAndNoGradient) {
  Var x(randf({3, 4}, 51), true), w(randf({5, 4}, 52));
  Tape t;
  Var l = lm_head_cross_entropy(&t, x, w, {-100, -100, -100});
  EXPECT_EQ(l.value().item(), 0.0);
  EXPECT_EQ(l.dtype(), DType::F32);
  EXPECT_EQ(l.shape(), (Shape{1}));
  t.backward(l);
  if (x.has_grad()) {
    for (int64_t i = 0; i < x.grad().numel(); ++i) EXPECT_EQ(x.grad().item(i), 0.0);
  }
  // No tape, or nothing requiring grad: nothing recorded.
  Tape t2;
  lm_head_cross_entropy(&t2, Var(randf({3, 4}, 53)), w, {0, 1, 2});
  EXPECT_EQ(t2.size(), 0u);
}

TEST(LmHeadLoss, ErrorsNameTheOp) {
  Var x(randf({2, 4}, 61)), w(randf({5, 4}, 62));
  auto msg = [](auto f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  auto has = [](const std::string& m, const char* s) { return m.find(s) != std::string::npos; };
  EXPECT_TRUE(has(msg([&] { lm_head_cross_entropy(nullptr, x, w, {0, 5}); }), "out of range"));
  EXPECT_TRUE(has(msg([&] { lm_head_cross_entropy(nullptr, x, w, {0}); }), "targets"));
  EXPECT_TRUE(has(msg([&] {
                    lm_head_cross_entropy(nullptr, x, Var(randf({5, 3}, 63)), {0, 1});
                  }),
                  "lm_head_cross_entropy"));
  EXPECT_TRUE(has(msg([&] {
                    lm_head_cross_entropy(nullptr, x, w, {0, 1}, -100, 0);
                  }),
                  "chunk_rows"));
  Var trains(randf({5, 4}, 64).to(DType::BF16), true);  // a W that trains: compute dtype
  EXPECT_THROW(lm_head_cross_entropy(nullptr, x, trains, {0, 1}), Error);
}
