// The bf16 frozen-base products (kernels/bf16_gemm.h, ops/bf16_products.h) against plain loops
// that round their inputs to bf16 the same way (f32_to_bf16) and sum the exact products in
// double. Products of two bf16 values are exact in f32, so the only error left is the f32
// accumulation: γ_K·Σ|a·b| (rounding.h), plus K·2⁻¹²⁶ for the subnormals vdpbf16ps flushes.
// A product that skipped the rounding (f32 inputs) is off by ~2⁻⁹ relative and fails.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "autograd/kernels/bf16_gemm.h"
#include "autograd/ops.h"
#include "autograd/rng.h"
#include "rounding.h"

using namespace hone;
using namespace hone::kernels;

namespace {

#define SKIP_WITHOUT_BF16() \
  if (!bf16_gemm_available()) GTEST_SKIP() << "no bf16 product in this build: " << bf16_gemm_info()

Tensor randf(Shape shape, uint64_t seed, double sd = 1.0) {
  Tensor t = Tensor::empty(DType::F32, std::move(shape));
  Rng r(seed);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(sd * r.normal());
  return t;
}

std::vector<uint16_t> rand_bf16(int64_t n, uint64_t seed) {
  std::vector<uint16_t> v(static_cast<size_t>(n));
  Rng r(seed);
  for (auto& x : v) x = f32_to_bf16(static_cast<float>(r.normal()));
  return v;
}

// a, as bf16 values widened to double (the reference's view of a product input).
std::vector<double> bf16_values(const Tensor& a) {
  const Tensor f = a.to(DType::F32);
  std::vector<double> v(static_cast<size_t>(f.numel()));
  for (int64_t i = 0; i < f.numel(); ++i) v[i] = bf16_to_f32(f32_to_bf16(f.data<float>()[i]));
  return v;
}

double bound(double K, double sum_abs) {
  return test::dot_bound(K, sum_abs) + K * std::ldexp(1.0, -126);
}

// P (M, N) = X·Yᵀ (Y (K, N) when y_is_kn) of bf16-rounded inputs, in double, and Σ|x||y|.
void reference(const std::vector<double>& X, const std::vector<double>& Y, int64_t M, int64_t N,
               int64_t K, bool y_is_kn, std::vector<double>& P, std::vector<double>& S) {
  P.assign(static_cast<size_t>(M * N), 0.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double p = 0;
      for (int64_t k = 0; k < K; ++k) p += X[i * K + k] * (y_is_kn ? Y[k * N + j] : Y[j * K + k]);
      P[i * N + j] = p;
    }
  S = test::abs_products(X.data(), Y.data(), M, N, K, y_is_kn);
}

}  // namespace

