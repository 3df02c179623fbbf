// Every fast kernel against its plain-loop reference, in f32, on odd sizes (1, 3, 7, N±1).
#include <gtest/gtest.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "autograd/dtype.h"
#include "autograd/kernels/attention.h"
#include "autograd/kernels/blas.h"
#include "autograd/kernels/dropout.h"
#include "autograd/kernels/elementwise.h"
#include "autograd/kernels/embedding.h"
#include "autograd/kernels/rmsnorm.h"
#include "autograd/kernels/rope.h"
#include "autograd/kernels/xent.h"
#include "autograd/rng.h"
#include "rounding.h"

using namespace hone;
using namespace hone::kernels;

namespace {

std::vector<float> randn(size_t n, uint64_t seed, double sd = 1.0) {
  Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(sd * r.normal());
  return v;
}

// max |a−b| / max(1, |b|) over all elements.
double max_rel(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i)
    m = std::max(m, std::abs(double(a[i]) - b[i]) / std::max(1.0, std::abs(double(b[i]))));
  return m;
}

const int64_t kSizes[] = {1, 3, 7, 63, 65};

// got = gemm(α, A, B, β, C0) against want = gemm_ref (summed in f64, rounded once): whatever
// order this CPU's BLAS kernel sums in, each element is within γ_{K+2}·(|α|·Σ_k|a||b| + |β|·|c|)
// of the exact value (K products, the α and β terms), and want within u·|want| of it.
void expect_gemm_within(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                        const std::vector<float>& A, int64_t lda, const std::vector<float>& B,
                        int64_t ldb, float beta, const std::vector<float>& C0, int64_t ldc,
                        const std::vector<float>& got, const std::vector<float>& want,
                        const std::string& at) {
  auto absd = [](const std::vector<float>& v) {
    std::vector<double> d(v.size());
    for (size_t i = 0; i < v.size(); ++i) d[i] = std::abs(double(v[i]));
    return d;
  };
  std::vector<double> a = absd(A), b = absd(B), S = absd(C0);
  gemm_ref<double>(ta, tb, M, N, K, std::abs(double(alpha)), a.data(), lda, b.data(), ldb,
                   std::abs(double(beta)), S.data(), ldc);
  const double g = test::gamma_n(double(K + 2));
  test::BoundCheck chk;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      const int64_t e = i * ldc + j;
      chk.add(got[e], want[e], g * S[e] + test::kUnitF32 * std::abs(double(want[e])), e);
    }
  ASSERT_LE(chk.worst(), 1.0) << at << ": " << chk.where();
}

}  // namespace

TEST(KernelBlas, InfoNamesTheLibrary) {
  std::string info = blas_info();
  EXPECT_FALSE(info.empty());
  EXPECT_NE(info.find("core"), std::string::npos) << info;
  EXPECT_NE(info.find("threads"), std::string::npos) << info;
}

TEST(KernelBlas, GemmMatchesReferenceAllTransposesStrided) {
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (int64_t M : {1, 3, 7, 65})
        for (int64_t N : {1, 3, 63})
          for (int64_t K : {1, 7, 65}) {
            // Stored shapes with 2 extra columns of padding, so lda > row length.
            int64_t a_rows = ta ? K : M, a_cols = ta ? M : K;
            int64_t b_rows = tb ? N : K, b_cols = tb ? K : N;
            int64_t lda = a_cols + 2, ldb = b_cols + 3, ldc = N + 1;
            auto A = randn(size_t(a_rows * lda), 1);
            auto B = randn(size_t(b_rows * ldb), 2);
            auto C0 = randn(size_t(M * ldc), 3);
            auto C1 = C0;
            const auto C2 = C0;  // the input C
            gemm<float>(ta, tb, M, N, K, 0.7f, A.data(), lda, B.data(), ldb, 0.3f, C0.data(), ldc);
            gemm_ref<float>(ta, tb, M, N, K, 0.7f, A.data(), lda, B.data(), ldb, 0.3f, C1.data(),
                            ldc);
            expect_gemm_within(ta, tb, M, N, K, 0.7f, A, lda, B, ldb, 0.3f, C2, ldc, C0, C1,
                               "ta=" + std::to_string(ta) + " tb=" + std::to_string(tb) +
                                   " M=" + std::to_string(M) + " N=" + std::to_string(N) +
                                   " K=" + std::to_string(K));
          }
}

