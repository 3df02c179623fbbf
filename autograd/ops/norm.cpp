// rmsnorm: forward, backward and the saved per-row inverse RMS.
#include "autograd/kernels/rmsnorm.h"
#include "autograd/ops.h"
#include "autograd/ops/common.h"

namespace hone {

using namespace ops_detail;

// Saves x, w (shared) and inv_rms (rows). x (..., C·k) is normalised in groups of C = w.numel().
Var rmsnorm(Tape* t, const Var& x, const Var& w, double eps) {
  require_compute("rmsnorm", "x", x);
  const DType ct = x.dtype();
  require_weight("rmsnorm", "w", w, ct);
  const int64_t C = w.value().numel();
  if (C == 0 || x.value().ndim() < 1 || x.shape().back() % C != 0)
    fail("rmsnorm", "x " + shape_str(x.shape()) + " does not match w " + shape_str(w.shape()) +
                        " (the last dim of x must be a multiple of w's size)");
  const int64_t rows = x.value().numel() / C;
  Tensor wc = as_compute(w.value(), ct);
  Tensor y = Tensor::empty(ct, x.shape());
  Tensor inv = Tensor::empty(ct, {rows});
  dispatch(ct, [&](auto z) {
    using T = decltype(z);
    kernels::rmsnorm_fwd<T>(rows, C, x.value().data<T>(), wc.data<T>(), eps, y.data<T>(),
                            inv.data<T>());
  });
  const bool rg = needs_grad(t, {&x, &w});
  Var out(std::move(y), rg);
  if (rg)
    t->record([t, x, w, wc, inv, out, rows, C] {
      if (!out.has_grad()) return;
      dispatch(out.dtype(), [&](auto z) {
        using T = decltype(z);
        T* dx = x.requires_grad() ? t->grad(x).data<T>() : nullptr;
        T* dw = w.requires_grad() ? t->grad(w).data<T>() : nullptr;
        kernels::rmsnorm_bwd<T>(rows, C, x.value().data<T>(), wc.data<T>(), inv.data<T>(),
                                out.grad().data<T>(), dx, dw);
      });
    });
  return out;
}

}  // namespace hone
