// Merging LoRA adapters into base weights: W' = W + Σ_i w_i·s_i·B_i·A_i, computed in f32 and
// rounded once to the output dtype; unmerge is the same with the weights negated. Adapters come
// from PEFT folders and are checked against the base before anything is written.
// A DoRA adapter (use_dora) merges as PEFT's DoraLinearVariant.merge_safe does: with c = w·s,
// W' = m / ‖W + c·B·A‖ ⊙ (W + c·B·A) row by row (a weight w scales c, as PEFT's scale_layer
// scales `scaling`, leaving m). Adapters merge one after the other, each DoRA term normalising
// the rows it is added to. Unmerging DoRA is refused: W' keeps only the direction of W + c·B·A,
// not its norm, so W cannot be recovered (PEFT unmerges only with the norm cached at merge).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "autograd/tensor.h"
#include "lora/lora.h"
#include "model/config.h"

namespace hone {

// One adapter's low-rank factors for one module.
struct LoraFactors {
  Tensor a;             // (r, in)
  Tensor b;             // (out, r)
  Tensor m = Tensor();  // (out) DoRA's magnitude, or undefined
};

// A PEFT adapter read for merging: its config, the user's weight w and its tensors per module
// (memory-mapped from adapter_model.safetensors).
struct MergeAdapter {
  std::string dir;
  std::string file;  // <dir>/adapter_model.safetensors
  LoraConfig config;
  double weight = 1.0;
  std::map<std::string, LoraFactors> modules;  // HF module name -> factors

  // The factor the product B·A is multiplied by: weight · scaling (alpha/r or alpha/√r).
  double coefficient() const { return weight * config.scaling(); }
};

// Reads <dir>/adapter_config.json (read_peft_config: refuses unknown modules, ...) and
// <dir>/adapter_model.safetensors, and checks the adapter fits a base of config `base`: every
// tensor is base_model.model.<module>.lora_A|lora_B.weight for a projection the base has and the
// config targets, both factors are present, A is (r, in) and B is (out, r) with the base's in/out;
// with use_dora every module also has .lora_magnitude_vector (out), and without it none does.
// Errors name the adapter file, the tensor or module and both shapes.
MergeAdapter read_merge_adapter(const std::string& dir, double weight, const ModelConfig& base);
// The same without a base (hone combine): tensor names must be Llama block projections the
// config targets, and each factor must have the config's rank; (out, in) are the file's.
MergeAdapter read_merge_adapter(const std::string& dir, double weight);

// One term of a merge: coef · B·A with B (out, r) and A (r, in), any float dtype.
struct MergeTerm {
  double coef = 1.0;
  Tensor a;  // (r, in)
  Tensor b;  // (out, r)
  Tensor m =
      Tensor();  // (out) DoRA: after adding coef·B·A, rows are scaled to norm m; undefined for LoRA
};

// W (out, in) of any float dtype plus Σ coef·B·A, accumulated in f32 (gemm) and rounded once to
// `out` (F32, BF16 or F16), the terms applied in order (a DoRA term rescales each row r of the
// sum so far to m_r / its norm, the norm taken in f64). With no terms it is a plain conversion.
// Shapes must fit.
Tensor merge_weight(const Tensor& w, const std::vector<MergeTerm>& terms, DType out);

// The terms every adapter contributes to HF tensor `name` ("<module>.weight"), each adapter's
// coefficient multiplied by `sign` (+1 merge, -1 unmerge; a DoRA adapter refuses -1). Empty for
// tensors no adapter touches.
std::vector<MergeTerm> merge_terms_for(const std::string& name,
                                       const std::vector<MergeAdapter>& adapters,
                                       double sign = 1.0);

// "f32" | "bf16" | "f16" -> DType; throws Error naming `what` (e.g. "--dtype") otherwise.
DType parse_output_dtype(const std::string& s, const std::string& what = "--dtype");

}  // namespace hone