TEST(KernelBlas, SplitProductsMatchReferenceAndRepeatBitwise) {
  // Up to four parts per thread while each stays 512 long, always a multiple of the threads.
  EXPECT_EQ(split_parts(100000, 1), 1);
  EXPECT_EQ(split_parts(1023, 2), 2);
  EXPECT_EQ(split_parts(2100, 2), 4);
  EXPECT_EQ(split_parts(100000, 2), 8);
  EXPECT_EQ(split_parts(10, 3), 3);
  // From 2^20 multiply-adds gemm splits C by rows (M >= N) or columns into those parts, which
  // threads take as they free up: with 2 threads, 2100 rows or columns go in four uneven parts.
  struct Case {
    int64_t M, N, K;
  };
  for (Case c : {Case{2100, 20, 30}, Case{20, 2100, 30}, Case{1100, 37, 31}})
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        int64_t lda = (ta ? c.M : c.K) + 1, ldb = (tb ? c.K : c.N) + 2, ldc = c.N + 3;
        auto A = randn(size_t((ta ? c.K : c.M) * lda), 4);
        auto B = randn(size_t((tb ? c.N : c.K) * ldb), 5);
        auto C0 = randn(size_t(c.M * ldc), 6);
        auto C1 = C0, C2 = C0;
        const auto Cin = C0;
        gemm<float>(ta, tb, c.M, c.N, c.K, 0.7f, A.data(), lda, B.data(), ldb, 0.3f, C0.data(),
                    ldc);
        gemm<float>(ta, tb, c.M, c.N, c.K, 0.7f, A.data(), lda, B.data(), ldb, 0.3f, C2.data(),
                    ldc);
        gemm_ref<float>(ta, tb, c.M, c.N, c.K, 0.7f, A.data(), lda, B.data(), ldb, 0.3f, C1.data(),
                        ldc);
        expect_gemm_within(
            ta, tb, c.M, c.N, c.K, 0.7f, A, lda, B, ldb, 0.3f, Cin, ldc, C0, C1,
            "ta=" + std::to_string(ta) + " tb=" + std::to_string(tb) + " M=" + std::to_string(c.M));
        ASSERT_EQ(C0, C2) << "the same parts, whoever runs them, give the same bits";
      }
}

TEST(KernelBlas, GemmDoubleAndBetaZeroIgnoresGarbage) {
  int64_t M = 5, N = 3, K = 7;
  std::vector<double> A(M * K), B(K * N), C(M * N, std::nan("")), R(M * N, 0);
  Rng r(4);
  for (auto& x : A) x = r.normal();
  for (auto& x : B) x = r.normal();
  gemm<double>(false, false, M, N, K, 1.0, A.data(), K, B.data(), N, 0.0, C.data(), N);
  gemm_ref<double>(false, false, M, N, K, 1.0, A.data(), K, B.data(), N, 0.0, R.data(), N);
  // Any order of K products in f64: within γ_K·Σ|a||b| (u = 2^-53); R rounds once more.
  std::vector<double> S = test::abs_products(A.data(), B.data(), M, N, K, true);
  for (int64_t i = 0; i < M * N; ++i)
    EXPECT_LE(std::abs(C[i] - R[i]), test::dot_bound(double(K + 1), S[i], test::kUnitF64)) << i;
}

namespace {

// Every got[i] within bound(i) of want(i) (f64 functions of the index); names the worst element.
template <class Want, class Bound>
void expect_each_within(const std::vector<float>& got, const Want& want, const Bound& bound,
                        const std::string& what) {
  test::BoundCheck chk;
  for (size_t i = 0; i < got.size(); ++i) chk.add(got[i], want(i), bound(i), int64_t(i));
  EXPECT_LE(chk.worst(), 1.0) << what << ": " << chk.where();
}

double sigmoid64(double x) {
  return 1 / (1 + std::exp(-x));
}

}  // namespace

