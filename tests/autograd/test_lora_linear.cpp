// The fused LoRA projection: f64 gradient checks for every input that takes gradients, and
// equality with the unfused chain of ops (linear, linear, linear, scale, add) it replaces, on
// odd sizes and with 16-bit and 4-bit frozen weights.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "rounding.h"

using namespace hone;

namespace {

Var randv(Shape shape, uint64_t seed, bool rg, DType dt = DType::F64, double sd = 1.0) {
  Tensor t = Tensor::empty(DType::F64, std::move(shape));
  Rng r(seed);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = sd * r.normal();
  return Var(dt == DType::F64 ? t : t.to(dt), rg);
}

TEST(LoraLinear, Gradcheck) {
  for (bool bias : {false, true})
    for (bool separate_xa : {false, true})
      for (bool w_rg : {false, true})
        for (bool with_res : {false, true}) {
          SCOPED_TRACE(std::string(bias ? "bias" : "") + (separate_xa ? " xa" : "") +
                       (w_rg ? " W trains" : "") + (with_res ? " residual" : ""));
          Var x = randv({2, 3, 5}, 1, true);  // N = 6, in = 5
          Var xa = separate_xa ? randv({2, 3, 5}, 2, true) : x;
          Var w = randv({7, 5}, 3, w_rg);
          Var b = bias ? randv({7}, 4, false) : Var();
          Var a = randv({3, 5}, 5, true);
          Var bm = randv({7, 3}, 6, true);
          Var res = randv({2, 3, 7}, 7, true);
          std::vector<Var> in = {x, w, a, bm, res};
          if (separate_xa) in.push_back(xa);
          auto fn = [&](Tape* t, const std::vector<Var>& v) {
            return lora_linear(t, v[0], v[1], b, separate_xa ? v[5] : v[0], v[2], v[3], 0.75,
                               with_res ? v[4] : Var());
          };
          std::string where;
          EXPECT_LT(gradcheck(fn, in, 1e-6, 7, &where), 1e-6) << where;
        }
}

// |t| in f64, row-major as stored (a quantized W as the f32 values gemm multiplies by).
std::vector<double> absd(const Tensor& t) {
  Tensor d = t.to(DType::F64);
  std::vector<double> v(d.data<double>(), d.data<double>() + d.numel());
  for (double& e : v) e = std::abs(e);
  return v;
}

std::vector<double> transposed(const std::vector<double>& m, int64_t rows, int64_t cols) {
  std::vector<double> t(m.size());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) t[size_t(j * rows + i)] = m[size_t(i * cols + j)];
  return t;
}

// Expects |got − want| <= 2·γ_n·S per element: got and want are two evaluations of one sum of
// products, each within γ_n·S of the exact value (S the sum of the terms' magnitudes, n at least
// the roundings any term meets on either path), so they are within twice that of each other.
void expect_within(const Tensor& got, const Tensor& want, double n, const std::vector<double>& S,
                   const char* what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  ASSERT_EQ(size_t(got.numel()), S.size()) << what;
  const double g = 2 * test::gamma_n(n);
  test::BoundCheck chk;
  for (int64_t i = 0; i < got.numel(); ++i) chk.add(got.item(i), want.item(i), g * S[size_t(i)], i);
  EXPECT_LE(chk.worst(), 1.0) << what << ": " << chk.where();
}

