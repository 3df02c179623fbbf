#include "autograd/dtype.h"

#include <cmath>
#include <type_traits>

#if defined(__AVX512F__)
// GCC 12 reports the _mm512_undefined_*() placeholders inside its own AVX-512 headers as
// maybe-uninitialized (a known false positive); the diagnostic is silenced for those headers.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

#include "autograd/error.h"
#include "autograd/kernels/quant.h"

namespace hone {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32:
      return 4;
    case DType::F64:
      return 8;
    case DType::BF16:
      return 2;
    case DType::F16:
      return 2;
    case DType::I32:
      return 4;
    case DType::I64:
      return 8;
    case DType::Q8_0:
      return kernels::kQ8Bytes;
    case DType::Q4_0:
      return kernels::kQ4Bytes;
  }
  return 0;
}

int64_t dtype_block(DType t) {
  return is_quantized(t) ? kernels::kQBlock : 1;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "F32";
    case DType::F64:
      return "F64";
    case DType::BF16:
      return "BF16";
    case DType::F16:
      return "F16";
    case DType::I32:
      return "I32";
    case DType::I64:
      return "I64";
    case DType::Q8_0:
      return "Q8_0";
    case DType::Q4_0:
      return "Q4_0";
  }
  return "?";
}

DType dtype_from_name(const std::string& name) {
  if (name == "F32") return DType::F32;
  if (name == "F64") return DType::F64;
  if (name == "BF16") return DType::BF16;
  if (name == "F16") return DType::F16;
  if (name == "I32") return DType::I32;
  if (name == "I64") return DType::I64;
  throw Error("unsupported dtype \"" + name + "\"");
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  uint32_t absbits = bits & 0x7fffffffu;
  if (absbits > 0x7f800000u) return sign | 0x7e00u;   // NaN
  if (absbits >= 0x477ff000u) return sign | 0x7c00u;  // overflow (incl. inf) after rounding
  if (absbits < 0x38800000u) {                        // result is subnormal or zero
    if (absbits < 0x33000000u) return sign;           // below half the smallest subnormal
    uint32_t exp = absbits >> 23;
    uint32_t mant = (absbits & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - exp;  // 14 + (113 - exp): bits to drop
    uint32_t halfway = 1u << (shift - 1);
    uint32_t rest = mant & ((1u << shift) - 1);
    uint32_t val = mant >> shift;
    if (rest > halfway || (rest == halfway && (val & 1u))) ++val;
    return sign | static_cast<uint16_t>(val);
  }
  uint32_t val = absbits - 0x38000000u;  // rebias exponent 127 -> 15
  uint32_t rest = val & 0x1fffu;
  val >>= 13;
  if (rest > 0x1000u || (rest == 0x1000u && (val & 1u))) ++val;
  return sign | static_cast<uint16_t>(val);
}

namespace {

#if defined(__AVX512F__) && defined(__F16C__)
// One Q8_0/Q4_0 block's 32 values: its leading f16 scale times the codes lo (values 0–15) and hi
// (16–31), as 32-bit integers.
inline void store_block(const uint8_t* blk, __m512i lo, __m512i hi, float* dst) {
  uint16_t dh;
  std::memcpy(&dh, blk, 2);
  const __m512 d = _mm512_set1_ps(_cvtsh_ss(dh));
  _mm512_storeu_ps(dst, _mm512_mul_ps(_mm512_cvtepi32_ps(lo), d));
  _mm512_storeu_ps(dst + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(hi), d));
}

// Weight conversion runs twice per training step for every frozen projection (forward and input
// gradient), so BF16/F16/Q8_0 → f32 get 16-lane versions. Each lane does exactly what the
// scalar code does (a shift, the exact f16 widening, float(q)·d), so results are bitwise equal.
// Returns how many leading values it converted; the caller finishes the rest.
size_t convert_to_f32_simd(const void* src, DType from, float* dst, size_t n) {
  switch (from) {
    case DType::BF16: {
      auto* s = static_cast<const uint16_t*>(src);
      const size_t m = n / 16 * 16;
      for (size_t i = 0; i < m; i += 16) {
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i));
        const __m512i w = _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16);
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(w));
      }
      return m;
    }
    case DType::F16: {
      auto* s = static_cast<const uint16_t*>(src);
      const size_t m = n / 16 * 16;
      for (size_t i = 0; i < m; i += 16)
        _mm512_storeu_ps(
            dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i))));
      return m;
    }
    case DType::Q8_0: {
      auto* s = static_cast<const uint8_t*>(src);
      for (size_t b = 0; b < n / kernels::kQBlock; ++b) {
        const uint8_t* blk = s + b * kernels::kQ8Bytes;
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
        store_block(blk, _mm512_cvtepi8_epi32(_mm256_castsi256_si128(q)),
                    _mm512_cvtepi8_epi32(_mm256_extracti128_si256(q, 1)),
                    dst + b * kernels::kQBlock);
      }
      return n / kernels::kQBlock * kernels::kQBlock;
    }
    case DType::Q4_0: {
      auto* s = static_cast<const uint8_t*>(src);
      const __m128i low4 = _mm_set1_epi8(0x0f);
      const __m512i eight = _mm512_set1_epi32(8);
      for (size_t b = 0; b < n / kernels::kQBlock; ++b) {
        const uint8_t* blk = s + b * kernels::kQ4Bytes;
        const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
        // Byte j: value j in the low nibble, value j + 16 in the high one.
        store_block(blk, _mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_and_si128(c, low4)), eight),
                    _mm512_sub_epi32(
                        _mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(c, 4), low4)), eight),
                    dst + b * kernels::kQBlock);
      }
      return n / kernels::kQBlock * kernels::kQBlock;
    }
    default:
      return 0;
  }
}
#else
size_t convert_to_f32_simd(const void*, DType, float*, size_t) {
  return 0;
}
#endif

