// Q8_0 / Q4_0 block storage: the kernels against their plain-loop references on odd sizes, the
// per-block error bounds, the Tensor accounting for block dtypes, and linear / embedding with a
// quantized frozen weight equal to the same op on the dequantized f32 weight.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "autograd/kernels/embedding.h"
#include "autograd/kernels/quant.h"
#include "autograd/ops.h"
#include "autograd/ops/weight_blocks.h"
#include "autograd/rng.h"
#include "rounding.h"

using namespace hone;
using namespace hone::kernels;

namespace {

const DType kTypes[] = {DType::Q8_0, DType::Q4_0};
const int64_t kRows[] = {1, 3, 31, 33, 1000};

// rows × (32·k) values: a per-row scale from 1e-2 to 1e2, outliers, and special blocks (all zero,
// all equal, a negative extreme, a single non-zero) so every branch of the block code runs.
std::vector<float> test_values(int64_t rows, int64_t cols, uint64_t seed) {
  std::vector<float> v(static_cast<size_t>(rows * cols));
  Rng r(seed);
  for (int64_t i = 0; i < rows; ++i) {
    const double s = std::pow(10.0, -2.0 + 4.0 * r.uniform());
    for (int64_t j = 0; j < cols; ++j) v[i * cols + j] = static_cast<float>(s * r.normal());
    if (i % 7 == 1) v[i * cols + cols / 2] = static_cast<float>(-20 * s);  // outlier
  }
  const int64_t nb = rows * cols / 32;
  auto block = [&](int64_t b) { return v.data() + b * 32; };
  if (nb > 1) std::fill(block(1), block(1) + 32, 0.0f);
  if (nb > 2) std::fill(block(2), block(2) + 32, 0.75f);
  if (nb > 3) {
    std::fill(block(3), block(3) + 32, 0.0f);
    block(3)[5] = -3.0f;
  }
  return v;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(a.item(i) - b.item(i)));
  return m;
}

// The largest |a − b| over twice the bound for two f32 evaluations of P = X·Yᵀ (X (M, K), Y (N, K);
// Y (K, N) when y_is_kn) in any blocking and summation order: each is within γ_K·Σ|x||y| of the
// exact product. <= 1 when they agree.
double product_error(const Tensor& a, const Tensor& b, const Tensor& X, const Tensor& Y,
                     bool y_is_kn, double u = test::kUnitF32) {
  const Tensor xd = X.to(DType::F64), yd = Y.to(DType::F64);
  const int64_t M = X.dim(0), K = X.dim(1), N = y_is_kn ? Y.dim(1) : Y.dim(0);
  const std::vector<double> S =
      test::abs_products(xd.data<double>(), yd.data<double>(), M, N, K, y_is_kn);
  test::BoundCheck chk;
  for (int64_t i = 0; i < M * N; ++i)
    chk.add(a.item(i), b.item(i), 2 * test::dot_bound(double(K), S[static_cast<size_t>(i)], u), i);
  return chk.worst();
}

Tensor randf(Shape shape, uint64_t seed, double sd = 1.0) {
  Tensor t = Tensor::empty(DType::F32, std::move(shape));
  Rng r(seed);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(sd * r.normal());
  return t;
}

}  // namespace

TEST(KernelQuant, BlockSizesAndNames) {
  EXPECT_EQ(dtype_size(DType::Q8_0), 34u);
  EXPECT_EQ(dtype_size(DType::Q4_0), 18u);
  EXPECT_EQ(dtype_block(DType::Q8_0), 32);
  EXPECT_EQ(dtype_block(DType::F32), 1);
  EXPECT_EQ(dtype_nbytes(DType::Q4_0, 64), 36u);
  EXPECT_EQ(dtype_nbytes(DType::BF16, 64), 128u);
  EXPECT_STREQ(dtype_name(DType::Q4_0), "Q4_0");
  EXPECT_TRUE(is_quantized(DType::Q8_0));
  EXPECT_FALSE(is_quantized(DType::BF16));
}

TEST(KernelQuant, QuantizeMatchesReferenceBytesOnOddSizes) {
  for (DType t : kTypes)
    for (int64_t rows : kRows)
      for (int64_t k : {1, 3}) {
        const int64_t cols = 32 * k, n = rows * cols;
        auto x = test_values(rows, cols, 10 + rows);
        std::vector<uint8_t> a(dtype_nbytes(t, n)), b(a.size(), 0xAB), c(a.size());
        quantize(x.data(), a.data(), t, n);
        quantize_ref(x.data(), b.data(), t, n);
        convert_from_f32(x.data(), c.data(), t, static_cast<size_t>(n));  // the serial path
        ASSERT_EQ(a, b) << dtype_name(t) << " rows " << rows << " k " << k;
        ASSERT_EQ(a, c) << dtype_name(t) << " rows " << rows << " k " << k;
      }
}

