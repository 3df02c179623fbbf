#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "autograd/block_cache.h"
#include "autograd/dtype.h"
#include "autograd/tape.h"
#include "autograd/tensor.h"

using namespace hone;

TEST(Tensor, ViewsShareStorage) {
  Tensor t = Tensor::from_f32({1, 2, 3, 4, 5, 6}, {3, 2});
  Tensor v = t.view({2, 3});
  Tensor s = t.slice0(1, 3);
  EXPECT_EQ(s.shape(), (Shape{2, 2}));
  EXPECT_EQ(s.item(0), 3.0);
  v.data<float>()[5] = 60;
  EXPECT_EQ(t.item(5), 60.0);
  EXPECT_THROW(t.view({4, 2}), Error);
  EXPECT_THROW(t.data<double>(), Error);
  EXPECT_THROW(t.slice0(2, 4), Error);
}

TEST(DType, Bf16RoundsToNearestEven) {
  // 1 + 2^-8 is exactly halfway between two bf16 values: ties go to the even mantissa (1.0).
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 0x1.0p-8f)), 1.0f);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 0x1.8p-8f)), 1.0f + 0x1.0p-7f);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST(DType, F16RoundTripsEveryHalf) {
  // Every finite f16 bit pattern converts to f32 and back unchanged (subnormals included).
  for (uint32_t h = 0; h < 0x10000; ++h) {
    uint16_t b = static_cast<uint16_t>(h);
    if ((b & 0x7c00) == 0x7c00 && (b & 0x3ff)) continue;  // NaN payloads
    ASSERT_EQ(f32_to_f16(f16_to_f32(b)), b) << std::hex << h;
  }
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0x0001), 0x1.0p-24f);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);    // rounds up to inf
  EXPECT_EQ(f32_to_f16(0x1.0p-25f), 0x0000);  // exactly half the smallest subnormal: to even (0)
  EXPECT_EQ(f32_to_f16(0x1.8p-25f), 0x0001);
}

TEST(DType, BulkHalfConversionsMatchTheScalarOnesForEveryBitPattern) {
  // convert_to_f32 has 16-lane paths for BF16/F16 (and an element-wise tail): every 16-bit
  // pattern, at an odd length so the tail runs too, must give the scalar conversion's bits.
  const size_t n = 0x10000 + 7;
  std::vector<uint16_t> src(n);
  for (size_t i = 0; i < n; ++i) src[i] = static_cast<uint16_t>(i * 40503u);  // a permutation
  for (uint32_t i = 0; i < 0x10000; ++i) src[i] = static_cast<uint16_t>(i);
  std::vector<float> got(n);
  for (DType t : {DType::BF16, DType::F16}) {
    convert_to_f32(src.data(), t, got.data(), n);
    for (size_t i = 0; i < n; ++i) {
      const float want = t == DType::BF16 ? bf16_to_f32(src[i]) : f16_to_f32(src[i]);
      uint32_t a, b;
      std::memcpy(&a, &got[i], 4);
      std::memcpy(&b, &want, 4);
      if (std::isnan(want)) {
        ASSERT_TRUE(std::isnan(got[i])) << dtype_name(t) << " " << std::hex << src[i];
        continue;
      }
      ASSERT_EQ(a, b) << dtype_name(t) << " " << std::hex << src[i];
    }
  }
}

TEST(Tape, GradBuffersAccumulate) {
  Tape tape;
  Var x(Tensor::from_f32({1, 2}, {2}), true);
  Tensor& g = tape.grad(x);
  g.data<float>()[0] += 1;
  tape.grad(x).data<float>()[0] += 2;
  EXPECT_EQ(x.grad().item(0), 3.0);
  Var frozen(Tensor::from_f32({1}, {1}));
  EXPECT_FALSE(frozen.requires_grad());
  EXPECT_FALSE(frozen.has_grad());
}

TEST(BlockCache, ReusesFreedBlocksOfTheSameSize) {
  block_cache_release();
  const void* first;
  {
    Tensor a = Tensor::empty(DType::F32, {1 << 16});  // 256 KiB: cached size class
    first = a.raw();
  }
  EXPECT_EQ(block_cache_bytes(), size_t{1} << 18);
  Tensor b = Tensor::empty(DType::F32, {1 << 16});
  EXPECT_EQ(b.raw(), first);
  EXPECT_EQ(block_cache_bytes(), 0u);
  Tensor c = Tensor::zeros(DType::F32, {1 << 16});  // a second live block: fresh memory
  EXPECT_NE(c.raw(), first);
  EXPECT_EQ(c.item(12345), 0.0);
  { Tensor small = Tensor::empty(DType::F32, {10}); }
  EXPECT_EQ(block_cache_bytes(), 0u);  // small blocks go back to malloc
}