// Bounds from the float arithmetic, against the f64 value (each count has +1 for the f64
// reference's own error, far below u). exp_poly is within 2 ulp (4u) of e^−x (Vmath test), and
// 1 + e and the reciprocal round once each: s = sigmoid(x) is within 6u of s, relatively.
//  silu y = x·s: 7u·|y|; swiglu y = x·s·up: 8u·|y|; the reference rounds once more.
//  d silu/dx = s·(1 + x·(1 − s)) cancels near x = −1.28, so its error is absolute: s's 6u·s
//  carried through x·(1 − s) and two roundings leave the bracket within 6u·(1 + |x|); with s's own
//  6u and the product's u, 13u·s·(1 + |x|). Times dy (and up): 14u (15u); the += into the
//  gradient adds u of it and of the old value, the reference 2u: γ_18 (γ_19) of
//  |dy·up|·s·(1 + |x|) + |old|. d swiglu/d up = dy·x·s: 6u + 2u, +u, +2u: γ_12.
TEST(KernelElementwise, SiluSwigluMatchReference) {
  for (int64_t n : {1, 3, 7, 16383, 16385, 40001}) {
    const std::string at = " n=" + std::to_string(n);
    auto x = randn(n, 5, 3.0), u = randn(n, 6), dy = randn(n, 7);
    auto s = [&](size_t i) { return sigmoid64(x[i]); };
    std::vector<float> y0(n), y1(n);
    silu_fwd<float>(n, x.data(), y0.data());
    silu_fwd_ref<float>(n, x.data(), y1.data());
    auto silu = [&](size_t i) { return x[i] * s(i); };
    auto rel = [&](double k, const auto& f) {
      return [&, k](size_t i) { return test::gamma_n(k) * std::abs(f(i)); };
    };
    expect_each_within(y0, silu, rel(9, silu), "silu" + at);
    expect_each_within(y1, silu, rel(2, silu), "silu_ref" + at);
    const auto d_old = randn(n, 8);
    auto d0 = d_old, d1 = d_old;
    silu_bwd<float>(n, x.data(), dy.data(), d0.data());
    silu_bwd_ref<float>(n, x.data(), dy.data(), d1.data());
    auto dsilu = [&](size_t i) { return d_old[i] + dy[i] * (s(i) * (1 + x[i] * (1 - s(i)))); };
    auto dsilu_bound = [&](size_t i) {
      return test::gamma_n(18) *
             (std::abs(double(dy[i])) * s(i) * (1 + std::abs(double(x[i]))) + std::abs(d_old[i]));
    };
    expect_each_within(d0, dsilu, dsilu_bound, "silu_bwd" + at);
    expect_each_within(d1, dsilu, dsilu_bound, "silu_bwd_ref" + at);
    swiglu_fwd<float>(n, x.data(), u.data(), y0.data());
    swiglu_fwd_ref<float>(n, x.data(), u.data(), y1.data());
    auto swiglu = [&](size_t i) { return silu(i) * u[i]; };
    expect_each_within(y0, swiglu, rel(10, swiglu), "swiglu" + at);
    expect_each_within(y1, swiglu, rel(2, swiglu), "swiglu_ref" + at);
    const auto g_old = randn(n, 9), u_old = randn(n, 10);
    auto g0 = g_old, g1 = g_old, u0 = u_old, u1 = u_old;
    swiglu_bwd<float>(n, x.data(), u.data(), dy.data(), g0.data(), u0.data());
    swiglu_bwd_ref<float>(n, x.data(), u.data(), dy.data(), g1.data(), u1.data());
    auto dgate = [&](size_t i) {
      return g_old[i] + double(dy[i]) * u[i] * (s(i) * (1 + x[i] * (1 - s(i))));
    };
    auto dgate_bound = [&](size_t i) {
      return test::gamma_n(19) *
             (std::abs(double(dy[i]) * u[i]) * s(i) * (1 + std::abs(double(x[i]))) +
              std::abs(g_old[i]));
    };
    auto dup = [&](size_t i) { return u_old[i] + double(dy[i]) * x[i] * s(i); };
    auto dup_bound = [&](size_t i) {
      return test::gamma_n(12) * (std::abs(double(dy[i]) * x[i]) * s(i) + std::abs(u_old[i]));
    };
    expect_each_within(g0, dgate, dgate_bound, "swiglu_bwd gate" + at);
    expect_each_within(g1, dgate, dgate_bound, "swiglu_bwd_ref gate" + at);
    expect_each_within(u0, dup, dup_bound, "swiglu_bwd up" + at);
    expect_each_within(u1, dup, dup_bound, "swiglu_bwd_ref up" + at);
    // Storing into garbage (a fresh gradient buffer) equals adding into zeros, bit for bit.
    std::vector<float> gz(n, 0.0f), uz(n, 0.0f);
    auto gs = randn(n, 11), us = randn(n, 12);
    swiglu_bwd<float>(n, x.data(), u.data(), dy.data(), gz.data(), uz.data());
    swiglu_bwd<float>(n, x.data(), u.data(), dy.data(), gs.data(), us.data(), true, true);
    EXPECT_EQ(gs, gz) << n;
    EXPECT_EQ(us, uz) << n;
  }
}

