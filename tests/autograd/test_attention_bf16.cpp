// Attention with bf16 products (kernels/attention.h: attention_fwd_bf16/attention_bwd_bf16)
// against plain loops in double that round the products' inputs the same way: q, k, v and dO to
// bf16, while P and dS stay exact. What is left between the two is the kernel's own rounding of
// P and scale·dS to bf16 (relative 2⁻⁸ per term) and f32 arithmetic (~1e-6 relative), so each
// element is held to 1.01·2⁻⁸·Σ|the terms it sums| plus 1e-5 of the f32 parts. A kernel that
// transposed, masked or scaled wrongly is off by O(1) of the terms and fails.
#include <gtest/gtest.h>
#include <tbb/global_control.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "autograd/dtype.h"
#include "autograd/kernels/attention.h"
#include "autograd/kernels/bf16_gemm.h"
#include "autograd/ops.h"
#include "autograd/rng.h"
#include "autograd/tape.h"

using namespace hone;
using namespace hone::kernels;

namespace {

#define SKIP_WITHOUT_BF16() \
  if (!bf16_gemm_available()) GTEST_SKIP() << "no bf16 product in this build: " << bf16_gemm_info()

const double kU = std::ldexp(1.0, -8);  // bf16 unit roundoff (8 significant bits)

struct Case {
  int64_t B, Tq, Tk, Hq, Hkv, D;
  bool segments;  // packed examples: every third row starts a new one
};

std::vector<float> randv(int64_t n, uint64_t seed, double sd) {
  std::vector<float> v(static_cast<size_t>(n));
  Rng r(seed);
  for (auto& x : v) x = static_cast<float>(sd * r.normal());
  return v;
}

double bf(float x) {
  return bf16_to_f32(f32_to_bf16(x));
}

// Per-row segment starts within [0, row % Tq] (as the attention op requires).
std::vector<int32_t> starts_for(const Case& c) {
  std::vector<int32_t> s(static_cast<size_t>(c.B * c.Tq));
  for (int64_t r = 0; r < c.B * c.Tq; ++r) {
    const int64_t i = r % c.Tq + (c.Tk - c.Tq);
    s[r] = static_cast<int32_t>(std::min<int64_t>(i - i % 3, r % c.Tq));
  }
  return s;
}

struct Data {
  std::vector<float> q, k, v, dout;
};

Data make(const Case& c, uint64_t seed) {
  return {randv(c.B * c.Tq * c.Hq * c.D, seed, 1.5), randv(c.B * c.Tk * c.Hkv * c.D, seed + 1, 1.5),
          randv(c.B * c.Tk * c.Hkv * c.D, seed + 2, 1.0),
          randv(c.B * c.Tq * c.Hq * c.D, seed + 3, 1.0)};
}

// Calls fn(b, h, i, j, qi, kj) for every visible (query row, key row) pair; qi/kj index the
// first element of the head's D values.
template <class F>
void for_pairs(const Case& c, const int32_t* ks, const F& fn) {
  const int64_t off = c.Tk - c.Tq, group = c.Hq / c.Hkv;
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.Hq; ++h)
      for (int64_t i = 0; i < c.Tq; ++i)
        for (int64_t j = ks ? ks[b * c.Tq + i] : 0; j <= i + off; ++j)
          fn(b, h, i, j, (b * c.Tq + i) * c.Hq * c.D + h * c.D,
             (b * c.Tk + j) * c.Hkv * c.D + (h / group) * c.D);
}

// scale·q̃·k̃ of one pair and its f32 accumulation bound.
double score(const Case& c, const Data& x, int64_t qi, int64_t kj, double* err) {
  double s = 0, a = 0;
  for (int64_t d = 0; d < c.D; ++d) {
    const double t = bf(x.q[qi + d]) * bf(x.k[kj + d]);
    s += t;
    a += std::fabs(t);
  }
  const double scale = 1.0 / std::sqrt(double(c.D));
  *err = 1e-6 * a * scale;
  return s * scale;
}

