// linear: y = x·Wᵀ + b, with frozen W possibly stored as BF16/F16 or quantized as Q8_0/Q4_0
// (converted / dequantized tile by tile of rows, then one gemm per tile).
#include <algorithm>
#include <vector>

#include "autograd/kernels/blas.h"
#include "autograd/kernels/parallel.h"
#include "autograd/ops.h"
#include "autograd/ops/common.h"
#include "autograd/ops/linear_parts.h"

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
  const bool bf16 = bf16_product_for(w);  // decided once: the backward follows the forward
  dispatch(ct, [&](auto z) {
    using T = decltype(z);
    projection_fwd<T>(w.value(), bias, x.value().data<T>(), N, in_f, out_f, T(0), y.data<T>(),
                      bf16);
  });
  const bool rg = needs_grad(t, {&x, &w, &b});
  Var out(std::move(y), rg);
  if (rg)
    t->record([t, x, w, b, out, N, in_f, out_f, bf16] {
      if (!out.has_grad()) return;
      dispatch(out.dtype(), [&](auto z) {
        using T = decltype(z);
        projection_bwd<T>(t, x, w, b, out.grad().data<T>(), N, in_f, out_f, bf16);
      });
    });
  return out;
}

}  // namespace hone