// One correctly rounded operation gives the same bits on every IEEE machine; two (a product and
// a sum, maybe one fused multiply-add) are within γ_2 of the magnitudes they add, in f64.
TEST(KernelElementwise, AddMulScaleAxpy) {
  for (int64_t n : {1, 3, 7, 16385}) {
    auto a = randn(n, 1), b = randn(n, 2), dy = randn(n, 3);
    std::vector<float> y(n);
    add_fwd<float>(n, a.data(), b.data(), y.data());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y[i], a[i] + b[i]);
    mul_fwd<float>(n, a.data(), b.data(), y.data());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y[i], a[i] * b[i]);
    scale_fwd<float>(n, 2.5f, a.data(), y.data());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y[i], 2.5f * a[i]);
    std::vector<float> da(n, 1.0f), db(n, 0.0f);
    mul_bwd<float>(n, a.data(), b.data(), dy.data(), da.data(), db.data());
    const double g2 = test::gamma_n(2);
    for (int64_t i = 0; i < n; ++i) {
      const double p = double(dy[i]) * b[i];  // exact
      ASSERT_LE(std::abs(da[i] - (1 + p)), g2 * (1 + std::abs(p))) << i;
      ASSERT_EQ(db[i], dy[i] * a[i]) << i;  // 0 + one product
    }
    // store_a writes da; with da aliasing db (a·a) the second write adds: 2·dy·a.
    auto ds = randn(n, 4);
    mul_bwd<float>(n, a.data(), a.data(), dy.data(), ds.data(), ds.data(), true, false);
    for (int64_t i = 0; i < n; ++i) {
      const double p = double(dy[i]) * a[i];
      ASSERT_LE(std::abs(ds[i] - 2 * p), g2 * 2 * std::abs(p)) << i;
    }
    const auto db_old = db;
    axpy<float>(n, -1.0f, dy.data(), db.data());  // −1·dy is exact: one rounding
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(db[i], db_old[i] - dy[i]) << i;
  }
}

TEST(KernelRmsnorm, MatchesReference) {
  for (int64_t rows : {1, 3, 7, 129})
    for (int64_t C : {1, 3, 7, 65}) {
      auto x = randn(rows * C, 11, 2.0), w = randn(C, 12), dy = randn(rows * C, 13);
      std::vector<float> y0(rows * C), y1(rows * C), r0(rows), r1(rows);
      rmsnorm_fwd<float>(rows, C, x.data(), w.data(), 1e-5, y0.data(), r0.data());
      rmsnorm_fwd_ref<float>(rows, C, x.data(), w.data(), 1e-5, y1.data(), r1.data());
      EXPECT_LT(max_rel(y0, y1), 1e-5);
      EXPECT_LT(max_rel(r0, r1), 1e-5);
      auto dx0 = randn(rows * C, 14), dx1 = dx0, dw0 = randn(C, 15), dw1 = dw0;
      rmsnorm_bwd<float>(rows, C, x.data(), w.data(), r1.data(), dy.data(), dx0.data(), dw0.data());
      rmsnorm_bwd_ref<float>(rows, C, x.data(), w.data(), r1.data(), dy.data(), dx1.data(),
                             dw1.data());
      EXPECT_LT(max_rel(dx0, dx1), 1e-4) << rows << "x" << C;
      EXPECT_LT(max_rel(dw0, dw1), 1e-4) << rows << "x" << C;
    }
}

