// The DoRA projection: f64 gradient checks for every input that takes gradients (the weight norm
// is a constant, as PEFT detaches it), the forward against PEFT's formula written with the
// plain ops, and the weight norm against a plain loop for float, 16-bit and quantized W.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"

using namespace hone;

namespace {

Var randv(Shape shape, uint64_t seed, bool rg, DType dt = DType::F64, double sd = 1.0) {
  Tensor t = Tensor::empty(DType::F64, std::move(shape));
  Rng r(seed);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = sd * r.normal();
  return Var(dt == DType::F64 ? t : t.to(dt), rg);
}

// ‖W_o + s·(B·A)_o‖ by plain loops in f64 over W as stored (a quantized W dequantized).
std::vector<double> naive_norm(const Tensor& w, const Tensor& a, const Tensor& b, double s) {
  const Tensor W = w.to(DType::F64), A = a.to(DType::F64), B = b.to(DType::F64);
  const int64_t out = W.dim(0), in = W.dim(1), r = A.dim(0);
  std::vector<double> n(static_cast<size_t>(out));
  for (int64_t o = 0; o < out; ++o) {
    double sq = 0;
    for (int64_t i = 0; i < in; ++i) {
      double v = W.data<double>()[o * in + i];
      for (int64_t k = 0; k < r; ++k)
        v += s * B.data<double>()[o * r + k] * A.data<double>()[k * in + i];
      sq += v * v;
    }
    n[static_cast<size_t>(o)] = std::sqrt(sq);
  }
  return n;
}

TEST(DoraLinear, Gradcheck) {
  for (bool bias : {false, true})
    for (bool separate_xa : {false, true})
      for (bool with_res : {false, true}) {
        SCOPED_TRACE(std::string(bias ? "bias" : "") + (separate_xa ? " xa" : "") +
                     (with_res ? " residual" : ""));
        Var x = randv({2, 3, 5}, 1, true);  // N = 6, in = 5
        Var xa = separate_xa ? randv({2, 3, 5}, 2, true) : x;
        Var w = randv({7, 5}, 3, false);  // out = 7
        Var b = bias ? randv({7}, 4, false) : Var();
        Var a = randv({3, 5}, 5, true);  // r = 3
        Var bm = randv({7, 3}, 6, true);
        Var m = randv({7}, 8, true);
        Var res = randv({2, 3, 7}, 7, true);
        // The norm is taken once, at the unperturbed A and B: a constant of the op, as PEFT's
        // detached norm is a constant of the graph.
        const double s = 0.75;
        const Tensor norm = dora_weight_norm(w.value(), a.value(), bm.value(), s);
        std::vector<Var> in = {x, a, bm, m, res};
        if (separate_xa) in.push_back(xa);
        auto fn = [&](Tape* t, const std::vector<Var>& v) {
          return dora_linear(t, v[0], w, b, separate_xa ? v[5] : v[0], v[1], v[2], v[3], norm, s,
                             with_res ? v[4] : Var());
        };
        std::string where;
        EXPECT_LT(gradcheck(fn, in, 1e-6, 7, &where), 1e-6) << where;
      }
}

TEST(DoraLinear, WeightNormMatchesPlainLoops) {
  struct Case {
    int64_t out, in, r;
  };
  for (Case c : {Case{1, 32, 1}, Case{17, 64, 3}, Case{33, 96, 7}})
    for (DType wd : {DType::F32, DType::BF16, DType::F16, DType::Q8_0, DType::Q4_0})
      for (DType ct : {DType::F32, DType::F64}) {
        SCOPED_TRACE(std::to_string(c.out) + "x" + std::to_string(c.in) + " r" +
                     std::to_string(c.r) + " " + dtype_name(wd) + " " + dtype_name(ct));
        Var w = randv({c.out, c.in}, 21, false, wd, 0.1);
        Var a = randv({c.r, c.in}, 22, false, ct, 0.3);
        Var b = randv({c.out, c.r}, 23, false, ct, 0.3);
        const double s = 1.5;
        const Tensor n = dora_weight_norm(w.value(), a.value(), b.value(), s);
        ASSERT_EQ(n.dtype(), ct);
        const std::vector<double> want = naive_norm(w.value(), a.value(), b.value(), s);
        // f32: the sums of r + 1 terms meet ~r + 2 roundings of 2^-24 relative to their
        // magnitudes (≤ |W| + s·|B|·|A|, a few times the norm here); f64: exact to 1e-13.
        const double tol = ct == DType::F32 ? 1e-5 : 1e-13;
        for (int64_t o = 0; o < c.out; ++o)
          EXPECT_NEAR(n.item(o), want[size_t(o)], tol * want[size_t(o)]) << "row " << o;
      }
}

// The op against PEFT's formula spelled out with the plain ops, in f64 (so any difference is
// a wrong term, not rounding), for W stored as f64, bf16 and q4_0; with and without a dropout
// input, bias and residual.
TEST(DoraLinear, EqualsPeftsFormula) {
  for (DType wd : {DType::F64, DType::BF16, DType::Q4_0})
    for (bool separate_xa : {false, true}) {
      SCOPED_TRACE(std::string(dtype_name(wd)) + (separate_xa ? " dropout input" : ""));
      const int64_t N = 7, out = 33, in = 64, r = 3;
      const double s = 2.0;
      Var w = randv({out, in}, 31, false, wd, 0.1);
      Var b = randv({out}, 32, false);
      Var a = randv({r, in}, 33, true, DType::F64, 0.2);
      Var bm = randv({out, r}, 34, true, DType::F64, 0.2);
      Var m = randv({out}, 35, true);
      Var x = randv({N, in}, 36, true);
      Var xa = separate_xa ? randv({N, in}, 37, true) : x;
      Var res = randv({N, out}, 38, true);
      const Tensor norm = dora_weight_norm(w.value(), a.value(), bm.value(), s);
      const Tensor got = dora_linear(nullptr, x, w, b, xa, a, bm, m, norm, s, res).value();

      // g and g − 1 broadcast over rows as constants.
      Tensor g = Tensor::empty(DType::F64, {N, out}), g1 = Tensor::empty(DType::F64, {N, out});
      for (int64_t n = 0; n < N; ++n)
        for (int64_t o = 0; o < out; ++o) {
          const double v = m.value().data<double>()[o] / norm.data<double>()[o];
          g.data<double>()[n * out + o] = v;
          g1.data<double>()[n * out + o] = v - 1;
        }
      Var base = linear(nullptr, x, w, b);
      Var dir = mul(nullptr, Var(g1), linear(nullptr, xa, w));
      Var low =
          scale(nullptr, mul(nullptr, Var(g), linear(nullptr, linear(nullptr, xa, a), bm)), s);
      const Tensor want = add(nullptr, res, add(nullptr, base, add(nullptr, dir, low))).value();
      double worst = 0, scale_ = 0;
      for (int64_t i = 0; i < got.numel(); ++i) {
        worst = std::max(worst, std::abs(got.item(i) - want.item(i)));
        scale_ = std::max(scale_, std::abs(want.item(i)));
      }
      EXPECT_LE(worst, 1e-12 * scale_);
    }
}

// With B = 0 and m = ‖W‖ per row (DoRA's initialisation) the projection is the base's.
TEST(DoraLinear, StartsEqualToTheBase) {
  const int64_t N = 5, out = 9, in = 32, r = 2;
  Var w = randv({out, in}, 41, false, DType::Q8_0, 0.1);
  Var b = randv({out}, 42, false, DType::F32);
  Var a = randv({r, in}, 43, true, DType::F32);
  Var bm(Tensor::zeros(DType::F32, {out, r}), true);
  const Tensor norm = dora_weight_norm(w.value(), a.value(), bm.value(), 4.0);
  Var m(norm.clone(), true);
  Var x = randv({N, in}, 44, true, DType::F32);
  const Tensor got = dora_linear(nullptr, x, w, b, x, a, bm, m, norm, 4.0).value();
  const Tensor want = linear(nullptr, x, w, b).value();
  for (int64_t i = 0; i < got.numel(); ++i)
    EXPECT_NEAR(got.item(i), want.item(i), 1e-6 * (1 + std::abs(want.item(i))));
}

TEST(DoraLinear, BadShapesAndATrainedWeightAreRefused) {
  Var x = randv({4, 5}, 1, true, DType::F32), w = randv({7, 5}, 2, false, DType::F32);
  Var a = randv({3, 5}, 3, true, DType::F32), bm = randv({7, 3}, 4, true, DType::F32);
  const Tensor norm = dora_weight_norm(w.value(), a.value(), bm.value(), 1.0);
  Var m6 = randv({6}, 5, true, DType::F32);
  try {
    dora_linear(nullptr, x, w, Var(), x, a, bm, m6, norm, 1.0);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dora_linear"), std::string::npos) << e.what();
  }
  Var wt = randv({7, 5}, 2, true, DType::F32);
  Var m = randv({7}, 5, true, DType::F32);
  EXPECT_THROW(dora_linear(nullptr, x, wt, Var(), x, a, bm, m, norm, 1.0), Error);
  EXPECT_THROW(dora_weight_norm(w.value(), bm.value(), a.value(), 1.0), Error);
}

}  // namespace
