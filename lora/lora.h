// LoRA: y = x·Wᵀ + b + s·B·A·dropout(x), with W frozen, A (r, in), B (out, r) trainable and
// s = alpha/r (alpha/√r with rsLoRA). Injection wraps the model's named projections.
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
  // A and B are views into the adapter arenas (value and grad); `rng` draws dropout masks.
  LoraLinear(std::unique_ptr<Linear> base, Var a, Var b, double scaling, double dropout, Rng* rng);
  Var forward(Tape* t, const Var& x) override;
  Var forward_add(Tape* t, const Var& x, const Var& residual) override;
  const Var& weight() const override { return base_->weight(); }
  const Var& bias() const override { return base_->bias(); }
  const Var& lora_a() const { return a_; }
  const Var& lora_b() const { return b_; }
  double scaling() const { return scaling_; }
  // Sets dropout on or off (eval); the mask generator is shared by the model's adapters.
  void set_training(bool on) { training_ = on; }

 private:
  std::unique_ptr<Linear> base_;
  Var a_, b_;
  double scaling_, dropout_;
  Rng* rng_;
  bool training_ = true;
};

struct LoraTensor {
  std::string module;  // HF module name, e.g. model.layers.0.self_attn.q_proj
  Var a;               // (r, in)
  Var b;               // (out, r)
};

// Every trainable parameter lives in two flat arenas (values and gradients), so the optimizer is
// one loop and the adapter's memory is one number. The arena is layer-major: layer by layer, in
// each layer the targeted kinds in lora_target_kinds() order, each as A (r, in) then B (out, r).
// On a pipeline stage (a model holding layers [first, last)) the adapters are those of the held
// layers and the arena is exactly the slice [arena_offset(), arena_offset() + num_parameters())
// of the whole model's arena, with the same initial values.
class LoraAdapters {
 public:
  // A stage may hold no adapted layer (its arena is then empty); the whole model must have one.
  LoraAdapters(Transformer& model, const LoraConfig& cfg);
  // The whole model's adapters without a model: the full arena and tensors (names, shapes,
  // initial values as the whole model's adapters have them), wrapping no projection. For the
  // process that gathers a pipeline's stage arenas into one adapter (checkpoint, PEFT file).
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
  // PEFT tensor names: base_model.model.<module>.lora_A.weight / lora_B.weight.
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