TEST(KernelRope, MatchesReferenceAndInverts) {
  for (int64_t N : {1, 3, 7, 65})
    for (int64_t H : {1, 3})
      for (int64_t D : {2, 6, 64}) {
        std::vector<double> inv(D / 2);
        for (int64_t i = 0; i < D / 2; ++i) inv[i] = std::pow(10000.0, -2.0 * i / D);
        std::vector<int32_t> pos(N);
        for (int64_t n = 0; n < N; ++n) pos[n] = static_cast<int32_t>((n * 37) % 101);
        // Angles come from a cached table, rebuilt as D (the frequencies) or the largest
        // position change; past 64k positions they are computed directly.
        if (N == 65 && H == 3) pos[64] = 70000;
        auto x = randn(N * H * D, 21);
        std::vector<float> y0(x.size()), y1(x.size());
        rope_fwd<float>(N, H, D, x.data(), pos.data(), inv.data(), y0.data());
        rope_fwd_ref<float>(N, H, D, x.data(), pos.data(), inv.data(), y1.data());
        EXPECT_LT(max_rel(y0, y1), 1e-5);
        auto d0 = randn(x.size(), 22), d1 = d0;
        rope_bwd<float>(N, H, D, x.data(), pos.data(), inv.data(), d0.data());
        rope_bwd_ref<float>(N, H, D, x.data(), pos.data(), inv.data(), d1.data());
        EXPECT_LT(max_rel(d0, d1), 1e-5);
        // Storing into garbage (a fresh gradient buffer) equals adding into zeros.
        std::vector<float> dz(x.size(), 0.0f);
        auto ds = randn(x.size(), 23);
        rope_bwd<float>(N, H, D, x.data(), pos.data(), inv.data(), dz.data());
        rope_bwd<float>(N, H, D, x.data(), pos.data(), inv.data(), ds.data(), true);
        EXPECT_EQ(ds, dz);
        // The backward rotation undoes the forward one.
        std::vector<float> back(x.size(), 0.0f);
        rope_bwd<float>(N, H, D, y0.data(), pos.data(), inv.data(), back.data());
        EXPECT_LT(max_rel(back, x), 1e-5);
      }
}

TEST(KernelXent, MatchesReferenceWithIgnoredRows) {
  for (int64_t N : {1, 3, 7, 33})
    for (int64_t V : {1, 3, 7, 1025}) {
      auto logits = randn(N * V, 31, 4.0);
      std::vector<int32_t> t(N);
      for (int64_t n = 0; n < N; ++n) t[n] = (n % 3 == 2) ? -100 : static_cast<int32_t>(n % V);
      std::vector<float> l0(N), l1(N), s0(N), s1(N);
      xent_fwd<float>(N, V, logits.data(), t.data(), -100, s0.data(), l0.data());
      xent_fwd_ref<float>(N, V, logits.data(), t.data(), -100, s1.data(), l1.data());
      EXPECT_LT(max_rel(l0, l1), 1e-5);
      EXPECT_LT(max_rel(s0, s1), 1e-5);
      auto d0 = randn(N * V, 32), d1 = d0;
      xent_bwd<float>(N, V, logits.data(), t.data(), -100, s1.data(), 0.5f, d0.data());
      xent_bwd_ref<float>(N, V, logits.data(), t.data(), -100, s1.data(), 0.5f, d1.data());
      EXPECT_LT(max_rel(d0, d1), 1e-5);
      // store into garbage == add into zeros (ignored rows come out zero), bit for bit.
      std::vector<float> dz(N * V, 0.0f);
      auto ds = randn(N * V, 33);
      xent_bwd<float>(N, V, logits.data(), t.data(), -100, s1.data(), 0.5f, dz.data());
      xent_bwd<float>(N, V, logits.data(), t.data(), -100, s1.data(), 0.5f, ds.data(), true);
      EXPECT_EQ(ds, dz) << N << "x" << V;
    }
}

