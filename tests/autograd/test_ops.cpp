// Every op in autograd/ops.h: f64 gradient checks for each input that takes gradients, plus the
// behaviours the transformer relies on (frozen bf16 weights, no recording without grads, the
// cross-entropy mean, shape errors).
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "rounding.h"

using namespace hone;

namespace {

constexpr double kTol = 1e-6;

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

#define EXPECT_GRADCHECK(fn, inputs)                       \
  do {                                                     \
    std::string where_;                                    \
    double err_ = gradcheck(fn, inputs, 1e-6, 7, &where_); \
    EXPECT_LT(err_, kTol) << where_;                       \
  } while (0)

double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::abs(a.item(i) - b.item(i)));
  return m;
}

// Two f32 evaluations of P = X·Yᵀ (X (M, K), Y (N, K); Y (K, N) when y_is_kn), in whatever
// blocking and summation order: each within γ_{K+1}·(Σ|x||y| + |add|) of the exact value (add: a
// bias added per column, or none), so they differ by at most twice that.
void expect_products_agree(const Tensor& got, const Tensor& want, const Tensor& X, const Tensor& Y,
                           bool y_is_kn, const Tensor& add, const std::string& what) {
  const Tensor xd = X.to(DType::F64), yd = Y.to(DType::F64);
  const int64_t M = X.dim(0), K = X.dim(1), N = y_is_kn ? Y.dim(1) : Y.dim(0);
  const std::vector<double> S =
      test::abs_products(xd.data<double>(), yd.data<double>(), M, N, K, y_is_kn);
  const double g = test::gamma_n(static_cast<double>(K + 1));
  test::BoundCheck chk;
  for (int64_t i = 0; i < M * N; ++i) {
    const double b = add.defined() ? std::abs(add.item(i % N)) : 0.0;
    chk.add(got.item(i), want.item(i), 2 * g * (S[static_cast<size_t>(i)] + b), i);
  }
  EXPECT_LE(chk.worst(), 1.0) << what << ": " << chk.where();
}

}  // namespace

TEST(OpsGradcheck, LinearAllCombinations) {
  for (bool with_bias : {false, true})
    for (bool w_rg : {false, true})
      for (bool b_rg : {false, true})
        for (bool x_rg : {false, true}) {
          if (!with_bias && b_rg) continue;
          if (!x_rg && !w_rg && !b_rg) continue;
          Var x = randv({2, 3, 4}, 1, x_rg);  // leading dims flattened: N = 6
          Var w = randv({5, 4}, 2, w_rg);
          Var b = with_bias ? randv({5}, 3, b_rg) : Var();
          auto fn = [](Tape* t, const std::vector<Var>& in) {
            return linear(t, in[0], in[1], in[2]);
          };
          SCOPED_TRACE("bias=" + std::to_string(with_bias) + " w_rg=" + std::to_string(w_rg) +
                       " b_rg=" + std::to_string(b_rg) + " x_rg=" + std::to_string(x_rg));
          EXPECT_GRADCHECK(fn, (std::vector<Var>{x, w, b}));
          if (!w_rg) {
            EXPECT_FALSE(w.has_grad());  // frozen weights never get a gradient buffer
          }
        }
  Var y = linear(nullptr, randv({2, 3, 4}, 1), randv({5, 4}, 2));
  EXPECT_EQ(y.shape(), (Shape{2, 3, 5}));
}

TEST(OpsGradcheck, AttentionGqaAndMha) {
  struct Case {
    int64_t hq, hkv;
  };
  for (Case c : {Case{4, 2}, Case{2, 2}, Case{4, 1}}) {
    const int64_t B = 2, T = 5, D = 3;
    Var q = randv({B * T, c.hq * D}, 11), k = randv({B * T, c.hkv * D}, 12),
        v = randv({B * T, c.hkv * D}, 13);
    auto fn = [&](Tape* t, const std::vector<Var>& in) {
      return attention(t, in[0], in[1], in[2], B, c.hq, c.hkv, D);
    };
    SCOPED_TRACE("Hq=" + std::to_string(c.hq) + " Hkv=" + std::to_string(c.hkv));
    EXPECT_GRADCHECK(fn, (std::vector<Var>{q, k, v}));
    // Only k requiring grad (e.g. LoRA on k_proj only).
    Var q2 = randv({B * T, c.hq * D}, 11, false), v2 = randv({B * T, c.hkv * D}, 13, false);
    EXPECT_GRADCHECK(fn, (std::vector<Var>{q2, k, v2}));
  }
}

