// Combining LoRA adapters into one, with the semantics of Hugging Face PEFT's
// LoraModel.add_weighted_adapter (src/peft/tuners/lora/model.py and src/peft/utils/merge_utils.py,
// read at commit 5d602fdb). Adapter i brings factors A_i (r_i, in), B_i (out, r_i), its scaling
// s_i (alpha/r or alpha/√r) and the user's weight w_i. The result has alpha = r, so scaling 1.
//
//   cat          A = [w_1·s_1·A_1; w_2·s_2·A_2; …] (rows stacked), B = [B_1, B_2, …] (columns),
//                rank Σ r_i: B·A = Σ w_i·s_i·B_i·A_i exactly. Ranks may differ.
//   linear       c_i = w_i·s_i; A = Σ sign(c_i)·√|c_i|·A_i, B = Σ √|c_i|·B_i (equal ranks). PEFT
//                combines the factors, not the products, so B·A has cross terms B_i·A_j; it equals
//                Σ c_i·B_i·A_i only for one adapter.
//   ties, dare_linear, dare_ties, magnitude_prune
//                as linear, the A's and B's each combined as "task tensors" (below) with the
//                weights √|c_i|·sign(c_i) (A) and √|c_i| (B). Equal ranks.
//   svd, ties_svd, dare_linear_svd, dare_ties_svd, magnitude_prune_svd
//                the task tensors are the deltas τ_i = s_i·B_i·A_i (out, in), combined with weights
//                w_i; the result Δ is cut to rank R (--svd-rank, default max r_i) by SVD:
//                Δ ≈ U_R·S_R·V_Rᵀ, B = U_R·S_R, A = V_Rᵀ (rows beyond min(out, in) are zero). Ranks
//                may differ.
//
// Task-tensor combinations of T_1..T_n (same shape) with weights c_i (merge_utils.py):
//   linear           Σ c_i·T_i
//   magnitude_prune  Σ c_i·M(T_i), M keeps the k = ⌊density·numel⌋ entries of largest |value|
//                    (ties between equal magnitudes go to the lower row-major index), zeros others
//   ties             P_i = M(T_i); elected sign e = +1 where Σ_i P_i ≥ 0 ("total", PEFT's default;
//                    "frequency": Σ_i sign(P_i) ≥ 0), else −1; result Σ_i c_i·P_i·[sign(P_i) = e] /
//                    max(1, #{i : sign(P_i) = e}) per entry (zeros never count)
//   dare_linear      Σ c_i·D(T_i), D keeps each entry with probability density and divides the
//                    kept ones by density
//   dare_ties        ties with P_i = D(T_i)
// density = 1 prunes nothing (no draws, no rescale), as PEFT's prune() returns the tensor as is.
//
// DARE's mask: for task tensor T_i of module M (tag "lora_A", "lora_B", or "delta" for the svd
// variants) an Rng (autograd/rng.h) is seeded with seed ^ fnv1a64("M/tag/i") (i = the adapter's
// 0-based position in the list, FNV-1a 64-bit over the bytes) and draws one uniform() per entry in
// row-major order; the entry is kept iff the draw < density. So a mask depends on the seed, the
// module, the tensor and the adapter's position only, not on which other modules exist or on the
// order they are processed in (merge streams the base's order, combine the module names').
//
// Where hone differs from PEFT (each a choice PEFT leaves ambiguous or gets visibly wrong):
//   - svd variants: PEFT's code weights get_delta_weight(i) (which includes s_i) by w_i·s_i, so
//     its Δ is Σ w_i·s_i²·B_i·A_i; hone uses Σ w_i·s_i·B_i·A_i, the definition PEFT's docs give
//     and what cat gives. The two agree when every s_i = 1 (alpha = r).
//   - the combined config has use_rslora false (PEFT copies the first adapter's flag, which
//     scales the result by √r; fixed upstream in PEFT PR 3449).
//   - target_modules is the union (as PEFT), layers_to_transform the union too (PEFT keeps the
//     first adapter's); a module the combined config adapts but no input adapter had gets zero
//     factors (PEFT raises "No matching LoRAs found").
//   - svd_clamp is not offered; an svd rank above min(out, in) pads with zeros.
// As in PEFT, a single adapter is always combined with linear (B·A = w·s·B_1·A_1 exactly).
// Arithmetic is in f64; results are rounded once to f32.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "lora/merge.h"

namespace hone {

enum class CombineMethod {
  kCat,
  kLinear,
  kTies,
  kDareLinear,
  kDareTies,
  kMagnitudePrune,
  kSvd,
  kTiesSvd,
  kDareLinearSvd,
  kDareTiesSvd,
  kMagnitudePruneSvd,
};

enum class MajoritySign { kTotal, kFrequency };

struct CombineOptions {
  CombineMethod method = CombineMethod::kCat;
  std::optional<double> density;  // required by ties/dare/magnitude_prune (and their svd forms)
  MajoritySign majority = MajoritySign::kTotal;
  uint64_t seed = 0;     // DARE's masks
  int64_t svd_rank = 0;  // svd variants: 0 = the largest input rank
};

// "cat", "linear", "ties", ... -> method; Error naming `what` and listing the choices otherwise.
CombineMethod parse_combine_method(const std::string& s, const std::string& what = "--method");
std::string combine_method_name(CombineMethod m);
// "total" | "frequency".
MajoritySign parse_majority_sign(const std::string& s, const std::string& what = "--majority-sign");
// A density in (0, 1], from text; Error naming `what` otherwise.
double parse_density(const std::string& s, const std::string& what = "--density");

bool method_uses_density(CombineMethod m);
bool method_is_svd(CombineMethod m);

// Checks the options against the adapters (density given exactly when the method uses it and in
// (0, 1]; equal ranks for the factor methods; svd_rank >= 0; a module's factors of the same
// (out, in) in every adapter) and returns the combined rank. Errors name the flag or the adapter
// folders and the problem.
int64_t combined_rank(const std::vector<MergeAdapter>& adapters, const CombineOptions& options);

// The combined factors of one module, A (rank, in) and B (out, rank) in f32, from the adapters
// that adapt it (others are skipped, as PEFT does); `rank` from combined_rank. Throws if none does.
LoraFactors combine_module(const std::string& module, const std::vector<MergeAdapter>& adapters,
                           const CombineOptions& options, int64_t rank);

// The merge terms of HF tensor `name` ("<module>.weight") under a combination, each multiplied by
// `sign` (+1 merge, -1 unmerge): none when no adapter adapts the module; for cat (and for a single
// adapter) the adapters' own terms, Σ w_i·s_i·B_i·A_i, as a plain merge; else the one term B·A of
// combine_module.
std::vector<MergeTerm> combined_terms_for(const std::string& name,
                                          const std::vector<MergeAdapter>& adapters,
                                          const CombineOptions& options, int64_t rank,
                                          double sign = 1.0);

// A whole combined adapter: its config (rank = alpha = combined rank, no rsLoRA, targets and
// layers the unions of the inputs') and factors for every module that config adapts in a model
// with `num_layers` layers (zeros where no input had the module).
struct CombinedAdapter {
  LoraConfig config;
  std::map<std::string, LoraFactors> modules;  // HF module name -> factors
};
CombinedAdapter combine_adapters(const std::vector<MergeAdapter>& adapters,
                                 const CombineOptions& options, int64_t num_layers);

// The seed of DARE's mask stream for one task tensor (see above).
uint64_t dare_stream_seed(uint64_t seed, const std::string& module, const std::string& tag,
                          int adapter_index);

}  // namespace hone
