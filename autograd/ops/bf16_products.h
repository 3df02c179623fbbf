// The frozen-base products in bf16 (kernels::bf16_products() on): x·Wᵀ and dy·W with x / dy
// rounded to bf16 as they enter the product, W in bf16 (used in place when stored as BF16,
// otherwise converted part by part as weight_blocks.h does for f32), f32 accumulation and
// output. Only frozen weights take this path: a W that trains keeps f32 products, as do the
// LoRA A/B products, so adapters and their gradients stay f32.
#pragma once

#include <cstdint>

#include "autograd/kernels/bf16_gemm.h"
#include "autograd/kernels/parallel.h"
#include "autograd/ops/weight_blocks.h"
#include "autograd/tape.h"

namespace hone::ops_detail {

// Whether a product with this weight runs in bf16: the switch is on and W is frozen.
inline bool bf16_product_for(const Var& w) {
  return kernels::bf16_products() && !w.requires_grad();
}

// Rows [o0, o1) × columns [c0, c1) of W (out, in) as bf16 into dst (o1 − o0, c1 − c0): copied
// from BF16, rounded from F32, or converted to f32 first (F16, Q8_0, Q4_0; block types need
// c0, c1 on 32-element boundaries or c1 == in) and then rounded.
void convert_weight_part_bf16(const Tensor& W, int64_t in, int64_t o0, int64_t o1, int64_t c0,
                              int64_t c1, uint16_t* dst);

// X (N, in) f32 as bf16 into out (N, in) (rows in parallel).
void round_rows_to_bf16(const float* X, int64_t N, int64_t in, uint16_t* out);

// Y (N, out) = bf16(X) (N, in)·bf16(W)ᵀ + beta·Y, beta 0 or 1.
void bf16_xwt(const Tensor& W, int64_t out, int64_t in, const float* X, int64_t N, float beta,
              float* Y);
// dX (N, in) = bf16(dY) (N, out)·bf16(W) + beta·dX, beta 0 or 1.
void bf16_dyw(const Tensor& W, int64_t out, int64_t in, const float* dY, int64_t N, float beta,
              float* dX);

// for_weight_blocks in bf16: fn(o0, o1, W_rows) for row blocks [o0, o1) of W as bf16 (in
// place when W is BF16, else converted by convert_weight_part_bf16 into a thread_local
// buffer), at most max_rows each.
template <class F>
void for_weight_blocks_bf16(const Tensor& W, int64_t out, int64_t in, const F& fn,
                            int64_t max_rows) {
  for_weight_blocks_as<uint16_t>(
      DType::BF16, W, out, in,
      [&](int64_t o0, int64_t o1, uint16_t* dst) {
        convert_weight_part_bf16(W, in, o0, o1, 0, in, dst);
      },
      fn, max_rows);
}

}  // namespace hone::ops_detail
