// `hone export --format gguf | gguf-lora`: a merged model or an adapter as GGUF for llama.cpp.
#include <filesystem>

#include "data/tokenizer.h"
#include "lora/gguf_lora.h"
#include "lora/merge.h"
#include "lora/peft.h"
#include "model/io/atomic_file.h"
#include "model/io/gguf_model.h"
#include "model/io/model_files.h"
#include "recipes/merge_export.h"
#include "recipes/model_tokenizer.h"

namespace hone {

namespace fs = std::filesystem;

namespace {

GgmlType gguf_type_from(const std::string& s) {
  if (s.empty() || s == "f32") return GgmlType::F32;
  if (s == "f16") return GgmlType::F16;
  if (s == "bf16") return GgmlType::BF16;
  if (s == "q8_0") return GgmlType::Q8_0;
  if (s == "q4_0") return GgmlType::Q4_0;
  throw Error("--dtype: expected f32, f16, bf16, q8_0 or q4_0 for GGUF (got \"" + s + "\")");
}

// llama.cpp refuses a GGUF whose token list is longer than the embedding's rows (ids past the
// embedding could not be looked up); a shorter one is fine (padded to the embedding).
void check_vocab_fits(const GgufTokenizerData& tok, const ModelConfig& config,
                      const ExportOptions& o) {
  const auto n = static_cast<int64_t>(tok.tokens.size());
  if (n <= config.vocab_size) return;
  std::string source = o.tokenizer.empty() ? find_model_tokenizer(o.model) : o.tokenizer;
  if (source.empty()) source = o.model;  // a GGUF base's own tokenizer
  throw Error("--tokenizer " + source + ": " + std::to_string(n) +
              " tokens, more than the embedding's " + std::to_string(config.vocab_size) +
              " rows in --model " + o.model + " (llama.cpp refuses such a GGUF)");
}

}  // namespace

MergeSummary export_gguf(const ExportOptions& o) {
  if (o.model.empty()) throw Error("--model: a model is required");
  if (o.out.empty()) throw Error("--out: an output file is required");
  if (!o.max_shard_size.empty()) throw Error("--max-shard-size: GGUF is written as one file");
  if (fs::is_directory(o.out)) throw Error("--out " + o.out + ": is a folder; GGUF is one file");
  check_replaceable_file(o.out);  // a device node, FIFO or symlink is never replaced
  if (fs::exists(o.out) && !o.force)
    throw Error("--out " + o.out + ": exists (pass --force to replace it)");
  // Everything is read and checked before the file is written.
  ModelFiles files = load_model_files(o.model);
  MergeSummary sum;
  sum.out = o.out;
  sum.files = {fs::path(o.out).filename().string()};
  if (o.format == "gguf-lora") {
    if (o.adapter.empty()) throw Error("--adapter: gguf-lora exports an adapter: give its folder");
    // The low-rank factors are rarely a multiple of ggml's 32-wide quant blocks: no q8_0/q4_0.
    if (!o.dtype.empty() && o.dtype != "f32" && o.dtype != "f16" && o.dtype != "bf16")
      throw Error("--dtype: expected f32, f16 or bf16 for gguf-lora (got \"" + o.dtype + "\")");
    const GgmlType type = gguf_type_from(o.dtype);
    const AdapterArg arg = parse_adapter_arg(o.adapter);
    Transformer model(files.config, files.tensors);
    auto adapters = load_peft_adapter(arg.dir, model);
    write_gguf_lora(o.out, *adapters, files.config, type, arg.weight);
    sum.tensors = 2 * static_cast<int64_t>(adapters->tensors().size());
    return sum;
  }
  const GgmlType type = gguf_type_from(o.dtype);
  const GgufTokenizerData tok = gguf_tokenizer_for_model(o.model, o.tokenizer, files.config);
  check_vocab_fits(tok, files.config, o);
  std::vector<MergeAdapter> adapters;
  if (!o.adapter.empty()) {
    AdapterArg a = parse_adapter_arg(o.adapter);
    adapters.push_back(read_merge_adapter(a.dir, a.weight, files.config));
  }
  std::map<std::string, Tensor> tensors;
  for (auto& [name, t] : files.tensors) {
    std::vector<MergeTerm> terms = merge_terms_for(name, adapters);
    if (!terms.empty()) ++sum.merged_tensors;
    tensors[name] = terms.empty() ? t : merge_weight(t, terms, DType::F32);
  }
  sum.tensors = static_cast<int64_t>(tensors.size());
  write_gguf_model(o.out, files.config, tensors, type, &tok,
                   fs::path(o.model).filename().replace_extension().string());
  return sum;
}

}  // namespace hone
