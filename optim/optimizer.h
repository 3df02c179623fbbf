// The optimizer interface over flat arenas (DESIGN.md principle 4): every trainable parameter lives
// in one F32 params tensor, its gradient at the same offset in one grads tensor, so an optimizer is
// one elementwise loop and its state is a few arena-shaped tensors plus a step count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "autograd/tensor.h"

namespace hone {

// Hyperparameters for every optimizer make_optimizer knows; each reads the fields it uses.
// `lr` is the peak learning rate a schedule scales; step() takes the scheduled value.
struct OptimizerConfig {
  double lr = 1e-3;
  double beta1 = 0.9;         // adamw
  double beta2 = 0.999;       // adamw
  double eps = 1e-8;          // adamw
  double weight_decay = 0.0;  // adamw: decoupled (p *= 1 - lr*wd); sgd: coupled (g += wd*p)
  double momentum = 0.0;      // sgd
  double dampening = 0.0;     // sgd
  bool nesterov = false;      // sgd; needs momentum > 0 and dampening == 0 (as torch.optim.SGD)
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // "adamw", "sgd": the name make_optimizer takes.
  virtual const char* name() const = 0;
  // One update of the params arena from the grads arena, with learning rate `lr` (the schedule's
  // value for this update). The grads arena is read, never written.
  virtual void step(double lr) = 0;
  virtual int64_t steps_taken() const = 0;
  // Snapshot for a checkpoint: arena-shaped F32 moments (copies, not views of live state) and
  // "step", a 1-element I64 tensor.
  virtual std::map<std::string, Tensor> state() const = 0;
  // Restores a state() snapshot into this optimizer (same arena size and kind). Throws Error
  // naming the entry on a missing or unexpected name, a wrong dtype or shape, or a negative step.
  virtual void load_state(const std::map<std::string, Tensor>& state) = 0;
  // Bytes of optimizer state beside the params and grads arenas (for the memory summary).
  virtual size_t state_bytes() const = 0;
};

// name: "adamw" | "sgd". params, grads: F32 arenas of the same shape. Throws Error on an unknown
// name or an out-of-range hyperparameter.
std::unique_ptr<Optimizer> make_optimizer(const std::string& name, Tensor params, Tensor grads,
                                          const OptimizerConfig& cfg);

// Helpers for implementations.
// A 1-element I64 tensor holding `step`.
Tensor step_tensor(int64_t step);
// Checks that `state` holds exactly `moments` (F32, shape `arena`) and "step" (I64, one element,
// >= 0); returns the step. `who` prefixes messages, e.g. "AdamW.load_state".
int64_t check_optimizer_state(const std::string& who, const std::map<std::string, Tensor>& state,
                              const std::vector<std::string>& moments, const Shape& arena);

}  // namespace hone
