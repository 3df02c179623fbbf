// LoRA: y = x·Wᵀ + b + s·B·A·dropout(x), with W frozen, A (r, in), B (out, r) trainable and
// s = alpha/r (alpha/√r with rsLoRA). Injection wraps the model's named projections.
// DoRA (dora = true, PEFT's use_dora) adds a trainable magnitude m (out) per projection: the
// adapted weight is m ⊙ (W + s·B·A) / ‖W + s·B·A‖ row by row (autograd/ops/dora_linear.cpp).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "autograd/rng.h"
#include "model/transformer.h"

namespace hone {

struct LoraConfig {
  int64_t rank = 8;
  double alpha = 16.0;
  double dropout = 0.0;
  bool rslora = false;
  bool dora = false;  // weight-decomposed LoRA: a magnitude vector m per adapted projection
  // Projection kinds (q_proj ... down_proj) or the single entry "all-linear".
  std::vector<std::string> targets = {"q_proj", "v_proj"};
  std::vector<int> layers;  // empty = every layer
  uint64_t seed = 0;        // initialisation of A

  double scaling() const;
  // Throws Error naming the field on a bad value (rank <= 0, unknown target, ...).
  void validate() const;
};

// The seven projection kinds a Llama-family block has.
const std::vector<std::string>& lora_target_kinds();

class LoraLinear : public Linear {
 public:
  // A, B (and DoRA's m, or an undefined Var for plain LoRA) are views into the adapter arenas
  // (value and grad); `rng` draws dropout masks.
  LoraLinear(std::unique_ptr<Linear> base, Var a, Var b, Var m, double scaling, double dropout,
             Rng* rng);
  Var forward(Tape* t, const Var& x) override;
  Var forward_add(Tape* t, const Var& x, const Var& residual) override;
  const Var& weight() const override { return base_->weight(); }
  const Var& bias() const override { return base_->bias(); }
  const Var& lora_a() const { return a_; }
  const Var& lora_b() const { return b_; }
  const Var& magnitude() const { return m_; }  // (out); undefined without DoRA
  double scaling() const { return scaling_; }
  // Sets dropout on or off (eval); the mask generator is shared by the model's adapters.
  void set_training(bool on) { training_ = on; }

 private:
  // DoRA's projection (m defined); residual may be undefined.
  Var dora_forward(Tape* t, const Var& x, const Var& residual);
  std::unique_ptr<Linear> base_;
  Var a_, b_, m_;
  double scaling_, dropout_;
  Rng* rng_;
  bool training_ = true;
};

struct LoraTensor {
  std::string module;  // HF module name, e.g. model.layers.0.self_attn.q_proj
  Var a;               // (r, in)
  Var b;               // (out, r)
  Var m;               // (out) DoRA's magnitude; undefined for plain LoRA
};

// Every trainable parameter lives in two flat arenas (values and gradients), so the optimizer is
// one loop and the adapter's memory is one number. The arena is layer-major: layer by layer, in
// each layer the targeted kinds in lora_target_kinds() order, each as A (r, in) then B (out, r),
// then with DoRA m (out). m starts at the row norms of W (B is zero, so W + s·B·A = W), as PEFT
// initialises lora_magnitude_vector.
// On a pipeline stage (a model holding layers [first, last)) the adapters are those of the held
// layers and the arena is exactly the slice [arena_offset(), arena_offset() + num_parameters())
// of the whole model's arena, with the same initial values.
class LoraAdapters {
 public:
  // A stage may hold no adapted layer (its arena is then empty); the whole model must have one.
  LoraAdapters(Transformer& model, const LoraConfig& cfg);
  // The whole model's adapters without a model: the full arena and tensors (names, shapes,
  // initial values as the whole model's adapters have them, except DoRA's m, which needs the base
  // weights and starts at 0 here), wrapping no projection. For the process that gathers a
  // pipeline's stage arenas into one adapter (checkpoint, PEFT file).
  LoraAdapters(const ModelConfig& model, const LoraConfig& cfg, DType dtype = DType::F32);
  const LoraConfig& config() const { return cfg_; }
  const std::vector<LoraTensor>& tensors() const { return tensors_; }
  Tensor& values() { return values_; }  // (P) flat
  Tensor& grads() { return grads_; }    // (P) flat
  int64_t num_parameters() const { return values_.numel(); }
  // Where this arena starts in the whole model's arena, and that arena's size (both equal to
  // 0 and num_parameters() for the whole model).
  int64_t arena_offset() const { return arena_offset_; }
  int64_t full_num_parameters() const { return full_parameters_; }
  // The whole model's adapted projections (tensors().size() for the whole model).
  int64_t full_num_modules() const { return full_modules_; }
  void zero_grad() { grads_.fill_zero(); }
  void set_training(bool on);
  Rng& dropout_rng() { return dropout_rng_; }
  // PEFT tensor names: base_model.model.<module>.lora_A.weight / lora_B.weight, and for 'm'
  // base_model.model.<module>.lora_magnitude_vector (PEFT saves DoRA's magnitude without a
  // ".weight" suffix: LoraModel._get_adapter_state_dict strips it).
  static std::string peft_name(const std::string& module, char which);

 private:
  // Lays out the arena of `range`'s layers; with a model, wraps its projections.
  void build(const ModelConfig& mc, const LayerRange& range, DType dtype, Transformer* model);
  LoraConfig cfg_;
  Tensor values_, grads_;
  int64_t arena_offset_ = 0, full_parameters_ = 0, full_modules_ = 0;
  std::vector<LoraTensor> tensors_;
  std::vector<LoraLinear*> layers_;
  Rng dropout_rng_;
};

}  // namespace hone
