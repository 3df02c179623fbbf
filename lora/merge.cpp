#include "lora/merge.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "autograd/kernels/blas.h"
#include "lora/peft.h"
#include "model/io/model_files.h"
#include "model/io/safetensors.h"

namespace hone {

namespace fs = std::filesystem;

namespace {

const std::string kPrefix = "base_model.model.";
const std::string kMagnitude = ".lora_magnitude_vector";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_float(DType d) {
  return d == DType::F32 || d == DType::F64 || d == DType::BF16 || d == DType::F16;
}

// The layer index of "model.layers.<n>.<...>", or -1.
int layer_of(const std::string& module) {
  const std::string p = "model.layers.";
  if (module.rfind(p, 0) != 0) return -1;
  size_t end = module.find('.', p.size());
  if (end == std::string::npos) return -1;
  try {
    return std::stoi(module.substr(p.size(), end - p.size()));
  } catch (...) {
    return -1;
  }
}

// A (rows, cols) matrix of any float dtype as f32: a view when it is f32 already.
Tensor as_f32(const Tensor& t) {
  return t.dtype() == DType::F32 ? t : t.to(DType::F32);
}

}  // namespace

DType parse_output_dtype(const std::string& s, const std::string& what) {
  if (s == "f32") return DType::F32;
  if (s == "bf16") return DType::BF16;
  if (s == "f16") return DType::F16;
  throw Error(what + ": expected f32, bf16 or f16 (got \"" + s + "\")");
}

namespace {

// The kind's block part: self_attn for q/k/v/o, mlp for gate/up/down.
std::string block_of(const std::string& kind) {
  return kind == "gate_proj" || kind == "up_proj" || kind == "down_proj" ? "mlp" : "self_attn";
}

MergeAdapter read_adapter(const std::string& dir, double weight, const ModelConfig* base) {
  MergeAdapter ad;
  ad.dir = dir;
  ad.weight = weight;
  ad.config = read_peft_config(dir);
  ad.file = (fs::path(dir) / "adapter_model.safetensors").string();
  std::error_code ec;
  if (!fs::exists(ad.file, ec))
    throw Error(ad.file + ": no such file (is " + dir + " a PEFT adapter folder?)");
  SafetensorsFile f = read_safetensors(ad.file);

  const std::map<std::string, Shape> shapes =
      base ? expected_tensor_shapes(*base) : std::map<std::string, Shape>{};
  const auto& kinds = lora_target_kinds();
  const LoraConfig& c = ad.config;
  const bool all = c.targets.size() == 1 && c.targets[0] == "all-linear";
  for (const auto& [name, t] : f.tensors) {
    char which = 0;
    if (ends_with(name, ".lora_A.weight")) which = 'A';
    if (ends_with(name, ".lora_B.weight")) which = 'B';
    if (ends_with(name, kMagnitude)) which = 'm';
    if (name.rfind(kPrefix, 0) != 0 || !which)
      throw Error(ad.file + ": tensor " + name +
                  " is not a LoRA factor (expected base_model.model.<module>.lora_A.weight, "
                  ".lora_B.weight or, for DoRA, .lora_magnitude_vector)");
    if (which == 'm' && !c.dora)
      throw Error(ad.file + ": tensor " + name + " is a DoRA magnitude, but " +
                  (fs::path(dir) / "adapter_config.json").string() + " does not set use_dora");
    const size_t suffix = which == 'm' ? kMagnitude.size() : std::string(".lora_A.weight").size();
    const std::string module = name.substr(kPrefix.size(), name.size() - kPrefix.size() - suffix);
    const std::string kind = module.substr(module.rfind('.') + 1);
    const bool known_kind = std::find(kinds.begin(), kinds.end(), kind) != kinds.end();
    const int layer = layer_of(module);
    auto base_it = shapes.find(module + ".weight");
    if (base && (base_it == shapes.end() || !known_kind))
      throw Error(ad.file + ": tensor " + name + ": module " + module +
                  " does not exist in the base model (" + std::to_string(base->num_layers) +
                  " layers; adaptable projections: q_proj, k_proj, v_proj, o_proj, gate_proj, "
                  "up_proj, down_proj)");
    // Without a base, the name must still be a Llama block projection.
    if (!base &&
        (!known_kind || layer < 0 ||
         module != "model.layers." + std::to_string(layer) + "." + block_of(kind) + "." + kind))
      throw Error(ad.file + ": tensor " + name + ": module " + module +
                  " is not a projection of a Llama-family block (expected model.layers.<n>."
                  "self_attn.{q,k,v,o}_proj or model.layers.<n>.mlp.{gate,up,down}_proj)");
    const bool targeted =
        (all || std::find(c.targets.begin(), c.targets.end(), kind) != c.targets.end()) &&
        (c.layers.empty() || std::find(c.layers.begin(), c.layers.end(), layer) != c.layers.end());
    if (!targeted)
      throw Error(ad.file + ": tensor " + name + ": module " + module +
                  " is not among the adapter's target_modules/layers_to_transform in " +
                  (fs::path(dir) / "adapter_config.json").string());
    if (!is_float(t.dtype()))
      throw Error(ad.file + ": tensor " + name + ": dtype " + dtype_name(t.dtype()) +
                  ", expected a float type");
    if (which == 'm') {
      const bool fits = t.ndim() == 1 && t.numel() > 0 && (!base || t.dim(0) == base_it->second[0]);
      if (!fits)
        throw Error(ad.file + ": tensor " + name + " has shape " + shape_str(t.shape()) +
                    ", expected (out)" +
                    (base ? " = (" + std::to_string(base_it->second[0]) + ")" : std::string()));
      ad.modules[module].m = t;
      continue;
    }
    if (base) {
      const int64_t out = base_it->second[0], in = base_it->second[1];
      const Shape want = which == 'A' ? Shape{c.rank, in} : Shape{out, c.rank};
      if (t.shape() != want)
        throw Error(ad.file + ": tensor " + name + " has shape " + shape_str(t.shape()) +
                    ", but module " + module + " of the base is " + shape_str(base_it->second) +
                    " (out, in) and the adapter's rank is " + std::to_string(c.rank) +
                    ", so lora_" + which + " must be " + shape_str(want));
    } else if (t.ndim() != 2 || t.dim(which == 'A' ? 0 : 1) != c.rank || t.numel() == 0) {
      throw Error(ad.file + ": tensor " + name + " has shape " + shape_str(t.shape()) +
                  ", but the adapter's rank is " + std::to_string(c.rank) + ", so lora_" + which +
                  " must be " +
                  (which == 'A' ? "(r, in) = (" + std::to_string(c.rank) + ", in)"
                                : "(out, r) = (out, " + std::to_string(c.rank) + ")"));
    }
    LoraFactors& fac = ad.modules[module];
    (which == 'A' ? fac.a : fac.b) = t;
  }
  for (const auto& [module, fac] : ad.modules) {
    if (!fac.a.defined() && !fac.b.defined())
      throw Error(ad.file + ": module " + module + " has a lora_magnitude_vector but no lora_A " +
                  "or lora_B tensor");
    if (!fac.a.defined() || !fac.b.defined())
      throw Error(ad.file + ": module " + module + " has lora_" + (fac.a.defined() ? "A" : "B") +
                  " but no " + (fac.a.defined() ? "lora_B" : "lora_A") + " tensor");
    if (c.dora && !fac.m.defined())
      throw Error(ad.file + ": module " + module + " has no " + kPrefix + module + kMagnitude +
                  " tensor, which a DoRA adapter (use_dora) needs");
    if (fac.m.defined() && fac.m.dim(0) != fac.b.dim(0))
      throw Error(ad.file + ": module " + module + ": lora_magnitude_vector " +
                  shape_str(fac.m.shape()) + " does not match lora_B " + shape_str(fac.b.shape()) +
                  " (one magnitude per output row)");
  }
  if (ad.modules.empty()) throw Error(ad.file + ": no LoRA tensors in this file");
  return ad;
}

}  // namespace

MergeAdapter read_merge_adapter(const std::string& dir, double weight, const ModelConfig& base) {
  return read_adapter(dir, weight, &base);
}

MergeAdapter read_merge_adapter(const std::string& dir, double weight) {
  return read_adapter(dir, weight, nullptr);
}

Tensor merge_weight(const Tensor& w, const std::vector<MergeTerm>& terms, DType out) {
  if (out != DType::F32 && out != DType::BF16 && out != DType::F16)
    throw Error(std::string("merge: unsupported output dtype ") + dtype_name(out));
  if (!is_float(w.dtype()))
    throw Error(std::string("merge: weight dtype ") + dtype_name(w.dtype()) + " is not a float");
  if (terms.empty()) return w.dtype() == out ? w : w.to(out);
  if (w.ndim() != 2) throw Error("merge: weight of shape " + shape_str(w.shape()) + " is not 2-D");
  const int64_t rows = w.dim(0), cols = w.dim(1);
  // One f32 accumulator (rows, cols): W, then each coef·B·A added by gemm (beta = 1).
  Tensor acc = w.to(DType::F32);
  for (const MergeTerm& t : terms) {
    if (t.a.ndim() != 2 || t.b.ndim() != 2 || t.a.dim(1) != cols || t.b.dim(0) != rows ||
        t.b.dim(1) != t.a.dim(0))
      throw Error("merge: factors B " + shape_str(t.b.shape()) + " and A " +
                  shape_str(t.a.shape()) + " do not fit weight " + shape_str(w.shape()));
    Tensor a = as_f32(t.a), b = as_f32(t.b);
    const int64_t r = a.dim(0);
    kernels::gemm<float>(false, false, rows, cols, r, static_cast<float>(t.coef), b.data<float>(),
                         r, a.data<float>(), cols, 1.0f, acc.data<float>(), cols);
    if (t.m.defined()) {
      if (t.m.numel() != rows)
        throw Error("merge: DoRA magnitude " + shape_str(t.m.shape()) + " does not fit weight " +
                    shape_str(w.shape()));
      float* A = acc.data<float>();
      for (int64_t o = 0; o < rows; ++o) {  // row o ← m_o / ‖row o‖ · row o
        double sq = 0;
        for (int64_t i = 0; i < cols; ++i)
          sq += static_cast<double>(A[o * cols + i]) * A[o * cols + i];
        const double f = t.m.item(o) / std::sqrt(sq);
        for (int64_t i = 0; i < cols; ++i)
          A[o * cols + i] = static_cast<float>(A[o * cols + i] * f);
      }
    }
  }
  return out == DType::F32 ? acc : acc.to(out);
}

std::vector<MergeTerm> merge_terms_for(const std::string& name,
                                       const std::vector<MergeAdapter>& adapters, double sign) {
  std::vector<MergeTerm> terms;
  if (!ends_with(name, ".weight")) return terms;
  const std::string module = name.substr(0, name.size() - std::string(".weight").size());
  for (const MergeAdapter& ad : adapters) {
    auto it = ad.modules.find(module);
    if (it == ad.modules.end()) continue;
    if (it->second.m.defined() && sign < 0)
      throw Error(
          ad.file + ": cannot unmerge a DoRA adapter: the merged weight keeps only the " +
          "direction of W + s·B·A, not its norm, so W cannot be recovered (merge into the " +
          "original base instead)");
    terms.push_back({sign * ad.coefficient(), it->second.a, it->second.b, it->second.m});
  }
  return terms;
}

}  // namespace hone