TEST(OpsGradcheck, AttentionIsCausalAndBatchesIndependent) {
  const int64_t B = 2, T = 4, H = 2, D = 3;
  Var q = randv({B * T, H * D}, 1, false), k = randv({B * T, H * D}, 2, false),
      v = randv({B * T, H * D}, 3, false);
  Tensor y0 = attention(nullptr, q, k, v, B, H, H, D).value().clone();
  // Changing the last token of batch 0 leaves earlier rows and batch 1 unchanged.
  k.value().data<double>()[(T - 1) * H * D] += 1.0;
  v.value().data<double>()[(T - 1) * H * D] += 1.0;
  Tensor y1 = attention(nullptr, q, k, v, B, H, H, D).value();
  for (int64_t r = 0; r < B * T; ++r)
    for (int64_t j = 0; j < H * D; ++j) {
      const int64_t i = r * H * D + j;
      if (r == T - 1) continue;
      EXPECT_EQ(y0.data<double>()[i], y1.data<double>()[i]) << "row " << r;
    }
}

TEST(OpsGradcheck, RopePlainAndLlama3) {
  RopeScaling none;
  RopeScaling llama3{"llama3", 8.0, 1.0, 4.0, 16};  // small orig_max so all three bands occur
  for (const RopeScaling& s : {none, llama3}) {
    const int64_t H = 2, D = 8;
    auto inv = rope_inv_freq(D, 10000.0, s);
    std::vector<int32_t> pos = {0, 1, 2, 7, 100};
    Var x = randv({5, H * D}, 21);
    auto fn = [&](Tape* t, const std::vector<Var>& in) { return rope(t, in[0], inv, pos, H); };
    SCOPED_TRACE("scaling=" + s.type);
    EXPECT_GRADCHECK(fn, (std::vector<Var>{x}));
  }
}

TEST(OpsRope, Llama3InvFreqMatchesHfFormula) {
  // HF _compute_llama3_parameters, written the way it is there (torch.where over all bands).
  RopeScaling s{"llama3", 8.0, 1.0, 4.0, 8192};
  const int64_t D = 128;
  const double theta = 500000.0;
  auto got = rope_inv_freq(D, theta, s);
  ASSERT_EQ(got.size(), 64u);
  const double low_wl = 8192 / 1.0, high_wl = 8192 / 4.0;
  int bands[3] = {0, 0, 0};
  for (int64_t i = 0; i < D / 2; ++i) {
    double f = 1.0 / std::pow(theta, double(2 * i) / D);
    double wl = 2 * std::numbers::pi / f;
    double llama = wl > low_wl ? f / 8.0 : f;
    double smooth = (8192 / wl - 1.0) / (4.0 - 1.0);
    double smoothed = (1 - smooth) * llama / 8.0 + smooth * llama;
    bool medium = !(wl < high_wl) && !(wl > low_wl);
    double want = medium ? smoothed : llama;
    bands[wl < high_wl ? 0 : (wl > low_wl ? 2 : 1)]++;
    EXPECT_NEAR(got[i], want, 1e-15 * std::abs(want) + 1e-300) << i;
  }
  EXPECT_GT(bands[0], 0);
  EXPECT_GT(bands[1], 0);
  EXPECT_GT(bands[2], 0);
  EXPECT_EQ(got[0], 1.0);
  auto plain = rope_inv_freq(D, theta, RopeScaling{});
  EXPECT_DOUBLE_EQ(got[63], plain[63] / 8.0);
  EXPECT_THROW(rope_inv_freq(D, theta, RopeScaling{"yarn"}), Error);
  EXPECT_THROW(rope_inv_freq(7, theta, RopeScaling{}), Error);
}

