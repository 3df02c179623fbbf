// round_to_bf16 (kernels/bf16_round.h) against the scalar f32_to_bf16, bitwise, in every way
// this CPU can run it (the plain loop, AVX-512 integer arithmetic, vcvtne2ps2bf16 with its
// subnormal fallback): special values, random bit patterns, a strided sweep of the bit patterns,
// and every length and offset around the vector widths with subnormals among normal values.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <vector>

#include "autograd/dtype.h"
#include "autograd/kernels/bf16_round.h"
#include "autograd/kernels/compute_choice.h"
#include "autograd/rng.h"

#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

using namespace hone;
using namespace hone::kernels;

namespace {

float from_bits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint32_t to_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// Every way this CPU has, and a line saying which (a way the CPU lacks cannot be tested here).
const std::vector<Bf16Rounding>& ways() {
  static bool said = false;
  if (!said) {
    std::printf("rounding ways on this CPU:");
    for (Bf16Rounding w : bf16_roundings()) std::printf(" %s", bf16_rounding_name(w));
    std::printf("\n");
    said = true;
  }
  return bf16_roundings();
}

// Rounds v in every way (and the default one) and compares with f32_to_bf16 value by value.
void expect_scalar_rounding(const std::vector<float>& v) {
  std::vector<uint16_t> got(v.size());
  for (Bf16Rounding w : ways()) {
    round_to_bf16(w, v.data(), got.data(), v.size());
    for (size_t i = 0; i < v.size(); ++i)
      ASSERT_EQ(got[i], f32_to_bf16(v[i]))
          << bf16_rounding_name(w) << ": bits 0x" << std::hex << to_bits(v[i]) << " at " << i;
  }
  round_to_bf16(v.data(), got.data(), v.size());
  for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(got[i], f32_to_bf16(v[i])) << "at " << i;
}

}  // namespace

TEST(KernelBf16Round, EqualsTheScalarRoundingOnEveryKindOfValue) {
  std::vector<float> v = {0.0f,
                          -0.0f,
                          1.0f,
                          -1.5f,
                          3.0e38f,
                          -3.4e38f,
                          1e-40f,
                          -1e-45f,
                          std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::quiet_NaN(),
                          std::numeric_limits<float>::max(),
                          std::numeric_limits<float>::min()};
  // Ties, NaNs (signalling ones too), subnormals (one rounding up to the smallest normal).
  for (uint32_t bits :
       {0x3f808000u, 0x3f818000u, 0x3f807fffu, 0x7f7fffffu, 0x7f800001u, 0xffc00001u, 0x7fbfffffu,
        0xff800001u, 0x00008000u, 0x80018000u, 0x007fffffu, 0x807fffffu, 0x00000001u, 0x00ff8000u})
    v.push_back(from_bits(bits));
  Rng r(5);
  for (int i = 0; i < 100000; ++i) v.push_back(from_bits(static_cast<uint32_t>(r.next_u64())));
  expect_scalar_rounding(v);
}

TEST(KernelBf16Round, EqualsTheScalarRoundingOnAStridedSweepOfAllBitPatterns) {
  // All 2^24 values of the top 24 bits (sign, exponent, 15 mantissa bits: every exponent,
  // subnormals and NaNs included), with the low byte 0 (ties when bit 15 is set) or a varying
  // one; in pieces, so both vector loops and their tails see each kind of value.
  constexpr uint32_t kPiece = 1u << 16;
  std::vector<float> v(kPiece + 7);
  for (uint32_t low : {0x00u, 0x5au}) {
    for (uint32_t top = 0; top < (1u << 24); top += kPiece) {
      for (uint32_t i = 0; i < v.size(); ++i)
        v[i] = from_bits(((top + i) << 8) | ((low * (i + 1)) & 0xffu));
      expect_scalar_rounding(v);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

TEST(KernelBf16Round, EveryLengthAndOffsetWithSubnormalsAmongNormals) {
  // Lengths 0..100 from offsets 0..3 (unaligned starts), normals with one subnormal, NaN or
  // tie placed at each position in turn: a subnormal among normals must not be flushed, and a
  // vector loop must neither skip nor overrun its tail.
  Rng r(9);
  std::vector<float> base(104);
  for (float& x : base) x = static_cast<float>(r.normal());
  const uint32_t odd[] = {0x00000001u, 0x807fffffu, 0x00400000u, 0x7fa00000u,
                          0x3f808000u, 0x00000000u, 0x80000000u};
  std::vector<uint16_t> got(110);
  for (Bf16Rounding w : ways())
    for (size_t off = 0; off < 4; ++off)
      for (size_t n = 0; n <= 100; ++n)
        for (size_t at = 0; at < n; at += 3) {
          std::vector<float> v = base;
          v[off + at] = from_bits(odd[(n + at) % 7]);
          std::fill(got.begin(), got.end(), uint16_t{0xabcd});
          round_to_bf16(w, v.data() + off, got.data() + 1, n);
          ASSERT_EQ(got[0], 0xabcd) << bf16_rounding_name(w) << " wrote before dst";
          for (size_t i = 0; i < n; ++i)
            ASSERT_EQ(got[1 + i], f32_to_bf16(v[off + i]))
                << bf16_rounding_name(w) << ": n " << n << " offset " << off << " at " << i;
          for (size_t i = n + 1; i < got.size(); ++i)
            ASSERT_EQ(got[i], 0xabcd) << bf16_rounding_name(w) << " wrote past n " << n;
        }
}

TEST(KernelBf16Round, SubnormalsAreKeptWhateverMxcsrSays) {
#if defined(__x86_64__)
  // With denormals-are-zero and flush-to-zero set (as some libraries leave them), a
  // floating-point test for subnormals would see zeros and let vcvtne2ps2bf16 flush them.
  std::vector<float> v;
  for (uint32_t i = 0; i < 4096; ++i)
    v.push_back(from_bits(i % 3 == 0 ? (i * 2654435761u) & 0x807fffffu : 0x3f800000u + i));
  const unsigned old = _mm_getcsr();
  _mm_setcsr(old | 0x8040u);  // FTZ (bit 15), DAZ (bit 6)
  expect_scalar_rounding(v);
  _mm_setcsr(old);
#else
  GTEST_SKIP() << "MXCSR is x86-64's";
#endif
}

TEST(KernelBf16Round, TheFastestWayTheCpuHasIsTheOneUsed) {
  const CpuKind cpu = cpu_kind();
  const Bf16Rounding want = cpu.avx512 && cpu.avx512_bf16 ? Bf16Rounding::kAvx512Bf16
                            : cpu.avx512                  ? Bf16Rounding::kAvx512
                                                          : Bf16Rounding::kPortable;
#if !defined(__x86_64__)
  GTEST_SKIP() << "the vector ways are x86-64 only";
#endif
  EXPECT_EQ(bf16_roundings().back(), want) << cpu.describe();
  EXPECT_EQ(bf16_roundings().front(), Bf16Rounding::kPortable);
}
