#include "autograd/kernels/quant.h"

#include <string>

#include "autograd/error.h"
#include "autograd/kernels/parallel.h"

namespace hone::kernels {

namespace {

void check(DType t, int64_t n, const char* what) {
  if (!is_quantized(t)) throw Error(std::string(what) + ": " + dtype_name(t) + " is not Q8_0/Q4_0");
  if (n % kQBlock != 0)
    throw Error(std::string(what) + ": " + std::to_string(n) + " values are not a multiple of " +
                std::to_string(kQBlock));
}

}  // namespace

void quantize(const float* src, void* dst, DType t, int64_t n) {
  check(t, n, "quantize");
  const size_t bs = dtype_size(t);
  auto* out = static_cast<uint8_t*>(dst);
  parallel_rows(n / kQBlock, 256, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) {
      if (t == DType::Q8_0)
        quantize_block_q8_0(src + b * kQBlock, out + b * bs);
      else
        quantize_block_q4_0(src + b * kQBlock, out + b * bs);
    }
  });
}

void dequantize(const void* src, DType t, float* dst, int64_t n) {
  check(t, n, "dequantize");
  const size_t bs = dtype_size(t);
  const auto* in = static_cast<const uint8_t*>(src);
  parallel_rows(n / kQBlock, 1024, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) {
      if (t == DType::Q8_0)
        dequantize_block_q8_0(in + b * bs, dst + b * kQBlock);
      else
        dequantize_block_q4_0(in + b * bs, dst + b * kQBlock);
    }
  });
}

void quantize_ref(const float* src, void* dst, DType t, int64_t n) {
  check(t, n, "quantize_ref");
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < n / kQBlock; ++b) {
    const float* x = src + b * kQBlock;
    uint8_t* o = out + b * dtype_size(t);
    // The value of largest magnitude (the first one, on ties).
    int64_t arg = 0;
    for (int64_t k = 1; k < kQBlock; ++k)
      if (std::fabs(x[k]) > std::fabs(x[arg])) arg = k;
    const float d = t == DType::Q8_0 ? std::fabs(x[arg]) / 127.0f : x[arg] / -8.0f;
    const float id = d == 0 ? 0.0f : 1.0f / d;
    const uint16_t dh = f32_to_f16(d);
    o[0] = static_cast<uint8_t>(dh & 0xff);  // little-endian f16
    o[1] = static_cast<uint8_t>(dh >> 8);
    for (int64_t k = 0; k < kQBlock; ++k) {
      const float v = x[k] * id;
      if (t == DType::Q8_0) {
        long q = std::lround(v);
        q = std::min(127L, std::max(-127L, q));
        o[2 + k] = static_cast<uint8_t>(q & 0xff);
      } else {
        long q = static_cast<long>(std::floor(v + 8.5f));
        q = std::min(15L, std::max(0L, q));
        if (k < 16)
          o[2 + k] = static_cast<uint8_t>(q);
        else
          o[2 + k - 16] = static_cast<uint8_t>(o[2 + k - 16] | (q << 4));
      }
    }
  }
}

float dequantize_value_ref(const void* src, DType t, int64_t i) {
  check(t, 0, "dequantize_value_ref");
  const uint8_t* o = static_cast<const uint8_t*>(src) + (i / kQBlock) * dtype_size(t);
  const int64_t k = i % kQBlock;
  const float d = f16_to_f32(static_cast<uint16_t>(o[0] | (o[1] << 8)));
  int q;
  if (t == DType::Q8_0) {
    q = o[2 + k] >= 128 ? o[2 + k] - 256 : o[2 + k];
  } else {
    q = (k < 16 ? o[2 + k] & 15 : o[2 + k - 16] >> 4) - 8;
  }
  return static_cast<float>(q) * d;
}

}  // namespace hone::kernels
