// Attention over packed examples (segment starts): the fast kernel against the plain-loop
// reference, the op's f64 gradient check, and that no output depends on another example.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/kernels/attention.h"
#include "autograd/ops.h"

using namespace hone;

namespace {

// Examples of lengths `lens` packed back to back in each of B rows of length T.
std::vector<int32_t> starts_for(int64_t B, const std::vector<int32_t>& lens) {
  std::vector<int32_t> s;
  for (int64_t b = 0; b < B; ++b) {
    int32_t at = 0;
    for (int32_t len : lens) {
      for (int32_t i = 0; i < len; ++i) s.push_back(at);
      at += len;
    }
  }
  return s;
}

std::vector<float> randn(size_t n, uint64_t seed) {
  Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(r.normal());
  return v;
}

TEST(AttentionSegments, KernelMatchesReferenceOnOddSizes) {
  for (int64_t T : {1, 7, 263}) {  // 263 > the kernel's 256-row query block
    std::vector<int32_t> lens;
    for (int32_t left = static_cast<int32_t>(T), n = 1; left > 0; n = n * 2 + 1) {
      lens.push_back(std::min(left, n));
      left -= lens.back();
    }
    const int64_t B = 2, Hq = 4, Hkv = 2, D = 5;
    auto ks = starts_for(B, lens);
    auto q = randn(B * T * Hq * D, 1), k = randn(B * T * Hkv * D, 2), v = randn(B * T * Hkv * D, 3),
         dout = randn(B * T * Hq * D, 4);
    std::vector<float> o(q.size()), o_ref(q.size()), lse(B * Hq * T), lse_ref(lse.size());
    kernels::attention_fwd<float>(B, T, T, Hq, Hkv, D, q.data(), k.data(), v.data(), o.data(),
                                  lse.data(), ks.data());
    kernels::attention_fwd_ref<float>(B, T, T, Hq, Hkv, D, q.data(), k.data(), v.data(),
                                      o_ref.data(), lse_ref.data(), ks.data());
    for (size_t i = 0; i < o.size(); ++i) ASSERT_NEAR(o[i], o_ref[i], 1e-4) << "T=" << T;
    std::vector<float> dq(q.size()), dk(k.size()), dv(v.size()), dq_r(q.size()), dk_r(k.size()),
        dv_r(v.size());
    kernels::attention_bwd<float>(B, T, T, Hq, Hkv, D, q.data(), k.data(), v.data(), o.data(),
                                  lse.data(), dout.data(), dq.data(), dk.data(), dv.data(),
                                  ks.data());
    kernels::attention_bwd_ref<float>(B, T, T, Hq, Hkv, D, q.data(), k.data(), v.data(),
                                      o_ref.data(), lse_ref.data(), dout.data(), dq_r.data(),
                                      dk_r.data(), dv_r.data(), ks.data());
    for (size_t i = 0; i < dq.size(); ++i) ASSERT_NEAR(dq[i], dq_r[i], 1e-3);
    for (size_t i = 0; i < dk.size(); ++i) ASSERT_NEAR(dk[i], dk_r[i], 1e-3);
    for (size_t i = 0; i < dv.size(); ++i) ASSERT_NEAR(dv[i], dv_r[i], 1e-3);
  }
}

TEST(AttentionSegments, GradcheckWithPackedExamples) {
  const int64_t B = 2, T = 7, Hq = 4, Hkv = 2, D = 3;
  const auto ks = starts_for(B, {3, 1, 3});
  auto mk = [](Shape s, uint64_t seed) {
    Tensor t = Tensor::empty(DType::F64, s);
    Rng r(seed);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = r.normal();
    return Var(t, true);
  };
  Var q = mk({B * T, Hq * D}, 1), k = mk({B * T, Hkv * D}, 2), v = mk({B * T, Hkv * D}, 3);
  auto fn = [&](Tape* t, const std::vector<Var>& in) {
    return attention(t, in[0], in[1], in[2], B, Hq, Hkv, D, &ks);
  };
  std::string where;
  EXPECT_LT(gradcheck(fn, {q, k, v}, 1e-6, 7, &where), 1e-6) << where;
}

TEST(AttentionSegments, OutputsDoNotDependOnOtherExamples) {
  const int64_t B = 1, T = 9, H = 2, D = 4;
  const auto ks = starts_for(B, {4, 5});
  auto a = randn(T * H * D, 5), k = randn(T * H * D, 6), v = randn(T * H * D, 7);
  auto run = [&](std::vector<float> kk, std::vector<float> vv) {
    Var q(Tensor::from_f32(a, {T, H * D})), kv(Tensor::from_f32(kk, {T, H * D})),
        vv2(Tensor::from_f32(vv, {T, H * D}));
    return attention(nullptr, q, kv, vv2, B, H, H, D, &ks).value().clone();
  };
  Tensor base = run(k, v);
  // Change the keys and values of the second example only: the first example's rows stay.
  for (int64_t i = 4 * H * D; i < T * H * D; ++i) k[i] += 1.0f, v[i] -= 2.0f;
  Tensor changed = run(k, v);
  for (int64_t i = 0; i < 4 * H * D; ++i) ASSERT_EQ(base.item(i), changed.item(i));
  std::vector<int32_t> bad(T, 0);
  bad[2] = 3;  // a start after its own row
  Var q(Tensor::from_f32(a, {T, H * D})), kv(Tensor::from_f32(k, {T, H * D}));
  EXPECT_THROW(attention(nullptr, q, kv, kv, B, H, H, D, &bad), Error);
}

}  // namespace