// Fused and unfused compute the same sums of products in other orders (and with OpenBLAS's
// kernel for this CPU), so each output and gradient is held to the bound of its sums, chained
// through x·Aᵀ·Bᵀ on absolute values: a term x·A·B meets at most in + r roundings in the two
// products, plus one each for s, the bias, the residual and the adds that join the branches
// (+5 covers them, with or without fused multiply-adds).
TEST(LoraLinear, EqualsTheUnfusedChain) {
  struct Case {
    int64_t N, out, in, r;
  };
  const double s = 2.0;
  for (Case c : {Case{1, 3, 32, 1}, Case{7, 33, 64, 3}, Case{65, 129, 96, 16}})
    for (DType wd : {DType::F32, DType::BF16, DType::Q4_0}) {
      SCOPED_TRACE(std::to_string(c.N) + "x" + std::to_string(c.out) + "x" + std::to_string(c.in) +
                   " " + dtype_name(wd));
      Var w = randv({c.out, c.in}, 11, false, wd, 0.1);
      Var b = randv({c.out}, 12, false, DType::F32);
      Var a1 = randv({c.r, c.in}, 13, true, DType::F32, 0.2);
      Var b1 = randv({c.out, c.r}, 14, true, DType::F32, 0.2);
      Var a2(a1.value().clone(), true), b2(b1.value().clone(), true);
      Var x1 = randv({c.N, c.in}, 15, true, DType::F32), x2(x1.value().clone(), true);
      Var r1 = randv({c.N, c.out}, 17, true, DType::F32), r2(r1.value().clone(), true);
      Tensor dy = randv({c.N, c.out}, 16, false, DType::F32).value();

      Tape t1;
      Var y1 = lora_linear(&t1, x1, w, b, x1, a1, b1, s, r1);
      t1.backward_from(y1, dy);
      Tape t2;
      Var y2 =
          add(&t2, r2,
              add(&t2, linear(&t2, x2, w, b), scale(&t2, linear(&t2, linear(&t2, x2, a2), b2), s)));
      t2.backward_from(y2, dy);

      const int64_t N = c.N, out = c.out, in = c.in, r = c.r;
      const auto X = absd(x1.value()), W = absd(w.value()), A = absd(a1.value()),
                 B = absd(b1.value()), R = absd(r1.value()), Bias = absd(b.value()), dY = absd(dy);
      // y = r + x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ                                  // (N, out)
      const auto XW = test::abs_products(X.data(), W.data(), N, out, in);
      const auto XA = test::abs_products(X.data(), A.data(), N, r, in);  // (N, r)
      auto Sy = test::abs_products(XA.data(), B.data(), N, out, r);
      for (int64_t i = 0; i < N * out; ++i)
        Sy[size_t(i)] = R[size_t(i)] + XW[size_t(i)] + Bias[size_t(i % out)] + s * Sy[size_t(i)];
      expect_within(y1.value(), y2.value(), double(in + r + 5), Sy, "y");
      // dx = dY·W + s·(dY·B)·A                                           // (N, in)
      const auto dYB = test::abs_products(dY.data(), B.data(), N, r, out, true);  // (N, r)
      auto Sx = test::abs_products(dYB.data(), A.data(), N, in, r, true);
      const auto dYW = test::abs_products(dY.data(), W.data(), N, in, out, true);
      for (size_t i = 0; i < Sx.size(); ++i) Sx[i] = dYW[i] + s * Sx[i];
      expect_within(x1.grad(), x2.grad(), double(out + r + 5), Sx, "dx");
      // dA = s·(dY·B)ᵀ·x                                                 // (r, in)
      auto SA = test::abs_products(transposed(dYB, N, r).data(), X.data(), r, in, N, true);
      for (double& e : SA) e *= s;
      expect_within(a1.grad(), a2.grad(), double(N + out + 5), SA, "dA");
      // dB = s·dYᵀ·(x·Aᵀ)                                                // (out, r)
      auto SB = test::abs_products(transposed(dY, N, out).data(), XA.data(), out, r, N, true);
      for (double& e : SB) e *= s;
      expect_within(b1.grad(), b2.grad(), double(N + in + 5), SB, "dB");
      // dr = dY, copied or added into zeros: at most a rounding or two.
      expect_within(r1.grad(), r2.grad(), 2, dY, "dr");
      EXPECT_FALSE(w.has_grad());
    }
}

TEST(LoraLinear, ShapeErrorsNameTheOp) {
  Var x = randv({4, 5}, 1, true, DType::F32), w = randv({7, 5}, 2, false, DType::F32);
  Var a = randv({3, 5}, 3, true, DType::F32), bm = randv({7, 4}, 4, true, DType::F32);
  try {
    lora_linear(nullptr, x, w, Var(), x, a, bm, 1.0);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lora_linear"), std::string::npos) << e.what();
  }
  Var xa = randv({4, 6}, 5, true, DType::F32);
  EXPECT_THROW(lora_linear(nullptr, x, w, Var(), xa, a, randv({7, 3}, 6, true, DType::F32), 1.0),
               Error);
}

}  // namespace
