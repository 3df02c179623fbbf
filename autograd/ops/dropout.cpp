// Inverted dropout. Saves only the rng state the mask was drawn from: the backward redraws it.
#include "autograd/kernels/dropout.h"

#include <cstring>

#include "autograd/kernels/elementwise.h"
#include "autograd/ops.h"
#include "autograd/ops/common.h"

namespace hone {

using namespace ops_detail;

Var dropout(Tape* t, const Var& x, double p, Rng& rng) {
  require_compute("dropout", "x", x);
  if (!(p >= 0.0 && p < 1.0))
    fail("dropout", "p must be in [0, 1) (got " + std::to_string(p) + ")");
  const int64_t n = x.value().numel();
  const uint64_t state = rng.state();
  Tensor y = Tensor::empty(x.dtype(), x.shape());
  if (p == 0.0) {  // identity; draws nothing from rng
    if (n) std::memcpy(y.raw(), x.value().raw(), y.nbytes());
  } else {
    dispatch(x.dtype(), [&](auto z) {
      using T = decltype(z);
      rng.set_state(kernels::dropout_fwd<T>(n, p, state, x.value().data<T>(), y.data<T>()));
    });
  }
  const bool rg = needs_grad(t, {&x});
  Var out(std::move(y), rg);
  if (rg)
    t->record([t, x, out, p, state, n] {
      if (!out.has_grad()) return;
      dispatch(out.dtype(), [&](auto z) {
        using T = decltype(z);
        if (p == 0.0)
          kernels::axpy<T>(n, T(1), out.grad().data<T>(), t->grad(x).data<T>());
        else
          kernels::dropout_bwd<T>(n, p, state, out.grad().data<T>(), t->grad(x).data<T>());
      });
    });
  return out;
}

}  // namespace hone