TEST(KernelAttention, MatchesReferenceIncludingKvCacheShape) {
  struct Case {
    int64_t B, Tq, Tk, Hq, Hkv, D;
  };
  for (Case c : {Case{1, 1, 1, 1, 1, 1}, Case{2, 3, 3, 4, 2, 7}, Case{1, 7, 7, 3, 3, 5},
                 Case{2, 1, 9, 4, 1, 8}, Case{1, 3, 10, 2, 2, 3}, Case{1, 257, 257, 2, 1, 16},
                 Case{1, 255, 300, 2, 2, 9}}) {
    const int64_t nq = c.B * c.Tq * c.Hq * c.D, nk = c.B * c.Tk * c.Hkv * c.D;
    auto q = randn(nq, 41), k = randn(nk, 42), v = randn(nk, 43), dout = randn(nq, 44);
    std::vector<float> o0(nq), o1(nq), l0(c.B * c.Hq * c.Tq), l1(l0.size());
    attention_fwd<float>(c.B, c.Tq, c.Tk, c.Hq, c.Hkv, c.D, q.data(), k.data(), v.data(), o0.data(),
                         l0.data());
    attention_fwd_ref<float>(c.B, c.Tq, c.Tk, c.Hq, c.Hkv, c.D, q.data(), k.data(), v.data(),
                             o1.data(), l1.data());
    EXPECT_LT(max_rel(o0, o1), 1e-5) << c.B << " " << c.Tq << " " << c.Tk;
    EXPECT_LT(max_rel(l0, l1), 1e-5);
    auto dq0 = randn(nq, 45), dq1 = dq0, dk0 = randn(nk, 46), dk1 = dk0, dv0 = randn(nk, 47),
         dv1 = dv0;
    attention_bwd<float>(c.B, c.Tq, c.Tk, c.Hq, c.Hkv, c.D, q.data(), k.data(), v.data(), o1.data(),
                         l1.data(), dout.data(), dq0.data(), dk0.data(), dv0.data());
    attention_bwd_ref<float>(c.B, c.Tq, c.Tk, c.Hq, c.Hkv, c.D, q.data(), k.data(), v.data(),
                             o1.data(), l1.data(), dout.data(), dq1.data(), dk1.data(), dv1.data());
    EXPECT_LT(max_rel(dq0, dq1), 1e-4);
    EXPECT_LT(max_rel(dk0, dk1), 1e-4);
    EXPECT_LT(max_rel(dv0, dv1), 1e-4);
    // Stored into garbage (fresh gradient buffers) == added into zeros, bit for bit.
    std::vector<float> zq(nq, 0.0f), zk(nk, 0.0f), zv(nk, 0.0f);
    auto sq = randn(nq, 48), sk = randn(nk, 49), sv = randn(nk, 50);
    attention_bwd<float>(c.B, c.Tq, c.Tk, c.Hq, c.Hkv, c.D, q.data(), k.data(), v.data(), o1.data(),
                         l1.data(), dout.data(), zq.data(), zk.data(), zv.data());
    attention_bwd<float>(c.B, c.Tq, c.Tk, c.Hq, c.Hkv, c.D, q.data(), k.data(), v.data(), o1.data(),
                         l1.data(), dout.data(), sq.data(), sk.data(), sv.data(), nullptr, true,
                         true, true);
    EXPECT_EQ(sq, zq);
    EXPECT_EQ(sk, zk);
    EXPECT_EQ(sv, zv);
  }
  // No queries over 3 cached keys: stored key/value gradients come out zero, not garbage.
  auto k3 = randn(3 * 4, 61), gk = randn(3 * 4, 62), gv = randn(3 * 4, 63);
  attention_bwd<float>(1, 0, 3, 2, 2, 2, nullptr, k3.data(), k3.data(), nullptr, nullptr, nullptr,
                       nullptr, gk.data(), gv.data(), nullptr, false, true, true);
  EXPECT_EQ(gk, std::vector<float>(12, 0.0f));
  EXPECT_EQ(gv, std::vector<float>(12, 0.0f));
}

TEST(KernelAttention, LastRowOfFullPassEqualsOneStepWithCache) {
  // Generation reuses the kernel with Tq=1 over Tk cached keys: must equal the full pass's last
  // row.
  const int64_t T = 9, H = 2, D = 4;
  auto q = randn(T * H * D, 51), k = randn(T * H * D, 52), v = randn(T * H * D, 53);
  std::vector<float> full(T * H * D), lf(H * T), step(H * D), ls(H);
  attention_fwd<float>(1, T, T, H, H, D, q.data(), k.data(), v.data(), full.data(), lf.data());
  attention_fwd<float>(1, 1, T, H, H, D, q.data() + (T - 1) * H * D, k.data(), v.data(),
                       step.data(), ls.data());
  for (int64_t i = 0; i < H * D; ++i) EXPECT_NEAR(step[i], full[(T - 1) * H * D + i], 1e-6);
}

