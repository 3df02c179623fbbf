// AdamW over a flat parameter arena, with PyTorch's semantics (torch.optim.AdamW): decoupled
// weight decay p ← p·(1 − lr·wd), bias-corrected moments, eps added after the square root.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "autograd/tensor.h"
#include "optim/optimizer.h"

namespace hone {

struct AdamWConfig {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

class AdamW : public Optimizer {
 public:
  // params and grads: F32 arenas of the same shape; the optimizer keeps its own moments.
  AdamW(Tensor params, Tensor grads, const AdamWConfig& cfg);
  // One update with learning rate `lr` (the schedule's value for this step).
  void step(double lr) override;
  const char* name() const override { return "adamw"; }
  int64_t steps_taken() const override { return t_; }
  // "exp_avg", "exp_avg_sq" (F32, arena shape) and "step" (I64, one element).
  std::map<std::string, Tensor> state() const override;
  void load_state(const std::map<std::string, Tensor>& state) override;
  size_t state_bytes() const override { return m_.nbytes() + v_.nbytes(); }
  const Tensor& exp_avg() const { return m_; }
  const Tensor& exp_avg_sq() const { return v_; }

 private:
  Tensor p_, g_, m_, v_;
  AdamWConfig cfg_;
  int64_t t_ = 0;
};

}  // namespace hone
