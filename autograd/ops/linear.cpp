// linear: y = x·Wᵀ + b, with frozen W possibly stored as BF16/F16 or quantized as Q8_0/Q4_0
// (converted / dequantized tile by tile of rows, then one gemm per tile).
#include <algorithm>
#include <vector>

#include "autograd/kernels/blas.h"
#include "autograd/kernels/parallel.h"
#include "autograd/ops.h"
#include "autograd/ops/common.h"
#include "autograd/ops/weight_blocks.h"

namespace hone {

using namespace ops_detail;

// Saves x, W, b (shared). Backward: dx += dy·W; dW += dyᵀ·x; db += Σ_rows dy.
Var linear(Tape* t, const Var& x, const Var& w, const Var& b) {
  require_compute("linear", "x", x);
  const DType ct = x.dtype();
  require_weight("linear", "W", w, ct);
  if (w.value().ndim() != 2 || x.value().ndim() < 1 || x.shape().back() != w.shape()[1])
    fail("linear", "x " + shape_str(x.shape()) + " does not match W " + shape_str(w.shape()) +
                       " (want x (..., in), W (out, in))");
  const int64_t out_f = w.shape()[0], in_f = w.shape()[1];
  const int64_t N = in_f ? x.value().numel() / in_f : 0;
  Tensor bias;
  if (b.defined()) {
    require_weight("linear", "b", b, ct);
    if (b.value().numel() != out_f)
      fail("linear", "b " + shape_str(b.shape()) + " does not match W " + shape_str(w.shape()));
    bias = as_compute(b.value(), ct);
  }
  Shape yshape = x.shape();
  yshape.back() = out_f;
  Tensor y = Tensor::empty(ct, yshape);
  dispatch(ct, [&](auto z) {
    using T = decltype(z);
    const T* X = x.value().data<T>();
    T* Y = y.data<T>();
    for_weight_blocks<T>(w.value(), out_f, in_f, [&](int64_t o0, int64_t o1, const T* W) {
      kernels::gemm<T>(false, true, N, o1 - o0, in_f, T(1), X, in_f, W, in_f, T(0), Y + o0, out_f);
    });
    if (bias.defined()) {
      const T* B = bias.data<T>();
      kernels::parallel_rows(N, kernels::grain_for(out_f), [&](int64_t lo, int64_t hi) {
        for (int64_t n = lo; n < hi; ++n)
          for (int64_t o = 0; o < out_f; ++o) Y[n * out_f + o] += B[o];
      });
    }
  });
  const bool rg = needs_grad(t, {&x, &w, &b});
  Var out(std::move(y), rg);
  if (rg)
    t->record([t, x, w, b, out, N, in_f, out_f] {
      if (!out.has_grad()) return;
      dispatch(out.dtype(), [&](auto z) {
        using T = decltype(z);
        const T* dY = out.grad().data<T>();
        if (x.requires_grad()) {
          T* dX = t->grad(x).data<T>();
          for_weight_blocks<T>(w.value(), out_f, in_f, [&](int64_t o0, int64_t o1, const T* W) {
            kernels::gemm<T>(false, false, N, in_f, o1 - o0, T(1), dY + o0, out_f, W, in_f, T(1),
                             dX, in_f);
          });
        }
        if (w.requires_grad())
          kernels::gemm<T>(true, false, out_f, in_f, N, T(1), dY, out_f, x.value().data<T>(), in_f,
                           T(1), t->grad(w).data<T>(), in_f);
        if (b.requires_grad()) {
          // Column sums: each column is summed over rows in order by one task (deterministic).
          T* dB = t->grad(b).data<T>();
          kernels::parallel_rows(out_f, 256, [&](int64_t lo, int64_t hi) {
            for (int64_t n = 0; n < N; ++n)
              for (int64_t o = lo; o < hi; ++o) dB[o] += dY[n * out_f + o];
          });
        }
      });
    });
  return out;
}

}  // namespace hone
