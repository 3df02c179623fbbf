// lora_linear: the frozen projection and its low-rank update as one op,
//   y = x·Wᵀ + b + s·(xa·Aᵀ)·Bᵀ      (xa = x, or dropout(x) as a separate Var)
// The low-rank product accumulates straight into y (gemm with beta = 1), so the unfused chain's
// three extra (N, out) tensors — base output, B·A·x, its scaled copy — and their gradients never
// exist. Saves x, xa and low = xa·Aᵀ (N, r).
#include <algorithm>
#include <cstring>

#include "autograd/kernels/blas.h"
#include "autograd/kernels/elementwise.h"
#include "autograd/kernels/parallel.h"
#include "autograd/ops.h"
#include "autograd/ops/common.h"
#include "autograd/ops/linear_parts.h"

namespace hone {

using namespace ops_detail;

Var lora_linear(Tape* t, const Var& x, const Var& w, const Var& b, const Var& xa, const Var& a,
                const Var& bm, double s, const Var& residual) {
  require_compute("lora_linear", "x", x);
  require_compute("lora_linear", "xa", xa);
  const DType ct = x.dtype();
  require_weight("lora_linear", "W", w, ct);
  require_weight("lora_linear", "A", a, ct);
  require_weight("lora_linear", "B", bm, ct);
  if (w.value().ndim() != 2 || x.value().ndim() < 1 || x.shape().back() != w.shape()[1])
    fail("lora_linear", "x " + shape_str(x.shape()) + " does not match W " + shape_str(w.shape()) +
                            " (want x (..., in), W (out, in))");
  const int64_t out_f = w.shape()[0], in_f = w.shape()[1];
  if (xa.shape() != x.shape() || xa.dtype() != ct)
    fail("lora_linear", desc("xa", xa) + " must match " + desc("x", x));
  if (a.value().ndim() != 2 || a.shape()[1] != in_f || bm.value().ndim() != 2 ||
      bm.shape()[0] != out_f || bm.shape()[1] != a.shape()[0])
    fail("lora_linear", "A " + shape_str(a.shape()) + " and B " + shape_str(bm.shape()) +
                            " do not fit W " + shape_str(w.shape()) +
                            " (want A (r, in), B (out, r))");
  if (a.dtype() != ct || bm.dtype() != ct)
    fail("lora_linear", desc("A", a) + ", " + desc("B", bm) + ": expected the compute dtype");
  const int64_t r = a.shape()[0];
  const int64_t N = in_f ? x.value().numel() / in_f : 0;
  Tensor bias;
  if (b.defined()) {
    require_weight("lora_linear", "b", b, ct);
    if (b.value().numel() != out_f)
      fail("lora_linear",
           "b " + shape_str(b.shape()) + " does not match W " + shape_str(w.shape()));
    bias = as_compute(b.value(), ct);
  }
  Shape yshape = x.shape();
  yshape.back() = out_f;
  if (residual.defined()) {
    require_compute("lora_linear", "residual", residual);
    if (residual.dtype() != ct || residual.value().numel() != N * out_f)
      fail("lora_linear", desc("residual", residual) + " must be (N, out) = (" + std::to_string(N) +
                              ", " + std::to_string(out_f) + ")");
  }
  Tensor y = Tensor::empty(ct, yshape);   // (N, out)
  const bool bf16 = bf16_product_for(w);  // decided once: the backward follows the forward
  Tensor low = Tensor::empty(ct, {N, r});
  dispatch(ct, [&](auto z) {
    using T = decltype(z);
    const T* X = x.value().data<T>();
    T* Y = y.data<T>();
    // With a residual, y starts as its copy and the products accumulate into it.
    if (residual.defined())
      std::memcpy(Y, residual.value().data<T>(), static_cast<size_t>(N * out_f) * sizeof(T));
    projection_fwd<T>(w.value(), bias, X, N, in_f, out_f, residual.defined() ? T(1) : T(0), Y,
                      bf16);
    T* L = low.data<T>();
    kernels::gemm<T>(false, true, N, r, in_f, T(1), xa.value().data<T>(), in_f, a.value().data<T>(),
                     in_f, T(0), L, r);
    kernels::gemm<T>(false, true, N, out_f, r, static_cast<T>(s), L, r, bm.value().data<T>(), r,
                     T(1), Y, out_f);
  });
  const bool rg = needs_grad(t, {&x, &w, &b, &xa, &a, &bm, &residual});
  Var out(std::move(y), rg);
  if (rg)
    t->record([t, x, w, b, xa, a, bm, s, residual, low, out, N, in_f, out_f, r, bf16] {
      if (!out.has_grad()) return;
      dispatch(out.dtype(), [&](auto z) {
        using T = decltype(z);
        const T* dY = out.grad().data<T>();  // (N, out)
        const T* L = low.data<T>();          // (N, r)
        const T ts = static_cast<T>(s);
        // The base product first: it is usually the first gradient to reach x, and then stores
        // into dx instead of adding into zeros.
        projection_bwd<T>(t, x, w, b, dY, N, in_f, out_f, bf16);  // dx += dY·W (dW, db if trained)
        if (residual.requires_grad()) {
          bool fresh = false;
          T* dR = t->grad(residual, &fresh).data<T>();
          if (fresh)
            std::copy(dY, dY + N * out_f, dR);
          else
            kernels::axpy<T>(N * out_f, T(1), dY, dR);
        }
        if (bm.requires_grad())  // dB += s·dYᵀ·low
          kernels::gemm<T>(true, false, out_f, r, N, ts, dY, out_f, L, r, T(1),
                           t->grad(bm).data<T>(), r);
        if (a.requires_grad() || xa.requires_grad()) {
          Tensor dlow = Tensor::empty(out.dtype(), {N, r});  // s·dY·B
          T* dL = dlow.data<T>();
          kernels::gemm<T>(false, false, N, r, out_f, ts, dY, out_f, bm.value().data<T>(), r, T(0),
                           dL, r);
          if (a.requires_grad())  // dA += dlowᵀ·xa
            kernels::gemm<T>(true, false, r, in_f, N, T(1), dL, r, xa.value().data<T>(), in_f, T(1),
                             t->grad(a).data<T>(), in_f);
          if (xa.requires_grad())  // dxa += dlow·A
            kernels::gemm<T>(false, false, N, in_f, r, T(1), dL, r, a.value().data<T>(), in_f, T(1),
                             t->grad(xa).data<T>(), in_f);
        }
      });
    });
  return out;
}

}  // namespace hone