void check_case(const Case& c) {
  SCOPED_TRACE("B=" + std::to_string(c.B) + " Tq=" + std::to_string(c.Tq) +
               " Tk=" + std::to_string(c.Tk) + " Hq=" + std::to_string(c.Hq) +
               " Hkv=" + std::to_string(c.Hkv) + " D=" + std::to_string(c.D));
  const Data x = make(c, static_cast<uint64_t>(c.Tq * 131 + c.D));
  const std::vector<int32_t> st = starts_for(c);
  const int32_t* ks = c.segments ? st.data() : nullptr;
  const int64_t nq = c.B * c.Tq * c.Hq * c.D, nk = c.B * c.Tk * c.Hkv * c.D;
  std::vector<float> out(nq), lse(c.B * c.Hq * c.Tq);
  attention_fwd_bf16(c.B, c.Tq, c.Tk, c.Hq, c.Hkv, c.D, x.q.data(), x.k.data(), x.v.data(),
                     out.data(), lse.data(), ks);

  // Forward: exact softmax of the rounded scores; O = Σ_j p_j·ṽ_j.
  const int64_t rows = c.B * c.Hq * c.Tq;
  std::vector<double> m(rows, -1e300), z(rows, 0), ds_max(rows, 0);
  auto row = [&](int64_t b, int64_t h, int64_t i) { return (b * c.Hq + h) * c.Tq + i; };
  for_pairs(c, ks, [&](int64_t b, int64_t h, int64_t i, int64_t, int64_t qi, int64_t kj) {
    double e;
    m[row(b, h, i)] = std::max(m[row(b, h, i)], score(c, x, qi, kj, &e));
    ds_max[row(b, h, i)] = std::max(ds_max[row(b, h, i)], e);
  });
  for_pairs(c, ks, [&](int64_t b, int64_t h, int64_t i, int64_t, int64_t qi, int64_t kj) {
    double e;
    z[row(b, h, i)] += std::exp(score(c, x, qi, kj, &e) - m[row(b, h, i)]);
  });
  std::vector<double> o(nq, 0), o_bound(nq, 0);
  for_pairs(c, ks, [&](int64_t b, int64_t h, int64_t i, int64_t, int64_t qi, int64_t kj) {
    double e;
    const int64_t r = row(b, h, i);
    const double p = std::exp(score(c, x, qi, kj, &e) - m[r]) / z[r];
    const double rel = 1.01 * kU + 2 * ds_max[r] + 1e-6;
    for (int64_t d = 0; d < c.D; ++d) {
      o[qi + d] += p * bf(x.v[kj + d]);
      o_bound[qi + d] += rel * p * std::fabs(bf(x.v[kj + d]));
    }
  });
  double worst = 0;
  for (int64_t n = 0; n < nq; ++n) {
    const double err = std::fabs(out[n] - o[n]), bnd = o_bound[n] + 1e-7;
    ASSERT_LE(err, bnd) << "out[" << n << "] = " << out[n] << ", reference " << o[n];
    worst = std::max(worst, err / bnd);
  }
  for (int64_t r = 0; r < rows; ++r) {
    const double want = m[r] + std::log(z[r]);
    ASSERT_NEAR(lse[r], want, ds_max[r] + 1e-6 * (1 + std::fabs(want))) << "lse row " << r;
  }

  // Backward, from the kernel's own out and lse (so both sides recompute the same P).
  std::vector<float> dq(nq, 0.5f), dk(nk, 0.5f), dv(nk, 0.5f);  // accumulated into (+=)
  attention_bwd_bf16(c.B, c.Tq, c.Tk, c.Hq, c.Hkv, c.D, x.q.data(), x.k.data(), x.v.data(),
                     out.data(), lse.data(), x.dout.data(), dq.data(), dk.data(), dv.data(), ks);
  std::vector<double> di(rows, 0);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.Hq; ++h)
      for (int64_t i = 0; i < c.Tq; ++i)
        for (int64_t d = 0; d < c.D; ++d) {
          const int64_t qi = (b * c.Tq + i) * c.Hq * c.D + h * c.D + d;
          di[row(b, h, i)] += double(out[qi]) * x.dout[qi];
        }
  const double scale = 1.0 / std::sqrt(double(c.D));
  std::vector<double> gq(nq, 0.5), gk(nk, 0.5), gv(nk, 0.5), bq(nq, 0), bk(nk, 0), bv(nk, 0);
  for_pairs(c, ks, [&](int64_t b, int64_t h, int64_t i, int64_t, int64_t qi, int64_t kj) {
    double e;
    const int64_t r = row(b, h, i);
    const double p = std::exp(score(c, x, qi, kj, &e) - lse[r]);
    double dp = 0, dp_abs = 0;
    for (int64_t d = 0; d < c.D; ++d) {
      dp += bf(x.dout[qi + d]) * bf(x.v[kj + d]);
      dp_abs += std::fabs(bf(x.dout[qi + d]) * bf(x.v[kj + d]));
    }
    const double ds = p * (dp - di[r]);
    // The kernel's dS: rounded to bf16 (u), from f32 P (its scores off by e) and f32 sums.
    const double ds_err = 1.01 * kU * std::fabs(ds) +
                          p * (std::fabs(dp) + std::fabs(di[r])) * (2 * e + 1e-5) +
                          1e-5 * p * dp_abs;
    const double p_rel = 1.01 * kU + 2 * e + 1e-6;
    for (int64_t d = 0; d < c.D; ++d) {
      const double qd = bf(x.q[qi + d]), kd = bf(x.k[kj + d]), dod = bf(x.dout[qi + d]);
      gv[kj + d] += p * dod;
      bv[kj + d] += p_rel * p * std::fabs(dod);
      gq[qi + d] += scale * ds * kd;
      bq[qi + d] += scale * ds_err * std::fabs(kd);
      gk[kj + d] += scale * ds * qd;
      bk[kj + d] += scale * ds_err * std::fabs(qd);
    }
  });
  auto expect_within = [&](const char* name, const std::vector<float>& got,
                           const std::vector<double>& want, const std::vector<double>& bnd) {
    for (size_t n = 0; n < got.size(); ++n) {
      const double b = bnd[n] + 1e-6 * (1 + std::fabs(want[n]));
      ASSERT_LE(std::fabs(got[n] - want[n]), b)
          << name << "[" << n << "] = " << got[n] << ", reference " << want[n];
      worst = std::max(worst, std::fabs(got[n] - want[n]) / b);
    }
  };
  expect_within("dq", dq, gq, bq);
  expect_within("dk", dk, gk, bk);
  expect_within("dv", dv, gv, bv);
  ::testing::Test::RecordProperty("worst_fraction_of_bound", std::to_string(worst));
  std::printf("worst error: %.3f of the bound\n", worst);
}

}  // namespace