TEST(OpsGradcheck, RmsnormXAndWeight) {
  for (bool x_rg : {true, false}) {
    Var x = randv({4, 6}, 31, x_rg, 2.0), w = randv({6}, 32);
    auto fn = [](Tape* t, const std::vector<Var>& in) { return rmsnorm(t, in[0], in[1], 1e-5); };
    EXPECT_GRADCHECK(fn, (std::vector<Var>{x, w}));
  }
  // Per-head norm: x (N, H*D) with w (D).
  Var x = randv({3, 2 * 4}, 33), w = randv({4}, 34);
  auto fn = [](Tape* t, const std::vector<Var>& in) { return rmsnorm(t, in[0], in[1], 1e-6); };
  EXPECT_GRADCHECK(fn, (std::vector<Var>{x, w}));
}

TEST(OpsGradcheck, CrossEntropyWithIgnoredTargets) {
  Var logits = randv({6, 5}, 41, true, 2.0);
  std::vector<int32_t> targets = {1, -100, 4, 0, -100, 2};
  auto fn = [&](Tape* t, const std::vector<Var>& in) { return cross_entropy(t, in[0], targets); };
  EXPECT_GRADCHECK(fn, (std::vector<Var>{logits}));
  auto fn2 = [&](Tape* t, const std::vector<Var>& in) {
    return cross_entropy(t, in[0], {3, 3, 7, 3, 0, 7}, 7);  // a custom ignore_index
  };
  EXPECT_GRADCHECK(fn2, (std::vector<Var>{logits}));
}

TEST(OpsGradcheck, EmbeddingTable) {
  Var table = randv({7, 3}, 51);
  std::vector<int32_t> ids = {3, 0, 6, 3, 3, 1};  // repeats sum
  auto fn = [&](Tape* t, const std::vector<Var>& in) { return embedding(t, in[0], ids); };
  EXPECT_GRADCHECK(fn, (std::vector<Var>{table}));
}

TEST(OpsGradcheck, DropoutWithFixedRng) {
  Var x = randv({4, 9}, 61);
  auto fn = [](Tape* t, const std::vector<Var>& in) {
    Rng rng(99);
    return dropout(t, in[0], 0.3, rng);
  };
  EXPECT_GRADCHECK(fn, (std::vector<Var>{x}));
  auto fn0 = [](Tape* t, const std::vector<Var>& in) {
    Rng rng(99);
    return dropout(t, in[0], 0.0, rng);
  };
  EXPECT_GRADCHECK(fn0, (std::vector<Var>{x}));
  Rng a(5), b(5);
  Tensor y1 = dropout(nullptr, x, 0.5, a).value();
  Tensor y2 = dropout(nullptr, x, 0.5, b).value();
  EXPECT_EQ(max_abs_diff(y1, y2), 0.0);
  EXPECT_NE(a.state(), 5u);  // the stream advanced
  EXPECT_THROW(dropout(nullptr, x, 1.0, a), Error);
}

TEST(OpsGradcheck, Elementwise) {
  Var a = randv({3, 4}, 71), b = randv({3, 4}, 72);
  using Fn = GradcheckFn;
  std::vector<std::pair<std::string, Fn>> fns = {
      {"add", [](Tape* t, const std::vector<Var>& in) { return add(t, in[0], in[1]); }},
      {"mul", [](Tape* t, const std::vector<Var>& in) { return mul(t, in[0], in[1]); }},
      {"mul_self", [](Tape* t, const std::vector<Var>& in) { return mul(t, in[0], in[0]); }},
      {"scale", [](Tape* t, const std::vector<Var>& in) { return scale(t, in[0], -1.7); }},
      {"reshape",
       [](Tape* t, const std::vector<Var>& in) {
         // reshape then an op that reads the new shape, so both directions are exercised
         return mul(t, reshape(t, in[0], {2, 6}), reshape(t, in[1], {2, 6}));
       }},
      {"silu", [](Tape* t, const std::vector<Var>& in) { return silu(t, in[0]); }},
      {"swiglu", [](Tape* t, const std::vector<Var>& in) { return swiglu(t, in[0], in[1]); }},
  };
  for (auto& [name, fn] : fns) {
    SCOPED_TRACE(name);
    EXPECT_GRADCHECK(fn, (std::vector<Var>{a, b}));
    Var bf = randv({3, 4}, 72, false);  // second operand frozen
    EXPECT_GRADCHECK(fn, (std::vector<Var>{a, bf}));
  }
}

