// Block quantization of frozen weights, in GGUF's layouts (so a tensor can go to a .gguf file
// byte for byte):
//   Q8_0: 34 bytes per 32 values — f16 scale d = max|x|/127, then 32 int8 q = round(x/d);
//         x ≈ q·d, |error| ≤ d/2 (+ the f16 rounding of d: ≤ 127·|d − f16(d)|).
//   Q4_0: 18 bytes per 32 values — f16 scale d = m/−8 where m is the value of largest magnitude
//         (sign kept, as ggml does, so m itself lands exactly on −8), then 16 bytes of 4-bit codes
//         q ∈ [0, 15]: byte j holds value j in its low nibble and value j+16 in its high one;
//         x ≈ (q − 8)·d, |error| ≤ |d|/2 except values near −m, clamped to +7: ≤ |d|.
// The block functions are inline so the dtype conversions and the GGUF reader/writer share this
// one implementation; the *_ref functions are plain loops written independently, for tests.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "autograd/dtype.h"

namespace hone::kernels {

constexpr int kQBlock = 32;
constexpr size_t kQ8Bytes = 34;
constexpr size_t kQ4Bytes = 18;

inline void quantize_block_q8_0(const float* x, uint8_t* out) {
  float amax = 0;
  for (int k = 0; k < kQBlock; ++k) amax = std::max(amax, std::fabs(x[k]));
  const float d = amax / 127.0f;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  const uint16_t dh = f32_to_f16(d);
  std::memcpy(out, &dh, 2);
  for (int k = 0; k < kQBlock; ++k) {
    const float q = std::round(x[k] * id);
    out[2 + k] = static_cast<uint8_t>(static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f)));
  }
}

template <class T>
inline void dequantize_block_q8_0(const uint8_t* in, T* y) {
  uint16_t dh;
  std::memcpy(&dh, in, 2);
  const float d = f16_to_f32(dh);
  const int8_t* q = reinterpret_cast<const int8_t*>(in + 2);
  for (int k = 0; k < kQBlock; ++k) y[k] = static_cast<T>(static_cast<float>(q[k]) * d);
}

inline void quantize_block_q4_0(const float* x, uint8_t* out) {
  float amax = 0, m = 0;
  for (int k = 0; k < kQBlock; ++k)
    if (std::fabs(x[k]) > amax) {
      amax = std::fabs(x[k]);
      m = x[k];
    }
  const float d = m / -8.0f;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  const uint16_t dh = f32_to_f16(d);
  std::memcpy(out, &dh, 2);
  for (int j = 0; j < kQBlock / 2; ++j) {
    // x·id ∈ [−8, 8]: +8.5 then truncation rounds to nearest in [0, 16]; 16 clamps to 15.
    const int lo = std::min(15, static_cast<int>(x[j] * id + 8.5f));
    const int hi = std::min(15, static_cast<int>(x[j + 16] * id + 8.5f));
    out[2 + j] = static_cast<uint8_t>(lo | (hi << 4));
  }
}

template <class T>
inline void dequantize_block_q4_0(const uint8_t* in, T* y) {
  uint16_t dh;
  std::memcpy(&dh, in, 2);
  const float d = f16_to_f32(dh);
  for (int j = 0; j < kQBlock / 2; ++j) {
    y[j] = static_cast<T>(static_cast<float>((in[2 + j] & 0x0f) - 8) * d);
    y[j + 16] = static_cast<T>(static_cast<float>((in[2 + j] >> 4) - 8) * d);
  }
}

// n values (a multiple of 32) to/from blocks of `t` (Q8_0 or Q4_0); parallel over blocks.
void quantize(const float* src, void* dst, DType t, int64_t n);
void dequantize(const void* src, DType t, float* dst, int64_t n);

// Plain-loop references: element by element, in double where it does not change the result.
void quantize_ref(const float* src, void* dst, DType t, int64_t n);
// Value i of a quantized buffer (any i; blocks of 32 from the start of src).
float dequantize_value_ref(const void* src, DType t, int64_t i);

}  // namespace hone::kernels
