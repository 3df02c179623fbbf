// add, mul, scale, reshape, silu, swiglu: forward, backward and what each saves.
#include "autograd/kernels/elementwise.h"

#include "autograd/ops.h"
#include "autograd/ops/common.h"

namespace hone {

using namespace ops_detail;

// y = a + b. Saves nothing.
Var add(Tape* t, const Var& a, const Var& b) {
  require_compute("add", "a", a);
  require_compute("add", "b", b);
  require_same("add", a, b);
  Tensor y = Tensor::empty(a.dtype(), a.shape());
  dispatch(a.dtype(), [&](auto z) {
    using T = decltype(z);
    kernels::add_fwd<T>(y.numel(), a.value().data<T>(), b.value().data<T>(), y.data<T>());
  });
  const bool rg = needs_grad(t, {&a, &b});
  Var out(std::move(y), rg);
  if (rg)
    t->record([t, a, b, out] {
      if (!out.has_grad()) return;
      dispatch(out.dtype(), [&](auto z) {
        using T = decltype(z);
        const T* dy = out.grad().data<T>();
        for (const Var* v : {&a, &b})
          if (v->requires_grad())
            kernels::axpy<T>(out.grad().numel(), T(1), dy, t->grad(*v).data<T>());
      });
    });
  return out;
}

// y = a ∘ b. Saves a and b (shared, not copied).
Var mul(Tape* t, const Var& a, const Var& b) {
  require_compute("mul", "a", a);
  require_compute("mul", "b", b);
  require_same("mul", a, b);
  Tensor y = Tensor::empty(a.dtype(), a.shape());
  dispatch(a.dtype(), [&](auto z) {
    using T = decltype(z);
    kernels::mul_fwd<T>(y.numel(), a.value().data<T>(), b.value().data<T>(), y.data<T>());
  });
  const bool rg = needs_grad(t, {&a, &b});
  Var out(std::move(y), rg);
  if (rg)
    t->record([t, a, b, out] {
      if (!out.has_grad()) return;
      dispatch(out.dtype(), [&](auto z) {
        using T = decltype(z);
        T* da = a.requires_grad() ? t->grad(a).data<T>() : nullptr;
        T* db = b.requires_grad() ? t->grad(b).data<T>() : nullptr;
        kernels::mul_bwd<T>(out.grad().numel(), a.value().data<T>(), b.value().data<T>(),
                            out.grad().data<T>(), da, db);
      });
    });
  return out;
}

// y = s·a. Saves nothing.
Var scale(Tape* t, const Var& a, double s) {
  require_compute("scale", "a", a);
  Tensor y = Tensor::empty(a.dtype(), a.shape());
  dispatch(a.dtype(), [&](auto z) {
    using T = decltype(z);
    kernels::scale_fwd<T>(y.numel(), static_cast<T>(s), a.value().data<T>(), y.data<T>());
  });
  const bool rg = needs_grad(t, {&a});
  Var out(std::move(y), rg);
  if (rg)
    t->record([t, a, s, out] {
      if (!out.has_grad()) return;
      dispatch(out.dtype(), [&](auto z) {
        using T = decltype(z);
        kernels::axpy<T>(out.grad().numel(), static_cast<T>(s), out.grad().data<T>(),
                         t->grad(a).data<T>());
      });
    });
  return out;
}

// A view of x's storage with a new shape; the gradient flows back unchanged. Saves nothing.
Var reshape(Tape* t, const Var& x, Shape shape) {
  require_defined("reshape", "x", x);
  if (shape_numel(shape) != x.value().numel())
    fail("reshape", "cannot reshape " + shape_str(x.shape()) + " to " + shape_str(shape));
  const bool rg = needs_grad(t, {&x});
  Var out(x.value().view(std::move(shape)), rg);
  if (rg) {
    if (!is_float_compute(x.dtype())) fail("reshape", desc("x", x) + " cannot take a gradient");
    t->record([t, x, out] {
      if (!out.has_grad()) return;
      dispatch(out.dtype(), [&](auto z) {
        using T = decltype(z);
        kernels::axpy<T>(out.grad().numel(), T(1), out.grad().data<T>(), t->grad(x).data<T>());
      });
    });
  }
  return out;
}

// y = x·sigmoid(x). Saves x.
Var silu(Tape* t, const Var& x) {
  require_compute("silu", "x", x);
  Tensor y = Tensor::empty(x.dtype(), x.shape());
  dispatch(x.dtype(), [&](auto z) {
    using T = decltype(z);
    kernels::silu_fwd<T>(y.numel(), x.value().data<T>(), y.data<T>());
  });
  const bool rg = needs_grad(t, {&x});
  Var out(std::move(y), rg);
  if (rg)
    t->record([t, x, out] {
      if (!out.has_grad()) return;
      dispatch(out.dtype(), [&](auto z) {
        using T = decltype(z);
        kernels::silu_bwd<T>(out.grad().numel(), x.value().data<T>(), out.grad().data<T>(),
                             t->grad(x).data<T>());
      });
    });
  return out;
}

// y = silu(gate)·up. Saves gate and up.
Var swiglu(Tape* t, const Var& gate, const Var& up) {
  require_compute("swiglu", "gate", gate);
  require_compute("swiglu", "up", up);
  require_same("swiglu", gate, up);
  Tensor y = Tensor::empty(gate.dtype(), gate.shape());
  dispatch(gate.dtype(), [&](auto z) {
    using T = decltype(z);
    kernels::swiglu_fwd<T>(y.numel(), gate.value().data<T>(), up.value().data<T>(), y.data<T>());
  });
  const bool rg = needs_grad(t, {&gate, &up});
  Var out(std::move(y), rg);
  if (rg)
    t->record([t, gate, up, out] {
      if (!out.has_grad()) return;
      dispatch(out.dtype(), [&](auto z) {
        using T = decltype(z);
        T* dg = gate.requires_grad() ? t->grad(gate).data<T>() : nullptr;
        T* du = up.requires_grad() ? t->grad(up).data<T>() : nullptr;
        kernels::swiglu_bwd<T>(out.grad().numel(), gate.value().data<T>(), up.value().data<T>(),
                               out.grad().data<T>(), dg, du);
      });
    });
  return out;
}

}  // namespace hone