TEST(KernelQuant, DequantizeMatchesReferenceAndStaysWithinBlockBounds) {
  for (DType t : kTypes)
    for (int64_t rows : kRows)
      for (int64_t k : {1, 3}) {
        const int64_t cols = 32 * k, n = rows * cols;
        auto x = test_values(rows, cols, 20 + rows);
        std::vector<uint8_t> q(dtype_nbytes(t, n));
        quantize(x.data(), q.data(), t, n);
        std::vector<float> y(static_cast<size_t>(n)), y2(y.size());
        std::vector<double> y3(y.size());
        dequantize(q.data(), t, y.data(), n);
        convert_to_f32(q.data(), t, y2.data(), static_cast<size_t>(n));
        convert_to_f64(q.data(), t, y3.data(), static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) {
          const float ref = dequantize_value_ref(q.data(), t, i);
          ASSERT_EQ(y[i], ref) << dtype_name(t) << " rows " << rows << " i " << i;
          ASSERT_EQ(y2[i], ref);
          ASSERT_EQ(y3[i], static_cast<double>(ref));
        }
        // Per block: with d the exact scale, Q8_0 rounds to d/2, Q4_0 to |d|/2 (|d| for values
        // clamped from +8 to +7); the f16 scale adds at most |q|·|d|·2⁻¹¹ (|q| ≤ 127 resp. 8).
        for (int64_t b = 0; b < n / 32; ++b) {
          float amax = 0, m = 0;
          for (int j = 0; j < 32; ++j)
            if (std::fabs(x[b * 32 + j]) > amax) {
              amax = std::fabs(x[b * 32 + j]);
              m = x[b * 32 + j];
            }
          const double d = t == DType::Q8_0 ? amax / 127.0 : std::fabs(m) / 8.0;
          const double f16 = (t == DType::Q8_0 ? 127.0 : 8.0) * d * std::ldexp(1.0, -11);
          for (int j = 0; j < 32; ++j) {
            const double xv = x[b * 32 + j], err = std::fabs(xv - y[b * 32 + j]);
            const bool clamped = t == DType::Q4_0 && xv * (-8.0 / m) > 7.5;
            const double bound = (clamped ? d : d / 2) + f16 + 1e-6 * amax;
            ASSERT_LE(err, bound) << dtype_name(t) << " block " << b << " j " << j;
          }
          if (amax == 0) {
            for (int j = 0; j < 32; ++j) ASSERT_EQ(y[b * 32 + j], 0.0f);
          }
        }
      }
}

TEST(KernelQuant, Q4LayoutIsGgufs) {
  // Value j in byte j's low nibble, value j+16 in its high nibble; the extreme value maps to −8.
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 8);
  x[31] = -16.0f;  // so m = x[30] = 22 and d = 22/−8 = −2.75
  uint8_t q[18];
  quantize_block_q4_0(x, q);
  uint16_t dh;
  std::memcpy(&dh, q, 2);
  EXPECT_FLOAT_EQ(f16_to_f32(dh), f16_to_f32(f32_to_f16(22.0f / -8.0f)));
  EXPECT_EQ(q[2 + 14] >> 4, 0);   // x[30] = 22 = m -> code 0 (value −8)
  EXPECT_EQ(q[2 + 8] & 0x0f, 8);  // x[8] = 0 -> code 8
  EXPECT_EQ(q[2 + 15] >> 4, 14);  // x[31] = −16 -> 5.8 + 8 = 13.8 -> 14
  float y[32];
  dequantize_block_q4_0(q, y);
  EXPECT_FLOAT_EQ(y[30], 8 * 2.75f);
}

TEST(TensorQuant, BlockAccountingSlicesViewsAndConversions) {
  for (DType t : kTypes) {
    Tensor f = randf({5, 64}, 3);
    Tensor q = f.to(t);
    EXPECT_EQ(q.numel(), 320);
    EXPECT_EQ(q.nbytes(), 10 * dtype_size(t));
    Tensor back = q.to(DType::F32);
    for (int64_t i = 0; i < q.numel(); ++i) {
      ASSERT_EQ(q.item(i), back.item(i));
      ASSERT_EQ(back.data<float>()[i], dequantize_value_ref(q.raw(), t, i));
    }
    Tensor s = q.slice0(2, 4);
    EXPECT_EQ(s.nbytes(), 4 * dtype_size(t));
    EXPECT_EQ(static_cast<const char*>(s.raw()) - static_cast<const char*>(q.raw()),
              static_cast<std::ptrdiff_t>(4 * dtype_size(t)));
    EXPECT_EQ(s.item(0), back.item(128));
    EXPECT_EQ(q.view({10, 32}).nbytes(), q.nbytes());
    EXPECT_THROW(q.view({20, 16}), Error);  // rows must hold whole blocks
    EXPECT_THROW(Tensor::empty(t, {3, 33}), Error);
    EXPECT_THROW(Tensor::empty(t, {}), Error);
    // Via f64 and bf16 the values round-trip the same way.
    EXPECT_EQ(max_abs_diff(q.to(DType::F64), back), 0.0);
    EXPECT_EQ(max_abs_diff(f.to(DType::BF16).to(t), f.to(DType::BF16).to(DType::F32).to(t)), 0.0);
    EXPECT_EQ(max_abs_diff(q.clone(), q), 0.0);
  }
}

