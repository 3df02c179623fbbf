#include "recipes/merge_export.h"

#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include "lora/combine.h"
#include "lora/merge.h"
#include "lora/peft.h"
#include "model/io/atomic_file.h"
#include "model/io/hf_export.h"
#include "model/io/model_files.h"
#include "recipes/model_tokenizer.h"

namespace hone {

namespace fs = std::filesystem;

namespace {

// Where the base's tokenizer files would be: its folder (or the folder of its .safetensors).
std::string tokenizer_dir_of(const ModelFiles& files) {
  if (files.format != "safetensors") return "";
  std::error_code ec;
  const fs::path p(files.source);
  return fs::is_directory(p, ec) ? p.string() : p.parent_path().string();
}

// A llama2.c or GGUF base has no HF tokenizer files: the ones that give its tokenizer's ids are
// generated into a private temporary folder (removed with this object) and copied from there.
struct GeneratedTokenizer {
  std::string dir;
  explicit GeneratedTokenizer(const std::string& base) {
    std::string tmp = (fs::temp_directory_path() / "hone-merge-tok-XXXXXX").string();
    if (!mkdtemp(tmp.data())) throw Error(base + ": cannot create a temporary folder");
    try {
      if (write_hf_tokenizer_for_model(base, tmp)) dir = tmp;
    } catch (...) {
      std::error_code ec;
      fs::remove_all(tmp, ec);
      throw;
    }
    if (dir.empty()) fs::remove_all(tmp);
  }
  ~GeneratedTokenizer() {
    std::error_code ec;
    if (!dir.empty()) fs::remove_all(dir, ec);
  }
  GeneratedTokenizer(const GeneratedTokenizer&) = delete;
  GeneratedTokenizer& operator=(const GeneratedTokenizer&) = delete;
};

// The default output dtype: what the base stores its embedding in (f64 bases export as f32).
DType default_dtype(const ModelFiles& files) {
  const DType d = files.tensors.at("model.embed_tokens.weight").dtype();
  return d == DType::BF16 || d == DType::F16 ? d : DType::F32;
}

// The flags as CombineOptions; `fallback` is the method when --method is not given ("" = it is
// required).
CombineOptions combine_options(const CombineArgs& a, const std::string& fallback) {
  CombineOptions o;
  const std::string method = a.method.empty() ? fallback : a.method;
  if (method.empty())
    throw Error(
        "--method: required (cat, linear, svd, ties, ties_svd, dare_linear, dare_linear_svd, "
        "dare_ties, dare_ties_svd, magnitude_prune or magnitude_prune_svd)");
  o.method = parse_combine_method(method);
  if (!a.density.empty()) o.density = parse_density(a.density);
  o.majority = parse_majority_sign(a.majority_sign);
  o.seed = a.seed;
  o.svd_rank = a.svd_rank;
  if (a.svd_rank < 0)
    throw Error("--svd-rank: must be > 0 (got " + std::to_string(a.svd_rank) + ")");
  return o;
}

MergeSummary merge_and_write(const std::string& base, const std::vector<AdapterArg>& adapter_args,
                             double sign, const std::string& out, const std::string& dtype,
                             const std::string& max_shard_size, bool force,
                             const CombineOptions& combine = {}) {
  if (base.empty()) throw Error("--base: a model is required");
  if (out.empty()) throw Error("--out: an output folder is required");
  const uint64_t shard = max_shard_size.empty() ? 0 : parse_byte_size(max_shard_size);
  std::optional<DType> want;
  if (!dtype.empty()) want = parse_output_dtype(dtype);
  std::error_code ec;
  // Only a real folder is ever replaced (a symlink, device or file at --out is refused), and
  // that is checked before the base is read.
  const fs::file_status st = fs::symlink_status(out, ec);
  if (fs::exists(st) && !fs::is_directory(st))
    throw Error(out + ": exists and is not a folder (" +
                (fs::is_symlink(st) ? "a symbolic link" : "a file or device") +
                "); refusing to replace it");
  if (fs::exists(out, ec) && !force && fs::is_directory(out, ec) && !fs::is_empty(out, ec))
    throw Error(out + ": folder exists and is not empty (choose another --out, or pass --force " +
                "to replace it)");

  // Everything is read and checked before the first byte is written.
  ModelFiles files = load_model_files(base);
  const DType out_dtype = want ? *want : default_dtype(files);
  std::vector<MergeAdapter> adapters;
  for (const AdapterArg& a : adapter_args) {
    adapters.push_back(read_merge_adapter(a.dir, a.weight, files.config));
    if (sign < 0 && adapters.back().config.dora)
      throw Error(a.dir +
                  ": cannot unmerge a DoRA adapter: the merged weight keeps only the "
                  "direction of W + s·B·A, not its norm, so W cannot be recovered (merge into the "
                  "original base instead)");
  }
  const int64_t rank = adapters.empty() ? 0 : combined_rank(adapters, combine);

  const std::vector<ExportTensor> plan = hf_export_plan(files.config, out_dtype);
  HfExportOptions opt;
  opt.max_shard_size = shard;
  opt.tokenizer_dir = tokenizer_dir_of(files);
  std::optional<GeneratedTokenizer> generated;
  if (files.format != "safetensors") {
    generated.emplace(base);
    opt.tokenizer_dir = generated->dir;
  }
  opt.force = force;
  // llama2.c bases are read into memory; safetensors bases are mapped, and each tensor's pages
  // are dropped once written so RSS stays near one tensor (plus the output buffer).
  const bool mapped = files.format == "safetensors";

  MergeSummary summary;
  auto produce = [&](const ExportTensor& e) {
    const Tensor& w = files.tensors.at(e.name);
    std::vector<MergeTerm> terms = combined_terms_for(e.name, adapters, combine, rank, sign);
    if (!terms.empty()) ++summary.merged_tensors;
    return merge_weight(w, terms, e.dtype);
  };
  auto done = [&](const ExportTensor& e) {
    ++summary.tensors;
    summary.data_bytes += e.nbytes();
    if (mapped) release_mapped_pages(files.tensors.at(e.name));
  };
  export_hf(out, files.config, out_dtype, plan, produce, opt, done);

  summary.out = out;
  for (const auto& entry : fs::directory_iterator(out))
    summary.files.push_back(entry.path().filename().string());
  std::sort(summary.files.begin(), summary.files.end());
  return summary;
}

std::vector<AdapterArg> parse_all(const std::vector<std::string>& args) {
  std::vector<AdapterArg> out;
  for (const std::string& a : args) out.push_back(parse_adapter_arg(a));
  return out;
}

}  // namespace

AdapterArg parse_adapter_arg(const std::string& arg) {
  AdapterArg a;
  a.dir = arg;
  const size_t colon = arg.rfind(':');
  if (colon != std::string::npos && colon + 1 < arg.size()) {
    const std::string num = arg.substr(colon + 1);
    char* end = nullptr;
    const double w = std::strtod(num.c_str(), &end);
    if (end && *end == '\0') {
      if (!std::isfinite(w)) throw Error("--adapter " + arg + ": weight must be finite");
      a.dir = arg.substr(0, colon);
      a.weight = w;
    }
  }
  if (a.dir.empty()) throw Error("--adapter: empty adapter folder in \"" + arg + "\"");
  return a;
}

MergeSummary run_merge(const MergeOptions& o) {
  if (o.adapters.empty()) throw Error("--adapter: at least one adapter folder is required");
  const CombineOptions combine = combine_options(o.combine, "cat");
  return merge_and_write(o.base, parse_all(o.adapters), 1.0, o.out, o.dtype, o.max_shard_size,
                         o.force, combine);
}

MergeSummary run_unmerge(const MergeOptions& o) {
  if (o.adapters.empty()) throw Error("--adapter: at least one adapter folder is required");
  const CombineOptions combine = combine_options(o.combine, "cat");
  return merge_and_write(o.base, parse_all(o.adapters), -1.0, o.out, o.dtype, o.max_shard_size,
                         o.force, combine);
}

MergeSummary run_combine(const CombineCmdOptions& o) {
  if (o.adapters.empty()) throw Error("--adapter: at least one adapter folder is required");
  if (o.out.empty()) throw Error("--out: an output folder is required");
  const CombineOptions combine = combine_options(o.combine, "");
  const std::vector<AdapterArg> args = parse_all(o.adapters);
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(o.out, ec);
  if (fs::exists(st) && !fs::is_directory(st))
    throw Error(o.out + ": exists and is not a folder (" +
                (fs::is_symlink(st) ? "a symbolic link" : "a file or device") +
                "); refusing to replace it");
  if (fs::exists(o.out, ec) && !o.force && !fs::is_empty(o.out, ec))
    throw Error(o.out + ": folder exists and is not empty (choose another --out, or pass " +
                "--force to replace it)");

  // Everything is read, checked and computed before the first byte is written.
  std::optional<ModelFiles> files;
  if (!o.base.empty()) files = load_model_files(o.base);
  std::vector<MergeAdapter> adapters;
  for (const AdapterArg& a : args)
    adapters.push_back(files ? read_merge_adapter(a.dir, a.weight, files->config)
                             : read_merge_adapter(a.dir, a.weight));
  const CombinedAdapter combined =
      combine_adapters(adapters, combine, files ? files->config.num_layers : 0);
  std::map<std::string, Tensor> tensors;
  MergeSummary summary;
  for (const auto& [module, f] : combined.modules) {
    tensors[LoraAdapters::peft_name(module, 'A')] = f.a;
    tensors[LoraAdapters::peft_name(module, 'B')] = f.b;
    bool any = false;
    for (const MergeAdapter& ad : adapters) any = any || ad.modules.count(module);
    if (any) ++summary.merged_tensors;
  }
  const std::string base_name = o.base.empty() ? read_peft_base_model(adapters[0].dir) : o.base;
  write_folder_atomically(o.out, o.force, [&](const std::string& tmp) {
    save_peft_files(tmp, combined.config, tensors, base_name);
  });
  summary.out = o.out;
  summary.tensors = static_cast<int64_t>(tensors.size());
  for (const auto& entry : fs::directory_iterator(o.out))
    summary.files.push_back(entry.path().filename().string());
  std::sort(summary.files.begin(), summary.files.end());
  return summary;
}

MergeSummary run_export(const ExportOptions& o) {
  if (o.format == "gguf" || o.format == "gguf-lora") return export_gguf(o);
  if (o.format != "hf")
    throw Error("--format: expected hf, gguf or gguf-lora (got \"" + o.format + "\")");
  if (o.model.empty()) throw Error("--model: a model is required");
  std::vector<AdapterArg> adapters;
  if (!o.adapter.empty()) adapters.push_back(parse_adapter_arg(o.adapter));
  return merge_and_write(o.model, adapters, 1.0, o.out, o.dtype, o.max_shard_size, o.force);
}

}  // namespace hone
