// `hone merge`, `hone unmerge` and `hone export`: LoRA adapters folded into a base model and
// written as a Hugging Face folder, streaming tensor by tensor from the memory-mapped base.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hone {

// How several adapters are combined (lora/combine.h), as given on the command line; checked
// (each error naming its flag) before anything is read or written.
struct CombineArgs {
  std::string method;   // cat | linear | svd | ties | dare_linear | ... ("" = the default)
  std::string density;  // "" = not given
  uint64_t seed = 0;    // DARE's masks
  std::string majority_sign = "total";  // ties / dare_ties sign election: total | frequency
  int64_t svd_rank = 0;                 // svd methods: 0 = the largest input rank
};

// `hone merge --base MODEL --adapter DIR[:weight] ... --out DIR [--dtype f32|bf16|f16]
//  [--max-shard-size S] [--force] [--method M --density D --seed S ...]`:
// W' = W + Δ, where Δ is the combination of the adapters by --method (lora/combine.h); the
// default, cat, is the weighted sum Δ = Σ w_i·s_i·B_i·A_i (w_i defaults to 1).
// `hone unmerge` takes the same options and subtracts instead (W' = W − Δ).
struct MergeOptions {
  std::string base;                   // HF folder / .safetensors / llama2.c .bin
  std::vector<std::string> adapters;  // PEFT folders, each "DIR" or "DIR:weight"
  std::string out;                    // output folder (must not exist or be empty, unless force)
  std::string dtype;                  // f32 | bf16 | f16; "" = the base embedding's dtype
  std::string max_shard_size;         // "2GB", "500MB", a byte count; "" = one file
  bool force = false;                 // replace a non-empty `out` (once the new one is complete)
  CombineArgs combine;                // method "" = cat
};

// `hone combine --adapter DIR[:weight] ... --method M --out DIR [--base MODEL] [--density D]
//  [--seed S] [--majority-sign total|frequency] [--svd-rank R] [--force]`: one PEFT adapter
// folder (adapter_config.json + adapter_model.safetensors) holding the combination, rank and
// alpha equal (scaling 1). With --base the adapters are checked against that model.
struct CombineCmdOptions {
  std::vector<std::string> adapters;
  std::string out;
  std::string base;  // optional
  bool force = false;
  CombineArgs combine;  // method required
};

// `hone export --model MODEL [--adapter DIR] --out PATH [--format hf|gguf|gguf-lora]
//  [--dtype ...] [--max-shard-size S] [--tokenizer TOK] [--force]`.
//  hf:        a Hugging Face folder (the adapter merged in), streaming.
//  gguf:      one GGUF file for llama.cpp/ollama (adapter merged in), dtype f32|f16|bf16|q8_0,
//             with the model's tokenizer as tokenizer.ggml.* metadata.
//  gguf-lora: the adapter alone as a GGUF LoRA file (llama-cli --lora).
struct ExportOptions {
  std::string model;
  std::string adapter;  // "" = export the base as is
  std::string out;      // a folder for hf, a file for gguf / gguf-lora
  std::string format = "hf";
  std::string dtype;
  std::string max_shard_size;
  std::string tokenizer;  // "" = the model's own
  bool force = false;
};

// What was written (for the CLI's summary line and tests).
struct MergeSummary {
  std::string out;
  std::vector<std::string> files;  // file names inside `out`
  int64_t tensors = 0;
  int64_t merged_tensors = 0;  // tensors an adapter changed
  uint64_t data_bytes = 0;     // tensor data written (the index's total_size)
};

// A "DIR" or "DIR:weight" argument: the weight is the text after the last ':' when it parses as
// a number in full, else the whole text is the folder and the weight is 1.
struct AdapterArg {
  std::string dir;
  double weight = 1.0;
};
AdapterArg parse_adapter_arg(const std::string& arg);

// Every input is read and checked (base, adapters fit the base, dtype, shard size, output folder)
// before anything is written; a failure leaves no output folder behind.
MergeSummary run_merge(const MergeOptions& options);
MergeSummary run_unmerge(const MergeOptions& options);
MergeSummary run_export(const ExportOptions& options);
// Writes the combined adapter; `tensors` counts its tensors, `merged_tensors` the modules some
// input adapter adapts.
MergeSummary run_combine(const CombineCmdOptions& options);
// The gguf and gguf-lora formats of run_export (recipes/gguf_export.cpp).
MergeSummary export_gguf(const ExportOptions& options);

}  // namespace hone
