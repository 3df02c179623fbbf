// Variables and the tape: ops record a backward closure; Tape::backward runs them in reverse.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "autograd/tensor.h"

namespace hone {

struct VarImpl {
  Tensor value;
  Tensor grad;  // undefined until something accumulates into it
  bool requires_grad = false;
};

// A node's value plus (optionally) its gradient. Cheap to copy (shared).
// Frozen weights are Vars with requires_grad=false: they never get a gradient buffer.
class Var {
 public:
  Var() = default;
  explicit Var(Tensor value, bool requires_grad = false);
  // A parameter whose gradient lives in a caller-owned buffer (e.g. a flat arena).
  static Var with_grad_buffer(Tensor value, Tensor grad);

  bool defined() const { return p_ != nullptr; }
  const Tensor& value() const { return p_->value; }
  Tensor& value() { return p_->value; }
  bool requires_grad() const { return p_ && p_->requires_grad; }
  bool has_grad() const { return p_ && p_->grad.defined(); }
  const Tensor& grad() const { return p_->grad; }
  Tensor& grad() { return p_->grad; }
  const Shape& shape() const { return p_->value.shape(); }
  DType dtype() const { return p_->value.dtype(); }
  VarImpl* impl() const { return p_.get(); }

 private:
  std::shared_ptr<VarImpl> p_;
};

class Tape {
 public:
  // Called by ops whose output requires grad; `fn` reads the output's grad and accumulates into
  // the inputs' grads via Tape::grad.
  void record(std::function<void()> fn) { nodes_.push_back(std::move(fn)); }
  // The gradient buffer of v, zero-filled on first use (compute dtype of v's value). Every
  // backward accumulates (+=) into it: this is the one place gradients are summed.
  Tensor& grad(const Var& v);
  // The same buffer, but a first use leaves it uninitialised and sets *fresh: the caller must
  // then write (not add) every element. For backward products that can store with beta = 0
  // instead of adding into zeros (the zero fill was ~2% of a training step).
  Tensor& grad(const Var& v, bool* fresh);
  // Seeds d(loss)/d(loss) = 1 and runs every recorded backward in reverse order, then clears.
  void backward(const Var& loss);
  // Runs backward from a non-scalar output seeded with dy (same shape): for gradient checks.
  void backward_from(const Var& y, const Tensor& dy);
  void clear() { nodes_.clear(); }
  size_t size() const { return nodes_.size(); }

 private:
  void run_all();
  std::vector<std::function<void()>> nodes_;
};

// True when an op with these inputs must record itself: a tape is active and some input needs grad.
inline bool needs_grad(const Tape* t, std::initializer_list<const Var*> inputs) {
  if (!t) return false;
  for (const Var* v : inputs)
    if (v && v->requires_grad()) return true;
  return false;
}

}  // namespace hone
