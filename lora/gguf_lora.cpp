#include "lora/gguf_lora.h"

#include <cmath>

#include "model/io/gguf_model.h"

namespace hone {

double gguf_lora_alpha(const LoraConfig& cfg) {
  return cfg.rslora ? cfg.alpha * std::sqrt(static_cast<double>(cfg.rank)) : cfg.alpha;
}

void write_gguf_lora(const std::string& path, const LoraAdapters& adapters,
                     const ModelConfig& config, GgmlType type, double weight) {
  if (type != GgmlType::F32 && type != GgmlType::F16 && type != GgmlType::BF16)
    throw Error(path + ": a GGUF LoRA adapter is written as f32, f16 or bf16");
  if (!std::isfinite(weight)) throw Error(path + ": adapter weight must be finite");
  if (adapters.config().dora)
    throw Error(
        path + ": a GGUF LoRA adapter cannot express DoRA (llama.cpp adds s·B·A to W, " +
        "while DoRA also rescales every row to its magnitude m / ‖W + s·B·A‖); export a " +
        "merged model instead: hone export --format gguf (or hf) --model BASE --adapter DIR");
  const std::string arch = gguf_architecture(config);
  GgufMetadata md;
  md.emplace_back("general.architecture", GgufValue::str(arch));
  md.emplace_back("general.type", GgufValue::str("adapter"));
  md.emplace_back("adapter.type", GgufValue::str("lora"));
  md.emplace_back("adapter.lora.alpha",
                  GgufValue::f32(static_cast<float>(gguf_lora_alpha(adapters.config()))));
  std::vector<GgufTensorOut> out;
  const bool permute = gguf_permutes_qk(arch);
  for (const LoraTensor& lt : adapters.tensors()) {
    const std::string base = gguf_name_from_hf(lt.module + ".weight");
    if (base.empty())
      throw Error(path + ": adapter module " + lt.module + " has no GGUF tensor name");
    Tensor a = lt.a.value().to(DType::F32);  // (r, in)
    Tensor b = lt.b.value().to(DType::F32);  // (out, r)
    if (weight != 1.0) {
      b = b.clone();  // never scale the adapter's own storage
      float* p = b.data<float>();
      for (int64_t i = 0; i < b.numel(); ++i) p[i] = static_cast<float>(p[i] * weight);
    }
    const bool q = lt.module.ends_with(".q_proj"), k = lt.module.ends_with(".k_proj");
    if (permute && (q || k)) b = permute_qk_to_gguf(b, q ? config.num_heads : config.num_kv_heads);
    out.push_back({base + ".lora_a", std::move(a), type});
    out.push_back({base + ".lora_b", std::move(b), type});
  }
  write_gguf(path, md, out);
}

}  // namespace hone
