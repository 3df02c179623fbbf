// Frozen weights stored as BF16/F16/Q8_0/Q4_0 reach gemm in the compute dtype through this,
// converted tile by tile into reusable per-thread buffers, so no op ever holds a whole converted
// copy of a large weight: projections (linear_parts.h) convert the part of W each task multiplies
// (converted_xwt / converted_dyw); the fused LM-head loss converts whole tiles of rows
// (for_weight_blocks).
#pragma once

#include <algorithm>
#include <type_traits>
#include <vector>

#include "autograd/kernels/blas.h"
#include "autograd/kernels/parallel.h"
#include "autograd/tensor.h"

namespace hone::ops_detail {

// Elements of converted weight held at once: bounds the workspace (16 MB in f32) however large
// W is (a 128k × 4096 lm_head would otherwise need 2 GB), while blocks stay large enough for
// gemm to run at full speed.
constexpr int64_t kWorkspaceElems = int64_t{1} << 22;
// Elements of one converted tile in the input-gradient product (1 MB in f32): small enough to
// stay in L2 between the conversion that writes it and the gemm that packs it (the forward
// keeps its larger parts: there each part re-packs X). `bench_kernels` times both products.
constexpr int64_t kDywTileElems = int64_t{1} << 18;

template <class T>
constexpr DType dtype_of = std::is_same_v<T, float> ? DType::F32 : DType::F64;

// Converts rows [o0, o1) × columns [c0, c1) of W (out, in) into dst (o1 − o0, c1 − c0).
// Q8_0/Q4_0 need c0 and c1 on block boundaries (multiples of 32) or c1 == in.
template <class T>
void convert_weight_part(const Tensor& W, int64_t in, int64_t o0, int64_t o1, int64_t c0,
                         int64_t c1, T* dst) {
  const char* src = static_cast<const char*>(W.raw());
  const int64_t w = c1 - c0;
  for (int64_t o = o0; o < o1; ++o) {
    const void* s = src + dtype_nbytes(W.dtype(), o * in + c0);
    if constexpr (std::is_same_v<T, float>)
      convert_to_f32(s, W.dtype(), dst + (o - o0) * w, static_cast<size_t>(w));
    else
      convert_to_f64(s, W.dtype(), dst + (o - o0) * w, static_cast<size_t>(w));
  }
}

// The length of equal tiles covering len, each at most `most` (multiples of 16 rows when there
// are several and most >= 16): an uneven last tile would be a thin, slow product of its own
// (576 rows in tiles of 341 would leave 235; equal tiles are 288).
inline int64_t equal_tile(int64_t len, int64_t most) {
  if (len <= most) return len;
  if (most < 16) return std::max<int64_t>(most, 1);
  for (int64_t tiles = (len + most - 1) / most;; ++tiles) {
    const int64_t even = ((len + tiles - 1) / tiles + 15) / 16 * 16;
    if (even <= most) return even;
  }
}

// Calls fn(o0, o1, W_rows) for row blocks [o0, o1) of W (out, in) as E. A W stored as `stored`
// (E's dtype) is one block with no copy (or blocks of max_rows); otherwise convert(o0, o1, dst)
// writes rows [o0, o1) as E into dst (o1 − o0, in), a reusable thread_local buffer, rows in
// parallel. for_weight_blocks (f32/f64) and for_weight_blocks_bf16 (bf16_products.h) are this.
// max_rows > 0 bounds the rows of a block even when W needs no conversion (a caller that sizes
// its own scratch by the block).
template <class E, class Convert, class F>
void for_weight_blocks_as(DType stored, const Tensor& W, int64_t out, int64_t in,
                          const Convert& convert, const F& fn, int64_t max_rows) {
  if (W.dtype() == stored) {
    const int64_t step = max_rows > 0 ? max_rows : std::max<int64_t>(out, 1);
    for (int64_t o0 = 0; o0 < out; o0 += step)
      fn(o0, std::min(out, o0 + step), static_cast<const E*>(W.raw()) + o0 * in);
    return;
  }
  thread_local std::vector<E> ws;
  int64_t rows = std::max<int64_t>(1, std::min(out, kWorkspaceElems / std::max<int64_t>(in, 1)));
  if (max_rows > 0) rows = std::min(rows, max_rows);
  rows = equal_tile(out, rows);
  if (ws.size() < static_cast<size_t>(rows * in)) ws.resize(static_cast<size_t>(rows * in));
  for (int64_t o0 = 0; o0 < out; o0 += rows) {
    const int64_t o1 = std::min(out, o0 + rows);
    E* dst = ws.data();
    kernels::parallel_rows(o1 - o0, kernels::grain_for(in), [&](int64_t lo, int64_t hi) {
      convert(o0 + lo, o0 + hi, dst + lo * in);
    });
    fn(o0, o1, static_cast<const E*>(dst));
  }
}

// for_weight_blocks_as in T (f32 or f64), converting with convert_weight_part.
template <class T, class F>
void for_weight_blocks(const Tensor& W, int64_t out, int64_t in, const F& fn,
                       int64_t max_rows = 0) {
  for_weight_blocks_as<T>(
      dtype_of<T>, W, out, in,
      [&](int64_t o0, int64_t o1, T* dst) { convert_weight_part<T>(W, in, o0, o1, 0, in, dst); },
      fn, max_rows);
}

// Parts of [0, len) for `threads` threads when one part may be at most `cap` long: gemm's
// split (kernels::split_parts, taken by whichever thread is free), or more, a multiple of the
// thread count, when parts that long would not fit.
inline kernels::Parts balanced_parts(int64_t len, int64_t align, int threads, int64_t cap) {
  const int64_t t = std::max(threads, 1);
  const int64_t fit = (len + t * cap - 1) / (t * std::max<int64_t>(cap, 1));
  return kernels::Parts(len, align, std::max(kernels::split_parts(len, threads), t * fit));
}

// The calling thread's buffer of at least n elements for converted parts of W (one per thread,
// shared by every product below).
template <class T>
T* weight_scratch(int64_t n) {
  thread_local std::vector<T> ws;
  if (ws.size() < static_cast<size_t>(n)) ws.resize(static_cast<size_t>(n));
  return ws.data();
}

// Products with a frozen W that is not stored in T, split so that each task converts exactly
// the part of W it multiplies into its thread's buffer and multiplies it at once: one parallel
// phase per product instead of a conversion phase followed by a product phase. The split is
// along W's rows (forward) or columns (input gradient), never along the summed dimension, and
// the parts depend only on the sizes and the thread count, so every element of the result is
// the same sum whichever thread computes it.
//
// Y (N, out) = X (N, in)·Wᵀ + beta·Y.
template <class T>
void converted_xwt(const Tensor& W, int64_t out, int64_t in, const T* X, int64_t N, T beta, T* Y) {
  const int threads = kernels::gemm_threads(N, out, in);
  // Rows of W one thread's buffer holds (16-row multiples: OpenBLAS's micro-tiles).
  const int64_t cap =
      std::max<int64_t>(16, kWorkspaceElems / threads / std::max<int64_t>(in, 1) / 16 * 16);
  const kernels::Parts parts = balanced_parts(out, 16, threads, cap);
  kernels::for_parts(parts.count, [&](int64_t i) {
    const int64_t o0 = parts.lo(i), o1 = parts.lo(i + 1);
    if (o0 >= o1) return;
    T* ws = weight_scratch<T>((o1 - o0) * in);
    convert_weight_part<T>(W, in, o0, o1, 0, in, ws);
    kernels::gemm_serial<T>(false, true, N, o1 - o0, in, T(1), X, in, ws, in, beta, Y + o0, out);
  });
}

// dX (N, in) = dY (N, out)·W + beta·dX. Each task owns columns [c0, c1) of dX and walks W's rows
// in tiles that fit its buffer, adding tile by tile in order.
template <class T>
void converted_dyw(const Tensor& W, int64_t out, int64_t in, const T* dY, int64_t N, T beta,
                   T* dX) {
  if (out == 0) {  // an empty sum
    if (beta == T(0)) std::fill(dX, dX + N * in, T(0));
    return;
  }
  const int threads = kernels::gemm_threads(N, out, in);
  // Column parts start on block boundaries of a quantized W.
  const kernels::Parts parts = balanced_parts(in, is_quantized(W.dtype()) ? 32 : 16, threads, in);
  kernels::for_parts(parts.count, [&](int64_t i) {
    const int64_t c0 = parts.lo(i), c1 = parts.lo(i + 1);
    if (c0 >= c1) return;
    // Equal tiles of at most kDywTileElems (and at least 16 rows).
    const int64_t tile = equal_tile(out, std::max<int64_t>(16, kDywTileElems / (c1 - c0)));
    for (int64_t t0 = 0; t0 < out; t0 += tile) {
      const int64_t t1 = std::min(out, t0 + tile);
      T* ws = weight_scratch<T>((t1 - t0) * (c1 - c0));
      convert_weight_part<T>(W, in, t0, t1, c0, c1, ws);
      kernels::gemm_serial<T>(false, false, N, c1 - c0, t1 - t0, T(1), dY + t0, out, ws, c1 - c0,
                              t0 == 0 ? beta : T(1), dX + c0, in);
    }
  });
}

}  // namespace hone::ops_detail
