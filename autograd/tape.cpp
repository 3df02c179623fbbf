#include "autograd/tape.h"

namespace hone {

Var::Var(Tensor value, bool requires_grad) : p_(std::make_shared<VarImpl>()) {
  p_->value = std::move(value);
  p_->requires_grad = requires_grad;
}

Var Var::with_grad_buffer(Tensor value, Tensor grad) {
  if (grad.shape() != value.shape() || grad.dtype() != value.dtype())
    throw Error("gradient buffer " + shape_str(grad.shape()) + " does not match value " +
                shape_str(value.shape()));
  Var v(std::move(value), true);
  v.p_->grad = std::move(grad);
  return v;
}

Tensor& Tape::grad(const Var& v) {
  VarImpl* p = v.impl();
  if (!p->grad.defined()) p->grad = Tensor::zeros(p->value.dtype(), p->value.shape());
  return p->grad;
}

Tensor& Tape::grad(const Var& v, bool* fresh) {
  VarImpl* p = v.impl();
  *fresh = !p->grad.defined();
  if (*fresh) p->grad = Tensor::empty(p->value.dtype(), p->value.shape());
  return p->grad;
}

void Tape::backward(const Var& loss) {
  if (loss.value().numel() != 1)
    throw Error("backward needs a scalar loss, got shape " + shape_str(loss.shape()));
  if (loss.requires_grad()) {
    Tensor& g = grad(loss);
    if (g.dtype() == DType::F64)
      g.data<double>()[0] += 1.0;
    else
      g.data<float>()[0] += 1.0f;
  }
  run_all();
}

void Tape::backward_from(const Var& y, const Tensor& dy) {
  if (dy.shape() != y.shape() || dy.dtype() != y.dtype())
    throw Error("backward_from: seed " + shape_str(dy.shape()) + " does not match output " +
                shape_str(y.shape()));
  if (y.requires_grad()) {
    Tensor& g = grad(y);
    g = dy.clone();
  }
  run_all();
}

void Tape::run_all() {
  for (auto it = nodes_.rbegin(); it != nodes_.rend(); ++it) {
    (*it)();
    *it = nullptr;  // free saved tensors as soon as they are used
  }
  nodes_.clear();
}

}  // namespace hone