TEST(OpsGradcheck, SmallBlockEndToEnd) {
  // embedding → rmsnorm → q/k/v → rope → attention → o_proj → residual → swiglu MLP → xent:
  // checks that gradients are summed correctly where a value feeds several ops.
  const int64_t B = 1, C = 8, H = 2, Hkv = 1, D = 4, V = 6;
  std::vector<int32_t> ids = {1, 4, 2, 5}, targets = {4, 2, -100, 0}, pos = {0, 1, 2, 3};
  auto inv = rope_inv_freq(D, 10000.0, {});
  std::vector<Var> in = {randv({V, C}, 1, true, 0.5),       randv({C}, 2),
                         randv({H * D, C}, 3, true, 0.4),   randv({Hkv * D, C}, 4, true, 0.4),
                         randv({Hkv * D, C}, 5, true, 0.4), randv({C, H * D}, 6, true, 0.4),
                         randv({C, C}, 7, true, 0.4),       randv({C, C}, 8, true, 0.4),
                         randv({V, C}, 9, true, 0.4)};
  auto fn = [&](Tape* t, const std::vector<Var>& p) {
    Var x = embedding(t, p[0], ids);
    Var h = rmsnorm(t, x, p[1], 1e-5);
    Var q = rope(t, linear(t, h, p[2]), inv, pos, H);
    Var k = rope(t, linear(t, h, p[3]), inv, pos, Hkv);
    Var v = linear(t, h, p[4]);
    Var a = linear(t, attention(t, q, k, v, B, H, Hkv, D), p[5]);
    x = add(t, x, a);
    Var m = swiglu(t, linear(t, x, p[6]), linear(t, x, p[7]));
    x = add(t, x, m);
    return reshape(t, cross_entropy(t, linear(t, x, p[8]), targets), {1});
  };
  EXPECT_GRADCHECK(fn, in);
}

TEST(OpsLinear, FrozenBf16AndF16WeightEqualConvertedF32) {
  // Small (one block) and large (more than the 4M-element conversion workspace: two blocks).
  struct Case {
    int64_t N, out, in;
  };
  for (Case c : {Case{7, 9, 65}, Case{3, 1100, 4000}})
    for (DType dt : {DType::BF16, DType::F16}) {
      Tensor w32 = randf({c.out, c.in}, 81, 0.1).to(dt).to(DType::F32);  // exactly representable
      Var w16(w32.to(dt)), wf(w32);
      Var b(randf({c.out}, 82).to(dt)), bf(b.value().to(DType::F32));
      Var x1(randf({c.N, c.in}, 83), true), x2(x1.value().clone(), true);
      Tape t;
      Var y1 = linear(&t, x1, w16, b), y2 = linear(&t, x2, wf, bf);
      const std::string at = std::string(dtype_name(dt)) + " " + std::to_string(c.out);
      expect_products_agree(y1.value(), y2.value(), x1.value(), w32, false, bf.value(), "y " + at);
      Tensor dy = randf(y1.shape(), 84);
      t.backward_from(y1, dy);
      t.clear();
      Tape t2;
      y2 = linear(&t2, x2, wf, bf);
      t2.backward_from(y2, dy);
      expect_products_agree(x1.grad(), x2.grad(), dy, w32, true, Tensor(), "dx " + at);
      EXPECT_FALSE(w16.has_grad());
    }
  Var w16(randf({4, 3}, 1).to(DType::BF16), true);  // a weight that trains must be compute dtype
  EXPECT_THROW(linear(nullptr, Var(randf({2, 3}, 2)), w16), Error);
}

