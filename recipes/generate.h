// `hone generate`: load a base model (and optionally an adapter), then sample a continuation.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace hone {

struct GenerateOptions {
  std::string model;
  std::string tokenizer;  // required for llama2.c checkpoints
  std::string adapter;    // a PEFT adapter folder to apply, or ""
  std::string prompt;
  int64_t max_new_tokens = 128;
  double temperature = 1.0;
  int top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 0;
  std::string weight_dtype = "f32";    // storage of the frozen base: f32 | bf16 | f16
  std::string compute_dtype = "auto";  // the base products' arithmetic: auto | f32 | bf16
};

struct GenerateResult {
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> new_ids;
  std::string text;  // prompt + continuation, decoded
  // True when generation ended because the model's context was full (not at EOS and before
  // max_new_tokens); `context` is that length in tokens.
  bool stopped_at_context = false;
  int64_t context = 0;
};

// Throws Error naming the option and its value when a sampling option is out of range
// (non-finite or negative temperature, negative top-k, top-p outside (0, 1], negative
// max-new-tokens, unknown dtype). run_generate calls it before reading or printing anything.
void check_generate_options(const GenerateOptions& opt);

// Runs generation; `on_piece` (if set) receives each decoded piece as it is produced, the
// decoded prompt first. Throws Error when the base has a non-finite weight (naming the tensor).
GenerateResult run_generate(const GenerateOptions& opt,
                            const std::function<void(const std::string&)>& on_piece = {});

}  // namespace hone