TEST(KernelBf16, ProductEqualsPlainLoopOnOddSizes) {
  SKIP_WITHOUT_BF16();
  struct Case {
    int64_t M, N, K;
  };
  test::BoundCheck chk;
  int cases = 0;
  for (Case c : {Case{1, 1, 1}, Case{3, 17, 33}, Case{17, 3, 100}, Case{33, 257, 7},
                 Case{100, 65, 130}, Case{257, 513, 31}, Case{1030, 40, 96}})
    for (bool tb : {false, true})
      for (float beta : {0.0f, 1.0f})
        for (bool split : {false, true}) {
          // Leading dimensions wider than the rows: the product must use the strides.
          const int64_t lda = c.K + 3, ldb = (tb ? c.K : c.N) + 5, ldc = c.N + 2;
          const std::vector<uint16_t> A = rand_bf16(c.M * lda, 11),
                                      B = rand_bf16((tb ? c.N : c.K) * ldb, 12);
          std::vector<float> C(static_cast<size_t>(c.M * ldc), 0.5f), R = C;
          if (split)
            gemm_bf16(tb, c.M, c.N, c.K, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
          else
            gemm_bf16_serial(tb, c.M, c.N, c.K, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
          gemm_bf16_ref(tb, c.M, c.N, c.K, A.data(), lda, B.data(), ldb, beta, R.data(), ldc);
          for (int64_t i = 0; i < c.M; ++i)
            for (int64_t j = 0; j < c.N; ++j) {
              double s = beta != 0.0f ? 0.5 : 0.0;
              for (int64_t k = 0; k < c.K; ++k)
                s += std::abs(bf16_to_f32(A[i * lda + k]) *
                              bf16_to_f32(tb ? B[j * ldb + k] : B[k * ldb + j]));
              chk.add(C[i * ldc + j], R[i * ldc + j], bound(double(c.K + 1), s), i * ldc + j);
            }
          // The padding between rows is never written.
          for (int64_t i = 0; i < c.M; ++i)
            for (int64_t j = c.N; j < ldc; ++j) ASSERT_EQ(C[i * ldc + j], 0.5f);
          ++cases;
        }
  EXPECT_LE(chk.worst(), 1.0) << chk.where();
  std::printf("bf16 product vs plain loop, %d cases: worst %.3g of the bound\n", cases,
              chk.worst());
  // An empty sum stores zeros (beta 0) or leaves C (beta 1).
  std::vector<float> C = {2.0f, 3.0f};
  gemm_bf16(false, 1, 2, 0, nullptr, 1, nullptr, 2, 1.0f, C.data(), 2);
  EXPECT_EQ(C, (std::vector<float>{2.0f, 3.0f}));
  gemm_bf16(false, 1, 2, 0, nullptr, 1, nullptr, 2, 0.0f, C.data(), 2);
  EXPECT_EQ(C, (std::vector<float>{0.0f, 0.0f}));
  EXPECT_THROW(gemm_bf16(false, 1, 2, 3, nullptr, 3, nullptr, 2, 0.5f, C.data(), 2), Error);
}

TEST(OpsLinearBf16, FrozenProductsEqualTheBf16ReferenceForEveryStorage) {
  SKIP_WITHOUT_BF16();
  struct Case {
    int64_t N, out, in;
  };
  test::BoundCheck fwd, bwd;
  // With 2 threads: 8 rows cannot be split; 2100 rows and 2080 columns go in four parts; 1100 ×
  // 4000 exceeds the conversion workspace, so its parts are bounded by the buffer and the input
  // gradient walks W in row and column tiles per column part (that case in q8_0 and q4_0).
  for (Case c : {Case{1, 1, 32}, Case{7, 9, 64}, Case{37, 53, 96}, Case{600, 8, 320},
                 Case{5, 1100, 4000}, Case{16, 2100, 64}, Case{6, 100, 2080}})
    for (DType t : {DType::F32, DType::BF16, DType::F16, DType::Q8_0, DType::Q4_0}) {
      if (c.in == 4000 && t != DType::Q8_0 && t != DType::Q4_0) continue;
      Var w(randf({c.out, c.in}, 81, 0.1).to(t));
      Var b(randf({c.out}, 82));
      Var x(randf({c.N, c.in}, 83), true);
      Tensor dy = randf({c.N, c.out}, 84);
      Tape tape;
      Var y;
      {
        ScopedBf16Products on(true);
        y = linear(&tape, x, w, b);
      }
      tape.backward_from(y, dy);  // the backward follows the forward's choice
      const std::vector<double> X = bf16_values(x.value()), W = bf16_values(w.value()),
                                G = bf16_values(dy);
      std::vector<double> P, S;
      reference(X, W, c.N, c.out, c.in, false, P, S);
      for (int64_t i = 0; i < c.N * c.out; ++i)
        fwd.add(y.value().item(i), P[i] + b.value().item(i % c.out),
                bound(double(c.in + 1), S[i] + std::abs(b.value().item(i % c.out))), i);
      reference(G, W, c.N, c.in, c.out, true, P, S);
      for (int64_t i = 0; i < c.N * c.in; ++i)
        bwd.add(x.grad().item(i), P[i], bound(c.out, S[i]), i);
      // The same again, bitwise: parts do not depend on which thread takes them.
      Var x2(x.value().clone(), true);
      Tape tape2;
      ScopedBf16Products on(true);
      Var y2 = linear(&tape2, x2, w, b);
      tape2.backward_from(y2, dy);
      for (int64_t i = 0; i < y.value().numel(); ++i)
        ASSERT_EQ(y2.value().item(i), y.value().item(i));
      for (int64_t i = 0; i < x.grad().numel(); ++i) ASSERT_EQ(x2.grad().item(i), x.grad().item(i));
    }
  EXPECT_LE(fwd.worst(), 1.0) << "forward " << fwd.where();
  EXPECT_LE(bwd.worst(), 1.0) << "input gradient " << bwd.where();
  std::printf("linear in bf16 vs reference: forward %.3g, input gradient %.3g of the bound\n",
              fwd.worst(), bwd.worst());
}

TEST(OpsLinearBf16, TrainedWeightsAndF64KeepTheirOwnArithmetic) {
  SKIP_WITHOUT_BF16();
  ScopedBf16Products on(true);
  Var x(randf({5, 40}, 1), true);
  Var wt(randf({7, 40}, 2), true), wf(randf({7, 40}, 2));
  Tape t1, t2;
  Var y1 = linear(&t1, x, wt);
  Tensor want;
  {
    ScopedBf16Products off(false);
    want = linear(&t2, x, wf).value();
  }
  for (int64_t i = 0; i < want.numel(); ++i) ASSERT_EQ(y1.value().item(i), want.item(i));
  Var xd(x.value().to(DType::F64));
  Tensor yd = linear(nullptr, xd, wf).value();
  EXPECT_EQ(yd.dtype(), DType::F64);
  for (int64_t i = 0; i < yd.numel(); ++i) {
    double s = 0;
    for (int64_t k = 0; k < 40; ++k)
      s += xd.value().item((i / 7) * 40 + k) *
           static_cast<double>(wf.value().item((i % 7) * 40 + k));
    ASSERT_NEAR(yd.item(i), s, 1e-12);
  }
}

TEST(OpsLoraLinearBf16, TheBaseIsBf16AndTheAdapterStaysF32) {
  SKIP_WITHOUT_BF16();
  const int64_t N = 29, in = 96, out = 45, r = 4;
  const double s = 2.0;
  Var w(randf({out, in}, 21, 0.1).to(DType::Q8_0)), b(randf({out}, 22));
  Tensor x0 = randf({N, in}, 23), a0 = randf({r, in}, 24, 0.1), b0 = randf({out, r}, 25, 0.1);
  Tensor dy = randf({N, out}, 26);
  auto run = [&](bool bf16, Tensor* y, Tensor* dx, Tensor* da, Tensor* db) {
    ScopedBf16Products mode(bf16);
    Var x(x0.clone(), true), a(a0.clone(), true), bm(b0.clone(), true);
    Tape t;
    Var yv = lora_linear(&t, x, w, b, x, a, bm, s);
    t.backward_from(yv, dy);
    *y = yv.value();
    *dx = x.grad();
    *da = a.grad();
    *db = bm.grad();
  };
  Tensor y16, dx16, da16, db16, y32, dx32, da32, db32;
  run(true, &y16, &dx16, &da16, &db16);
  run(false, &y32, &dx32, &da32, &db32);
  // The adapter's gradients never touch W: the same f32 sums in both modes.
  for (int64_t i = 0; i < da16.numel(); ++i) ASSERT_EQ(da16.item(i), da32.item(i));
  for (int64_t i = 0; i < db16.numel(); ++i) ASSERT_EQ(db16.item(i), db32.item(i));
  // y = bf16 base product + b + s·(x·Aᵀ)·Bᵀ in f32.
  const std::vector<double> X = bf16_values(x0), W = bf16_values(w.value());
  std::vector<double> P, S;
  reference(X, W, N, out, in, false, P, S);
  test::BoundCheck chk;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < out; ++o) {
      double low_sum = 0, low_abs = 0;
      for (int64_t j = 0; j < r; ++j) {
        double l = 0, la = 0;
        for (int64_t k = 0; k < in; ++k) {
          l += double(x0.data<float>()[n * in + k]) * a0.data<float>()[j * in + k];
          la += std::abs(double(x0.data<float>()[n * in + k]) * a0.data<float>()[j * in + k]);
        }
        low_sum += s * l * b0.data<float>()[o * r + j];
        low_abs += s * la * std::abs(b0.data<float>()[o * r + j]);
      }
      const int64_t i = n * out + o;
      const double bias = b.value().item(o);
      chk.add(y16.item(i), P[i] + bias + low_sum,
              bound(in + r + 3, S[i] + std::abs(bias) + low_abs), i);
    }
  EXPECT_LE(chk.worst(), 1.0) << chk.where();
  // And the base product really is bf16: the f32 run differs.
  double diff = 0;
  for (int64_t i = 0; i < y16.numel(); ++i)
    diff = std::max(diff, std::abs(y16.item(i) - y32.item(i)));
  EXPECT_GT(diff, 0.0);
}

TEST(OpsLmHeadBf16, LossAndInputGradientEqualTheBf16Reference) {
  SKIP_WITHOUT_BF16();
  const int64_t N = 37, C = 64, V = 301;
  for (DType t : {DType::F32, DType::BF16, DType::Q4_0}) {
    Var w(randf({V, C}, 31, 0.2).to(t));
    Var x(randf({N, C}, 32), true);
    std::vector<int32_t> tg(N);
    for (int64_t n = 0; n < N; ++n) tg[n] = n % 5 == 3 ? -100 : static_cast<int32_t>((n * 37) % V);
    Tape tape;
    Var loss;
    {
      ScopedBf16Products on(true);
      loss = lm_head_cross_entropy(&tape, x, w, tg, -100, 8);  // several chunks
    }
    tape.backward(loss);
    // Reference: logits from bf16 inputs in double; the loss; dlogits rounded to bf16 as they
    // enter the input-gradient product.
    const std::vector<double> X = bf16_values(x.value()), W = bf16_values(w.value());
    std::vector<double> P, S;
    reference(X, W, N, V, C, false, P, S);
    double total = 0, lbound = 0;
    int64_t count = 0;
    std::vector<double> dlog(static_cast<size_t>(N * V), 0.0), dlog_abs = dlog;
    for (int64_t n = 0; n < N; ++n) {
      if (tg[n] == -100) continue;
      ++count;
      double m = -INFINITY, z = 0, e = 0;
      for (int64_t v = 0; v < V; ++v) m = std::max(m, P[n * V + v]);
      for (int64_t v = 0; v < V; ++v) z += std::exp(P[n * V + v] - m);
      total += m + std::log(z) - P[n * V + tg[n]];
      for (int64_t v = 0; v < V; ++v) e = std::max(e, bound(C, S[n * V + v]));
      lbound += 2 * e + 64 * test::kUnitF32 * (std::abs(m) + std::log(z) + V);
      for (int64_t v = 0; v < V; ++v) dlog[n * V + v] = std::exp(P[n * V + v] - m) / z;
      dlog[n * V + tg[n]] -= 1;
    }
    const double want = total / double(count);
    EXPECT_NEAR(loss.value().item(), want, lbound / double(count)) << dtype_name(t);
    // dx = Σ_v bf16(dlogit)·W: the dlogit hone rounds differs from this one in f32 digits, and
    // bf16 rounding can then go to the neighbouring value: up to 2⁻⁸ relative per term.
    test::BoundCheck chk;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c) {
        double want_dx = 0, abs_sum = 0;
        if (tg[n] != -100)
          for (int64_t v = 0; v < V; ++v) {
            const double g = dlog[n * V + v] / double(count);
            want_dx += bf16_to_f32(f32_to_bf16(static_cast<float>(g))) * W[v * C + c];
            abs_sum += std::abs(g * W[v * C + c]);
          }
        chk.add(x.grad().item(n * C + c), want_dx,
                std::ldexp(1.0, -8) * abs_sum + bound(V + 8, abs_sum), n * C + c);
      }
    EXPECT_LE(chk.worst(), 1.0) << dtype_name(t) << " " << chk.where();
  }
}