TEST(WeightBlocks, EqualTilesStayWithinTheirBoundAndCoverTheLength) {
  // The tiles both the conversion loops walk W in (ops/weight_blocks.h).
  for (int64_t most : {1, 7, 16, 100, 341, 1000})
    for (int64_t len = 1; len <= 3000; ++len) {
      const int64_t tile = ops_detail::equal_tile(len, most);
      ASSERT_GE(tile, 1);
      if (len <= most) {
        EXPECT_EQ(tile, len);
        continue;
      }
      EXPECT_LE(tile, most) << len << " in tiles of at most " << most;
      if (most >= 16) {
        EXPECT_EQ(tile % 16, 0) << len << " / " << most;
      }
    }
  EXPECT_EQ(ops_detail::equal_tile(576, 341), 288);   // not 341 + a thin 235
  EXPECT_EQ(ops_detail::equal_tile(1000, 341), 336);  // 336 + 336 + 328
}

TEST(OpsLinearQuant, FrozenQuantizedWeightEqualsDequantizedF32OnOddSizes) {
  // Products from 2^20 multiply-adds are split into parts, each task converting its own rows
  // (forward) or 32-aligned columns (input gradient) of W: 8 rows cannot be split, 160 columns
  // split unevenly (64 + 96). With 2 threads, 2100 rows and 2080 columns go in four parts (two
  // per thread, taken as threads free up); 1100 × 4000 exceeds the 4M-element conversion
  // workspace, so its parts are also bounded by the buffer (rows), and the input gradient walks
  // W in several 256K-element tiles per column part.
  struct Case {
    int64_t N, out, in;
  };
  double worst = 0;
  for (Case c : {Case{1, 1, 32}, Case{7, 9, 64}, Case{3, 33, 96}, Case{600, 8, 320},
                 Case{300, 50, 160}, Case{5, 1100, 4000}, Case{16, 2100, 64}, Case{6, 100, 2080}})
    for (DType t : kTypes) {
      Var wq(randf({c.out, c.in}, 81, 0.1).to(t));
      Var wf(wq.value().to(DType::F32));
      Var x1(randf({c.N, c.in}, 83), true), x2(x1.value().clone(), true);
      Tape t1, t2;
      Var y1 = linear(&t1, x1, wq), y2 = linear(&t2, x2, wf);
      // Both multiply by the same f32 values of W, converted and blocked differently.
      const double ey = product_error(y1.value(), y2.value(), x1.value(), wf.value(), false);
      EXPECT_LE(ey, 1.0) << dtype_name(t) << " " << c.out << "x" << c.in;
      Tensor dy = randf(y1.shape(), 84);
      t1.backward_from(y1, dy);
      t2.backward_from(y2, dy);
      const double ex = product_error(x1.grad(), x2.grad(), dy, wf.value(), true);
      EXPECT_LE(ex, 1.0) << dtype_name(t) << " " << c.out << "x" << c.in;
      // Whichever thread takes a part, it computes the same sums: bitwise the same again.
      Var x3(x1.value().clone(), true);
      Tape t3;
      Var y3 = linear(&t3, x3, wq);
      t3.backward_from(y3, dy);
      EXPECT_EQ(max_abs_diff(y3.value(), y1.value()), 0.0);
      EXPECT_EQ(max_abs_diff(x3.grad(), x1.grad()), 0.0);
      worst = std::max({worst, ey, ex});
      EXPECT_FALSE(wq.has_grad());
      // F64 compute dequantizes into doubles: the same as the f32 values widened.
      Var xd(x1.value().to(DType::F64));
      Tensor yd = linear(nullptr, xd, wq).value(), yr = linear(nullptr, xd, wf).value();
      EXPECT_LE(product_error(yd, yr, xd.value(), wf.value(), false, test::kUnitF64), 1.0);
    }
  std::printf("linear(quantized W) vs linear(dequantized f32 W): worst diff %.3g of its bound\n",
              worst);
  Var trains(randf({4, 32}, 1).to(DType::Q8_0), true);  // a weight that trains must be compute
  EXPECT_THROW(linear(nullptr, Var(randf({2, 32}, 2)), trains), Error);
}

TEST(OpsEmbeddingQuant, GatherFromQuantizedTableEqualsDequantized) {
  for (DType t : kTypes)
    for (int64_t C : {32, 96}) {
      Tensor tab = randf({37, C}, 5).to(t);
      Tensor f = tab.to(DType::F32);
      std::vector<int32_t> ids = {0, 36, 5, 5, 17, 1, 33};
      Tensor a = embedding(nullptr, Var(tab), ids).value();
      Tensor b = embedding(nullptr, Var(f), ids).value();
      EXPECT_EQ(a.dtype(), DType::F32);
      EXPECT_EQ(max_abs_diff(a, b), 0.0) << dtype_name(t) << " C " << C;
      std::vector<float> r(ids.size() * static_cast<size_t>(C));
      embedding_fwd_ref<float>(static_cast<int64_t>(ids.size()), C, tab.raw(), t, ids.data(),
                               r.data());
      for (size_t i = 0; i < r.size(); ++i) ASSERT_EQ(a.data<float>()[i], r[i]);
    }
}