TEST(OpsTape, NothingRecordedWithoutGrads) {
  Tape t;
  Var a = randv({2, 4}, 1, false), b = randv({2, 4}, 2, false), w = randv({3, 4}, 3, false);
  Var kv = randv({2, 4}, 4, false);
  Rng rng(1);
  std::vector<Var> outs = {
      linear(&t, a, w),
      add(&t, a, b),
      mul(&t, a, b),
      scale(&t, a, 2.0),
      reshape(&t, a, {8}),
      rmsnorm(&t, a, randv({4}, 5, false), 1e-5),
      rope(&t, a, rope_inv_freq(2, 1e4, {}), {0, 1}, 2),
      attention(&t, a, kv, kv, 1, 2, 2, 2),
      silu(&t, a),
      swiglu(&t, a, b),
      embedding(&t, randv({5, 4}, 6, false), {1, 2}),
      cross_entropy(&t, a, {0, 3}),
      dropout(&t, a, 0.5, rng),
  };
  EXPECT_EQ(t.size(), 0u);
  for (const Var& o : outs) EXPECT_FALSE(o.requires_grad());
  // A null tape records nothing either, even when inputs require grad.
  Var g = randv({2, 4}, 7, true);
  EXPECT_FALSE(silu(nullptr, g).requires_grad());
  EXPECT_TRUE(silu(&t, g).requires_grad());
  EXPECT_EQ(t.size(), 1u);
}

TEST(OpsLoss, CrossEntropyMeanIsOverNonIgnoredRows) {
  Var logits = randv({4, 3}, 91, true);
  std::vector<int32_t> targets = {2, -100, 0, -100};
  Tape t;
  Var loss = cross_entropy(&t, logits, targets);
  EXPECT_EQ(loss.shape(), (Shape{1}));
  double want = 0;
  for (int r : {0, 2}) {
    const double* l = logits.value().data<double>() + r * 3;
    double lse = std::log(std::exp(l[0]) + std::exp(l[1]) + std::exp(l[2]));
    want += lse - l[targets[r]];
  }
  EXPECT_NEAR(loss.value().item(), want / 2, 1e-12);
  t.backward(loss);
  for (int j = 0; j < 3; ++j) {
    EXPECT_EQ(logits.grad().item(1 * 3 + j), 0.0);
    EXPECT_EQ(logits.grad().item(3 * 3 + j), 0.0);
  }
  // Each counted row's gradient sums to zero and carries weight 1/2.
  double row0 = 0;
  for (int j = 0; j < 3; ++j) row0 += logits.grad().item(j);
  EXPECT_NEAR(row0, 0.0, 1e-12);
  // All rows ignored: loss 0 and no gradient.
  Var l2 = randv({2, 3}, 92, true);
  Tape t2;
  Var z = cross_entropy(&t2, l2, {-100, -100});
  EXPECT_EQ(z.value().item(), 0.0);
  t2.backward(z);
  if (l2.has_grad()) {
    for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(l2.grad().item(i), 0.0);
  }
  // F32 logits give an F32 loss.
  Var l3(randf({2, 3}, 93));
  EXPECT_EQ(cross_entropy(nullptr, l3, {0, 1}).dtype(), DType::F32);
}

TEST(OpsErrors, ShapeAndDtypeMismatchesNameTheOp) {
  auto msg = [](auto f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  Var a = randv({2, 3}, 1, false), b = randv({3, 2}, 2, false);
  EXPECT_NE(msg([&] { add(nullptr, a, b); }).find("add: "), std::string::npos);
  EXPECT_NE(msg([&] { linear(nullptr, a, b); }).find("[3, 2]"), std::string::npos);
  EXPECT_NE(msg([&] { rmsnorm(nullptr, a, randv({2}, 3), 1e-5); }).find("rmsnorm"),
            std::string::npos);
  EXPECT_NE(msg([&] { embedding(nullptr, a, {0, 2}); }).find("out of range"), std::string::npos);
  EXPECT_NE(msg([&] {
              cross_entropy(nullptr, a, {0, 3});
            }).find("cross_entropy"),
            std::string::npos);
  EXPECT_NE(msg([&] { cross_entropy(nullptr, a, {0}); }).find("targets"), std::string::npos);
  EXPECT_NE(msg([&] { attention(nullptr, a, a, a, 1, 2, 2, 2); }).find("attention"),
            std::string::npos);
  EXPECT_NE(msg([&] { rope(nullptr, a, {1.0}, {0, 1}, 1); }).find("rope"), std::string::npos);
  EXPECT_NE(msg([&] { reshape(nullptr, a, {4}); }).find("reshape"), std::string::npos);
  Var mixed(randf({2, 3}, 4));
  EXPECT_NE(msg([&] { mul(nullptr, a, mixed); }).find("F32"), std::string::npos);
}