template <class Out>
void convert_to(const void* src, DType from, Out* dst, size_t n) {
  if constexpr (std::is_same_v<Out, float>) {
    if (from != DType::F32 && from != DType::F64 && from != DType::I32 && from != DType::I64) {
      const size_t done = convert_to_f32_simd(src, from, dst, n);
      if (done == n) return;
      // Quantized blocks are whole (checked below); a BF16/F16 tail continues element-wise.
      if (!is_quantized(from)) {
        src = static_cast<const char*>(src) + done * dtype_size(from);
        dst += done;
        n -= done;
      }
    }
  }
  switch (from) {
    case DType::F32: {
      auto* s = static_cast<const float*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = static_cast<Out>(s[i]);
      return;
    }
    case DType::F64: {
      auto* s = static_cast<const double*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = static_cast<Out>(s[i]);
      return;
    }
    case DType::BF16: {
      auto* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = static_cast<Out>(bf16_to_f32(s[i]));
      return;
    }
    case DType::F16: {
      auto* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = static_cast<Out>(f16_to_f32(s[i]));
      return;
    }
    case DType::I32: {
      auto* s = static_cast<const int32_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = static_cast<Out>(s[i]);
      return;
    }
    case DType::I64: {
      auto* s = static_cast<const int64_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = static_cast<Out>(s[i]);
      return;
    }
    case DType::Q8_0:
    case DType::Q4_0: {
      if (n % kernels::kQBlock != 0)
        throw Error(std::string("cannot convert ") + std::to_string(n) + " values of " +
                    dtype_name(from) + ": not a multiple of its block of 32");
      auto* s = static_cast<const uint8_t*>(src);
      const size_t bs = dtype_size(from);
      for (size_t b = 0; b < n / kernels::kQBlock; ++b) {
        if (from == DType::Q8_0)
          kernels::dequantize_block_q8_0(s + b * bs, dst + b * kernels::kQBlock);
        else
          kernels::dequantize_block_q4_0(s + b * bs, dst + b * kernels::kQBlock);
      }
      return;
    }
  }
}
}  // namespace

void convert_to_f32(const void* src, DType from, float* dst, size_t n) {
  convert_to<float>(src, from, dst, n);
}
void convert_to_f64(const void* src, DType from, double* dst, size_t n) {
  convert_to<double>(src, from, dst, n);
}

void convert_from_f32(const float* src, void* dst, DType to, size_t n) {
  switch (to) {
    case DType::F32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::F64: {
      auto* d = static_cast<double*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = src[i];
      return;
    }
    case DType::BF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
      return;
    }
    case DType::F16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
      return;
    }
    case DType::Q8_0:
    case DType::Q4_0: {
      if (n % kernels::kQBlock != 0)
        throw Error(std::string("cannot quantize ") + std::to_string(n) + " values to " +
                    dtype_name(to) + ": not a multiple of its block of 32");
      auto* d = static_cast<uint8_t*>(dst);
      const size_t bs = dtype_size(to);
      for (size_t b = 0; b < n / kernels::kQBlock; ++b) {
        if (to == DType::Q8_0)
          kernels::quantize_block_q8_0(src + b * kernels::kQBlock, d + b * bs);
        else
          kernels::quantize_block_q4_0(src + b * kernels::kQBlock, d + b * bs);
      }
      return;
    }
    default:
      throw Error(std::string("cannot convert f32 to ") + dtype_name(to));
  }
}

}  // namespace hone
