// A projection y = x·Wᵀ + b that adapters can wrap. The model holds its projections through this
// interface so lora/ can replace them without model/ knowing about LoRA.
#pragma once

#include <memory>

#include "autograd/ops.h"

namespace hone {

class Linear {
 public:
  virtual ~Linear() = default;
  // x (N, in) -> (N, out)
  virtual Var forward(Tape* t, const Var& x) = 0;
  // residual + forward(x), residual (N, out): the blocks' o_proj and down_proj. An adapter
  // overrides it to add the product into the residual's copy directly.
  virtual Var forward_add(Tape* t, const Var& x, const Var& residual) {
    return add(t, residual, forward(t, x));
  }
  // The frozen base weight (out, in) and bias (out) or an undefined Var.
  virtual const Var& weight() const = 0;
  virtual const Var& bias() const = 0;
  int64_t in_features() const { return weight().value().dim(1); }
  int64_t out_features() const { return weight().value().dim(0); }
};

// The base model's projection: frozen weight (F32/BF16/F16 storage) and optional bias.
class FrozenLinear : public Linear {
 public:
  FrozenLinear(Var w, Var b) : w_(std::move(w)), b_(std::move(b)) {}
  Var forward(Tape* t, const Var& x) override { return linear(t, x, w_, b_); }
  const Var& weight() const override { return w_; }
  const Var& bias() const override { return b_; }

 private:
  Var w_, b_;
};

}  // namespace hone
