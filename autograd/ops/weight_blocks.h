// Frozen weights stored as BF16/F16/Q8_0/Q4_0 reach gemm in the compute dtype through this:
// converted tile by tile of rows into one reusable per-thread buffer (shared by linear and the
// fused LM-head loss), so no op ever holds a whole converted copy of a large weight.
#pragma once

#include <algorithm>
#include <type_traits>
#include <vector>

#include "autograd/kernels/parallel.h"
#include "autograd/tensor.h"

namespace hone::ops_detail {

// Elements of converted weight held at once: bounds the workspace (16 MB in f32) however large
// W is (a 128k × 4096 lm_head would otherwise need 2 GB), while blocks stay large enough for
// gemm to run at full speed.
constexpr int64_t kWorkspaceElems = int64_t{1} << 22;

// Calls fn(o0, o1, W_rows) for row blocks [o0, o1) of W (out, in) as T. A W already in T is
// one block with no copy (or blocks of max_rows); otherwise rows are converted into a reusable
// thread_local buffer.
// max_rows > 0 bounds the rows of a block even when W needs no conversion (a caller that sizes
// its own scratch by the block).
template <class T, class F>
void for_weight_blocks(const Tensor& W, int64_t out, int64_t in, const F& fn,
                       int64_t max_rows = 0) {
  if (W.dtype() == (std::is_same_v<T, float> ? DType::F32 : DType::F64)) {
    const int64_t step = max_rows > 0 ? max_rows : std::max<int64_t>(out, 1);
    for (int64_t o0 = 0; o0 < out; o0 += step)
      fn(o0, std::min(out, o0 + step), W.data<T>() + o0 * in);
    return;
  }
  thread_local std::vector<T> ws;
  // Tiles of equal size (a multiple of 16 rows when there are several): an uneven last tile
  // would be a thin, slow product of its own.
  int64_t rows = std::max<int64_t>(1, std::min(out, kWorkspaceElems / std::max<int64_t>(in, 1)));
  if (max_rows > 0) rows = std::min(rows, max_rows);
  if (rows < out) {
    const int64_t tiles = (out + rows - 1) / rows;
    const int64_t even = ((out + tiles - 1) / tiles + 15) / 16 * 16;
    if (even <= rows) rows = even;
  }
  if (ws.size() < static_cast<size_t>(rows * in)) ws.resize(static_cast<size_t>(rows * in));
  const char* src = static_cast<const char*>(W.raw());
  for (int64_t o0 = 0; o0 < out; o0 += rows) {
    const int64_t o1 = std::min(out, o0 + rows);
    T* dst = ws.data();
    kernels::parallel_rows(o1 - o0, kernels::grain_for(in), [&](int64_t lo, int64_t hi) {
      // Q8_0/Q4_0 rows hold whole blocks (in % 32 == 0), so a row starts at a block.
      const void* s = src + dtype_nbytes(W.dtype(), (o0 + lo) * in);
      const size_t n = static_cast<size_t>((hi - lo) * in);
      if constexpr (std::is_same_v<T, float>)
        convert_to_f32(s, W.dtype(), dst + lo * in, n);
      else
        convert_to_f64(s, W.dtype(), dst + lo * in, n);
    });
    fn(o0, o1, static_cast<const T*>(dst));
  }
}

}  // namespace hone::ops_detail