TEST(KernelAttentionBf16, ForwardAndBackwardWithinTheBf16BoundOfARoundedReference) {
  SKIP_WITHOUT_BF16();
  for (const Case& c : {Case{1, 1, 1, 1, 1, 1, false}, Case{1, 5, 5, 2, 1, 3, false},
                        Case{2, 70, 70, 4, 2, 16, false}, Case{1, 130, 130, 3, 3, 64, true},
                        Case{2, 3, 67, 4, 4, 8, false}, Case{1, 65, 65, 2, 2, 17, true}})
    check_case(c);
}

TEST(KernelAttentionBf16, SameBitsWhateverTheThreadCount) {
  SKIP_WITHOUT_BF16();
  const Case c{2, 150, 150, 6, 2, 32, true};
  const Data x = make(c, 7);
  const std::vector<int32_t> st = starts_for(c);
  const int64_t nq = c.B * c.Tq * c.Hq * c.D, nk = c.B * c.Tk * c.Hkv * c.D;
  auto run = [&](int threads) {
    tbb::global_control gc(tbb::global_control::max_allowed_parallelism, threads);
    std::vector<float> out(nq), lse(c.B * c.Hq * c.Tq), dq(nq), dk(nk), dv(nk);
    attention_fwd_bf16(c.B, c.Tq, c.Tk, c.Hq, c.Hkv, c.D, x.q.data(), x.k.data(), x.v.data(),
                       out.data(), lse.data(), st.data());
    attention_bwd_bf16(c.B, c.Tq, c.Tk, c.Hq, c.Hkv, c.D, x.q.data(), x.k.data(), x.v.data(),
                       out.data(), lse.data(), x.dout.data(), dq.data(), dk.data(), dv.data(),
                       st.data(), true, true, true);
    out.insert(out.end(), lse.begin(), lse.end());
    for (const auto* g : {&dq, &dk, &dv}) out.insert(out.end(), g->begin(), g->end());
    return out;
  };
  const std::vector<float> one = run(1), two = run(2), three = run(3);
  EXPECT_EQ(0, std::memcmp(one.data(), two.data(), one.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(one.data(), three.data(), one.size() * sizeof(float)));
}

TEST(OpsAttentionBf16, TheOpFollowsTheComputeDtypeInBothPasses) {
  SKIP_WITHOUT_BF16();
  const Case c{2, 40, 40, 4, 2, 16, false};
  const Data x = make(c, 11);
  const int64_t rows = c.B * c.Tq;
  auto run = [&](bool bf16) {
    ScopedBf16Products mode(bf16);
    Tape tape;
    auto leaf = [&](const std::vector<float>& v, int64_t cols) {
      Tensor t = Tensor::empty(DType::F32, {rows, cols});
      std::copy(v.begin(), v.end(), t.data<float>());
      return Var(std::move(t), true);
    };
    Var q = leaf(x.q, c.Hq * c.D), k = leaf(x.k, c.Hkv * c.D), v = leaf(x.v, c.Hkv * c.D);
    Var y = attention(&tape, q, k, v, c.B, c.Hq, c.Hkv, c.D);
    Tensor g = Tensor::empty(DType::F32, y.shape());
    std::copy(x.dout.begin(), x.dout.end(), g.data<float>());
    // Switching back before the backward must not matter: it follows the forward's choice.
    set_bf16_products(!bf16);
    tape.backward_from(y, g);
    set_bf16_products(bf16);
    std::vector<float> all(y.value().data<float>(), y.value().data<float>() + y.value().numel());
    for (const Var* p : {&q, &k, &v})
      all.insert(all.end(), p->grad().data<float>(), p->grad().data<float>() + p->grad().numel());
    return all;
  };
  // The kernels called directly, in the op's store mode.
  const int64_t nq = rows * c.Hq * c.D, nk = rows * c.Hkv * c.D;
  std::vector<float> out(nq), lse(c.B * c.Hq * c.Tq), dq(nq), dk(nk), dv(nk);
  attention_fwd_bf16(c.B, c.Tq, c.Tk, c.Hq, c.Hkv, c.D, x.q.data(), x.k.data(), x.v.data(),
                     out.data(), lse.data());
  attention_bwd_bf16(c.B, c.Tq, c.Tk, c.Hq, c.Hkv, c.D, x.q.data(), x.k.data(), x.v.data(),
                     out.data(), lse.data(), x.dout.data(), dq.data(), dk.data(), dv.data(),
                     nullptr, true, true, true);
  std::vector<float> direct = out;
  for (const auto* g : {&dq, &dk, &dv}) direct.insert(direct.end(), g->begin(), g->end());
  const std::vector<float> with_bf16 = run(true), with_f32 = run(false);
  ASSERT_EQ(with_bf16.size(), direct.size());
  EXPECT_EQ(0, std::memcmp(with_bf16.data(), direct.data(), direct.size() * sizeof(float)));
  EXPECT_NE(0, std::memcmp(with_f32.data(), direct.data(), direct.size() * sizeof(float)));
}