TEST(KernelEmbedding, GatherConvertsAndScatterAdds) {
  const int64_t V = 7, C = 5;
  auto table = randn(V * C, 61);
  std::vector<uint16_t> bf(V * C), hf(V * C);
  for (int64_t i = 0; i < V * C; ++i) {
    bf[i] = f32_to_bf16(table[i]);
    hf[i] = f32_to_f16(table[i]);
  }
  std::vector<int32_t> ids = {3, 0, 6, 3, 1};
  const int64_t N = 5;
  for (auto [ptr, dt] : {std::pair<const void*, DType>{table.data(), DType::F32},
                         {bf.data(), DType::BF16},
                         {hf.data(), DType::F16}}) {
    std::vector<float> o0(N * C), o1(N * C);
    embedding_fwd<float>(N, C, ptr, dt, ids.data(), o0.data());
    embedding_fwd_ref<float>(N, C, ptr, dt, ids.data(), o1.data());
    EXPECT_EQ(o0, o1) << dtype_name(dt);
  }
  auto dy = randn(N * C, 62);
  std::vector<float> dt(V * C, 0.0f);
  embedding_bwd<float>(N, C, ids.data(), dy.data(), dt.data());
  for (int64_t c = 0; c < C; ++c) {
    EXPECT_EQ(dt[3 * C + c], dy[0 * C + c] + dy[3 * C + c]);
    EXPECT_EQ(dt[2 * C + c], 0.0f);
  }
}

TEST(KernelDropout, MaskIsReproducibleAndBackwardMatches) {
  for (int64_t n : {1, 3, 7, 1001}) {
    auto x = randn(n, 71), dy = randn(n, 72);
    std::vector<float> y(n), dx(n, 0.0f);
    uint64_t after = dropout_fwd<float>(n, 0.25, 1234, x.data(), y.data());
    Rng r(1234);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; ++i) {
      bool keep = r.uniform() >= 0.25;
      kept += keep;
      ASSERT_EQ(y[i], keep ? x[i] * static_cast<float>(1.0 / 0.75) : 0.0f);
    }
    EXPECT_EQ(after, r.state());
    dropout_bwd<float>(n, 0.25, 1234, dy.data(), dx.data());
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(dx[i],
                y[i] == 0.0f && x[i] != 0.0f ? 0.0f : dy[i] * static_cast<float>(1.0 / 0.75));
    if (n == 1001) {
      EXPECT_NEAR(double(kept) / n, 0.75, 0.05);
    }
  }
}

TEST(KernelDeterminism, SameBitsWithOneOrManyThreads) {
  // Row-parallel kernels must not depend on how rows are split across threads.
  const int64_t rows = 1000, C = 64, V = 700, T = 300, H = 2, D = 8;
  auto x = randn(rows * C, 91), w = randn(C, 92), dy = randn(rows * C, 93);
  auto logits = randn(rows * V / 4, 94);
  std::vector<int32_t> tg(rows / 4);
  for (size_t i = 0; i < tg.size(); ++i) tg[i] = static_cast<int32_t>((i * 13) % V);
  auto q = randn(T * H * D, 95), k = randn(T * H * D, 96), v = randn(T * H * D, 97);
  auto run = [&]() {
    std::vector<float> y(rows * C), inv(rows), dx(rows * C, 0.0f), dw(C, 0.0f);
    rmsnorm_fwd<float>(rows, C, x.data(), w.data(), 1e-5, y.data(), inv.data());
    rmsnorm_bwd<float>(rows, C, x.data(), w.data(), inv.data(), dy.data(), dx.data(), dw.data());
    std::vector<float> lse(tg.size()), loss(tg.size()), dl(logits.size(), 0.0f);
    xent_fwd<float>(tg.size(), V, logits.data(), tg.data(), -100, lse.data(), loss.data());
    xent_bwd<float>(tg.size(), V, logits.data(), tg.data(), -100, lse.data(), 0.1f, dl.data());
    std::vector<float> o(T * H * D), l(H * T), dq(q.size(), 0.0f), dk(q.size(), 0.0f),
        dv(q.size(), 0.0f);
    attention_fwd<float>(1, T, T, H, H, D, q.data(), k.data(), v.data(), o.data(), l.data());
    attention_bwd<float>(1, T, T, H, H, D, q.data(), k.data(), v.data(), o.data(), l.data(),
                         q.data(), dq.data(), dk.data(), dv.data());
    std::vector<float> all;
    for (auto* vec : {&y, &inv, &dx, &dw, &lse, &loss, &dl, &o, &l, &dq, &dk, &dv})
      all.insert(all.end(), vec->begin(), vec->end());
    return all;
  };
  std::vector<float> one, many;
  tbb::task_arena(1).execute([&] { one = run(); });
  tbb::task_arena(4).execute([&] { many = run(); });
  ASSERT_EQ(one.size(), many.size());
  for (size_t i = 0; i < one.size(); ++i) ASSERT_EQ(one[i], many[i]) << i;
}
