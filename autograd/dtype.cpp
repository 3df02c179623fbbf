#include "autograd/dtype.h"

#include <cmath>

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
template <class Out>
void convert_to(const void* src, DType from, Out* dst, size_t n) {
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
