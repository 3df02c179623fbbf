// SGD with momentum over a flat parameter arena, with PyTorch's semantics (torch.optim.SGD):
// weight decay is coupled (g ← g + wd·p); the momentum buffer starts as g on the first update,
// then b ← momentum·b + (1 − dampening)·g; nesterov uses g + momentum·b; p ← p − lr·update.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "autograd/tensor.h"
#include "optim/optimizer.h"

namespace hone {

class SGD : public Optimizer {
 public:
  // params and grads: F32 arenas of the same shape. Reads weight_decay, momentum, dampening and
  // nesterov from cfg (nesterov needs momentum > 0 and dampening == 0).
  SGD(Tensor params, Tensor grads, const OptimizerConfig& cfg);
  void step(double lr) override;
  const char* name() const override { return "sgd"; }
  int64_t steps_taken() const override { return t_; }
  // "momentum_buffer" (F32, arena shape; only when momentum != 0) and "step" (I64, one element).
  std::map<std::string, Tensor> state() const override;
  void load_state(const std::map<std::string, Tensor>& state) override;
  size_t state_bytes() const override { return b_.defined() ? b_.nbytes() : 0; }
  // Empty when momentum == 0.
  const Tensor& momentum_buffer() const { return b_; }

 private:
  Tensor p_, g_, b_;
  OptimizerConfig cfg_;
  int64_t t_ = 0;
};

}  // namespace hone
