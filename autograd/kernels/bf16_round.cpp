// round_to_bf16 three ways: the plain loop, AVX-512 integer arithmetic, and AVX512_BF16's
// vcvtne2ps2bf16. The AVX-512 functions carry their instruction sets as target attributes, so
// they build whatever -march hone is built for and run only where cpu_kind() finds the
// instructions.
#include "autograd/kernels/bf16_round.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "autograd/error.h"
#include "autograd/kernels/compute_choice.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// GCC 12 reports the _mm512_undefined_*() placeholders inside its own AVX-512 headers as
// maybe-uninitialized (a known false positive, as in dtype.cpp).
#if !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#if !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#define HONE_ROUND_X86 1
#define HONE_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
#define HONE_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
#else
#define HONE_ROUND_X86 0
#endif

namespace hone::kernels {

namespace {

void round_portable(const float* src, uint16_t* dst, size_t n) {
  // f32_to_bf16 written without a branch, so the loop vectorises.
  for (size_t i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, src + i, 4);
    const uint32_t rounded = (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
    const uint32_t quiet = (b >> 16) | 0x40u;
    dst[i] = static_cast<uint16_t>((b & 0x7fffffffu) > 0x7f800000u ? quiet : rounded);
  }
}

#if HONE_ROUND_X86

// f32_to_bf16 of 16 f32 bit patterns, in the low 16 bits of each lane.
HONE_AVX512 inline __m512i round16(__m512i b) {
  const __m512i hi = _mm512_srli_epi32(b, 16);
  const __m512i lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
  const __m512i rounded =
      _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(b, _mm512_set1_epi32(0x7fff)), lsb), 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(b, _mm512_set1_epi32(0x7fffffff)),
                                                _mm512_set1_epi32(0x7f800000));
  return _mm512_mask_mov_epi32(rounded, nan, _mm512_or_si512(hi, _mm512_set1_epi32(0x40)));
}

HONE_AVX512 void round_avx512(const float* src, uint16_t* dst, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i),
                        _mm512_cvtepi32_epi16(round16(_mm512_loadu_si512(src + i))));
  if (i < n) {  // the last 1..15 values through masked loads and stores
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    _mm512_mask_cvtepi32_storeu_epi16(dst + i, m, round16(_mm512_maskz_loadu_epi32(m, src + i)));
  }
}

HONE_AVX512_BF16 void round_avx512_bf16(const float* src, uint16_t* dst, size_t n) {
  size_t i = 0;
  const __m512i exponent = _mm512_set1_epi32(0x7f800000);
  for (; i + 32 <= n; i += 32) {
    const __m512i a = _mm512_loadu_si512(src + i), b = _mm512_loadu_si512(src + i + 16);
    // vcvtne2ps2bf16 rounds to nearest even and quiets NaNs exactly as f32_to_bf16 does, but
    // flushes subnormal inputs to zero whatever MXCSR says, where f32_to_bf16 rounds them: 32
    // values with a zero exponent field (a subnormal, or a zero) take the integer way. One test
    // per 16 values, on the bits: vfpclassps would be one too, but it sees subnormals as zeros
    // when MXCSR.DAZ is set.
    if ((_mm512_testn_epi32_mask(a, exponent) | _mm512_testn_epi32_mask(b, exponent)) == 0) {
      _mm512_storeu_si512(
          dst + i, (__m512i)_mm512_cvtne2ps_pbh(_mm512_castsi512_ps(b), _mm512_castsi512_ps(a)));
    } else {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm512_cvtepi32_epi16(round16(a)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i + 16),
                          _mm512_cvtepi32_epi16(round16(b)));
    }
  }
  round_avx512(src + i, dst + i, n - i);  // the last 0..31 values
}

#endif  // HONE_ROUND_X86

std::vector<Bf16Rounding> available() {
  std::vector<Bf16Rounding> ways = {Bf16Rounding::kPortable};
#if HONE_ROUND_X86
  const CpuKind cpu = cpu_kind();
  if (cpu.avx512) ways.push_back(Bf16Rounding::kAvx512);
  if (cpu.avx512 && cpu.avx512_bf16) ways.push_back(Bf16Rounding::kAvx512Bf16);
#endif
  return ways;
}

void run(Bf16Rounding how, const float* src, uint16_t* dst, size_t n) {
  switch (how) {
#if HONE_ROUND_X86
    case Bf16Rounding::kAvx512:
      return round_avx512(src, dst, n);
    case Bf16Rounding::kAvx512Bf16:
      return round_avx512_bf16(src, dst, n);
#endif
    default:
      return round_portable(src, dst, n);
  }
}

}  // namespace

const char* bf16_rounding_name(Bf16Rounding how) {
  switch (how) {
    case Bf16Rounding::kPortable:
      return "portable";
    case Bf16Rounding::kAvx512:
      return "avx512";
    case Bf16Rounding::kAvx512Bf16:
      return "avx512_bf16";
  }
  return "?";
}

const std::vector<Bf16Rounding>& bf16_roundings() {
  static const std::vector<Bf16Rounding> ways = available();  // cpuid once
  return ways;
}

void round_to_bf16(const float* src, uint16_t* dst, size_t n) {
  static const Bf16Rounding best = bf16_roundings().back();
  run(best, src, dst, n);
}

void round_to_bf16(Bf16Rounding how, const float* src, uint16_t* dst, size_t n) {
  const auto& ways = bf16_roundings();
  if (std::find(ways.begin(), ways.end(), how) == ways.end())
    throw Error(std::string("round_to_bf16: this CPU cannot round the ") + bf16_rounding_name(how) +
                " way");
  run(how, src, dst, n);
}

}  // namespace hone::kernels
