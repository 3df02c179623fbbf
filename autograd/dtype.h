// Element types: f32/f64 for compute, bf16/f16 as storage of frozen weights, i32/i64 for ids,
// and the block formats Q8_0/Q4_0 (GGUF's layouts: 32 values per block with an f16 scale) as
// quantized storage of frozen weights.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace hone {

enum class DType { F32, F64, BF16, F16, I32, I64, Q8_0, Q4_0 };

// Bytes per block: one element for scalar types (4 for F32, ...), 34 for Q8_0, 18 for Q4_0.
size_t dtype_size(DType t);
// Elements per block: 1 for scalar types, 32 for Q8_0 and Q4_0.
int64_t dtype_block(DType t);
inline bool is_quantized(DType t) {
  return t == DType::Q8_0 || t == DType::Q4_0;
}
// Bytes of n elements (n a multiple of the block size).
inline size_t dtype_nbytes(DType t, int64_t n) {
  return static_cast<size_t>(n / dtype_block(t)) * dtype_size(t);
}
const char* dtype_name(DType t);
// Parses the names used by safetensors ("F32", "BF16", ...); throws Error on unknown names.
DType dtype_from_name(const std::string& name);
inline bool is_float_compute(DType t) {
  return t == DType::F32 || t == DType::F64;
}

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round to nearest even, as PyTorch does; NaN stays a (quiet) NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Converts n elements of `src` (type `from`) to f32 / f64. Frozen bf16/f16/q8_0/q4_0 weights go
// through here; for the block types n is a multiple of 32 and src starts at a block.
void convert_to_f32(const void* src, DType from, float* dst, size_t n);
void convert_to_f64(const void* src, DType from, double* dst, size_t n);
// Converts n f32 values to `to` (f32, f64, bf16, f16 rounding to nearest even; q8_0/q4_0
// quantizing, n a multiple of 32).
void convert_from_f32(const float* src, void* dst, DType to, size_t n);

}  // namespace hone
