// add, mul, scale, reshape, silu, swiglu: forward, backward and what each saves.
#include "autograd/kernels/elementwise.h"

#include "autograd/ops.h"
#include "autograd/ops/common.h"

namespace hone {

using namespace ops_detail;

namespace {

// An elementwise op of two same-shaped inputs that saves both (shared, not copied):
// fwd(n, a, b, y) and bwd(n, a, b, dy, da, db) with da/db null when not needed.
template <class Fwd, class Bwd>
Var binary_op(Tape* t, const char* op, const char* an, const char* bn, const Var& a, const Var& b,
              Fwd fwd, Bwd bwd) {
  require_compute(op, an, a);
  require_compute(op, bn, b);
  require_same(op, a, b);
  Tensor y = Tensor::empty(a.dtype(), a.shape());
  dispatch(a.dtype(), [&](auto z) {
    using T = decltype(z);
    fwd(y.numel(), a.value().data<T>(), b.value().data<T>(), y.data<T>());
  });
  const bool rg = needs_grad(t, {&a, &b});
  Var out(std::move(y), rg);
  if (rg)
    t->record([t, a, b, out, bwd] {
      if (!out.has_grad()) return;
      dispatch(out.dtype(), [&](auto z) {
        using T = decltype(z);
        // A first gradient is stored into its fresh buffer rather than added to zeros. When a
        // and b are one Var, b's request finds the buffer a's made (not fresh): b adds.
        bool fa = false, fb = false;
        T* da = a.requires_grad() ? t->grad(a, &fa).data<T>() : nullptr;
        T* db = b.requires_grad() ? t->grad(b, &fb).data<T>() : nullptr;
        bwd(out.grad().numel(), a.value().data<T>(), b.value().data<T>(),
            static_cast<const T*>(out.grad().data<T>()), da, db, fa, fb);
      });
    });
  return out;
}

}  // namespace

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
  return binary_op(
      t, "mul", "a", "b", a, b,
      [](auto n, const auto* x, const auto* y, auto* out) { kernels::mul_fwd(n, x, y, out); },
      [](auto n, const auto* x, const auto* y, const auto* dy, auto* dx, auto* dyy, bool sx,
         bool sy) { kernels::mul_bwd(n, x, y, dy, dx, dyy, sx, sy); });
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
  return binary_op(
      t, "swiglu", "gate", "up", gate, up,
      [](auto n, const auto* g, const auto* u, auto* out) { kernels::swiglu_fwd(n, g, u, out); },
      [](auto n, const auto* g, const auto* u, const auto* dy, auto* dg, auto* du, bool sg,
         bool su) { kernels::swiglu_bwd(n, g, u, dy, dg, du, sg, su); });
}

}  // namespace hone
