// The bf16 frozen-base products, split over the threads exactly as their f32 counterparts in
// weight_blocks.h (forward along W's rows, input gradient along its columns, never along the
// summed dimension), so every element is the same sum whichever thread computes it.
#include "autograd/ops/bf16_products.h"

#include <algorithm>
#include <vector>

#include "autograd/block_cache.h"
#include "autograd/kernels/blas.h"

namespace hone::ops_detail {

namespace {

// Columns of a column tile of the converted input gradient (a multiple of the 32-value
// quantization block, so tiles start on whole blocks).
constexpr int64_t kDywColTile = 512;

}  // namespace

void convert_weight_part_bf16(const Tensor& W, int64_t in, int64_t o0, int64_t o1, int64_t c0,
                              int64_t c1, uint16_t* dst) {
  const int64_t w = c1 - c0;
  if (W.dtype() == DType::BF16) {
    const uint16_t* src = static_cast<const uint16_t*>(W.raw());
    for (int64_t o = o0; o < o1; ++o) std::copy_n(src + o * in + c0, w, dst + (o - o0) * w);
    return;
  }
  if (W.dtype() == DType::F32) {
    const float* src = static_cast<const float*>(W.raw());
    for (int64_t o = o0; o < o1; ++o)
      kernels::round_to_bf16(src + o * in + c0, dst + (o - o0) * w, static_cast<size_t>(w));
    return;
  }
  thread_local std::vector<float> row;
  if (row.size() < static_cast<size_t>(w)) row.resize(static_cast<size_t>(w));
  const char* src = static_cast<const char*>(W.raw());
  for (int64_t o = o0; o < o1; ++o) {
    convert_to_f32(src + dtype_nbytes(W.dtype(), o * in + c0), W.dtype(), row.data(),
                   static_cast<size_t>(w));
    kernels::round_to_bf16(row.data(), dst + (o - o0) * w, static_cast<size_t>(w));
  }
}

void round_rows_to_bf16(const float* X, int64_t N, int64_t in, uint16_t* dst) {
  kernels::parallel_rows(N, kernels::grain_for(in), [&](int64_t lo, int64_t hi) {
    kernels::round_to_bf16(X + lo * in, dst + lo * in, static_cast<size_t>((hi - lo) * in));
  });
}

void bf16_xwt(const Tensor& W, int64_t out, int64_t in, const float* X, int64_t N, float beta,
              float* Y) {
  const ScopedBlock<uint16_t> xb(static_cast<size_t>(N * in));  // X rounded
  round_rows_to_bf16(X, N, in, xb.data());
  const int threads = kernels::gemm_threads(N, out, in);
  const bool stored = W.dtype() == DType::BF16;
  const int64_t cap =
      stored
          ? out
          : std::max<int64_t>(16, kWorkspaceElems / threads / std::max<int64_t>(in, 1) / 16 * 16);
  const kernels::Parts parts = balanced_parts(out, 16, threads, cap);
  kernels::for_parts(parts.count, [&](int64_t i) {
    const int64_t o0 = parts.lo(i), o1 = parts.lo(i + 1);
    if (o0 >= o1) return;
    const uint16_t* wp;
    if (stored) {
      wp = static_cast<const uint16_t*>(W.raw()) + o0 * in;
    } else {
      uint16_t* ws = weight_scratch<uint16_t>((o1 - o0) * in);
      convert_weight_part_bf16(W, in, o0, o1, 0, in, ws);
      wp = ws;
    }
    kernels::gemm_bf16_serial(true, N, o1 - o0, in, xb.data(), in, wp, in, beta, Y + o0, out);
  });
}

void bf16_dyw(const Tensor& W, int64_t out, int64_t in, const float* dY, int64_t N, float beta,
              float* dX) {
  if (out == 0) {  // an empty sum
    if (beta == 0.0f) std::fill(dX, dX + N * in, 0.0f);
    return;
  }
  const ScopedBlock<uint16_t> gb(static_cast<size_t>(N * out));  // dY rounded
  round_rows_to_bf16(dY, N, out, gb.data());
  const int threads = kernels::gemm_threads(N, out, in);
  const bool stored = W.dtype() == DType::BF16;
  const kernels::Parts parts = balanced_parts(in, is_quantized(W.dtype()) ? 32 : 16, threads, in);
  kernels::for_parts(parts.count, [&](int64_t i) {
    const int64_t c0 = parts.lo(i), c1 = parts.lo(i + 1);
    if (c0 >= c1) return;
    if (stored) {  // W's columns [c0, c1) in place: one product over all of out
      kernels::gemm_bf16_serial(false, N, c1 - c0, out, gb.data(), out,
                                static_cast<const uint16_t*>(W.raw()) + c0, in, beta, dX + c0, in);
      return;
    }
    // W converted tile by tile, each tile's product adding into dX's columns [x0, x1). A tile
    // of few rows makes each product re-read and re-write all of that (N, x1 − x0) slice (at
    // 32 rows a tile, Llama-3.2-1B's down_proj ran at 60 GFLOP/s against 118 with 512 × 512
    // tiles; bench_bf16_own_gemm): wide parts go in column tiles too, so a tile keeps 512 rows.
    const int64_t cw = kDywTileElems / (c1 - c0) < 256 ? kDywColTile : c1 - c0;
    for (int64_t x0 = c0; x0 < c1; x0 += cw) {
      const int64_t x1 = std::min(c1, x0 + cw), w = x1 - x0;
      const int64_t tile = equal_tile(out, std::max<int64_t>(16, kDywTileElems / w));
      for (int64_t t0 = 0; t0 < out; t0 += tile) {
        const int64_t t1 = std::min(out, t0 + tile);
        uint16_t* ws = weight_scratch<uint16_t>((t1 - t0) * w);
        convert_weight_part_bf16(W, in, t0, t1, x0, x1, ws);
        kernels::gemm_bf16_serial(false, N, w, t1 - t0, gb.data() + t0, out, ws, w,
                                  t0 == 0 ? beta : 1.0f, dX + x0, in);
      }
    }
  });
}

}  // namespace hone::ops_detail
