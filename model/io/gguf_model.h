// GGUF as a model format: the llama.cpp names and metadata of the llama / qwen2 / qwen3
// architectures, read into a ModelFiles (HF names, HF layout) and written from one.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model/io/gguf.h"
#include "model/io/model_files.h"

namespace hone {

// The tokenizer llama.cpp embeds in a model file (tokenizer.ggml.* and tokenizer.chat_template).
struct GgufTokenizerData {
  std::string model;  // tokenizer.ggml.model: "llama" (SentencePiece) | "gpt2" (byte BPE) | ...
  std::string pre;    // tokenizer.ggml.pre (pre-tokenizer name, e.g. "llama-bpe", "qwen2")
  std::vector<std::string> tokens;
  std::vector<float> scores;         // empty when absent
  std::vector<int32_t> token_types;  // 1 normal, 2 unknown, 3 control, 4 user, 5 unused, 6 byte
  std::vector<std::string> merges;   // "a b", empty when absent
  int64_t bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1;
  std::optional<bool> add_bos, add_eos;
  std::string chat_template;  // "" when absent
};

// Reads the tokenizer metadata; errors name the file and key (tokens are required).
GgufTokenizerData gguf_tokenizer(const GgufFile& file);
GgufTokenizerData read_gguf_tokenizer(const std::string& path);
// Appends the tokenizer.* keys llama.cpp reads.
void add_gguf_tokenizer_metadata(GgufMetadata& md, const GgufTokenizerData& tok);

// llama.cpp's architecture name for a config: llama (also for mistral), qwen2, qwen3.
std::string gguf_architecture(const ModelConfig& config);
// llama.cpp's llama arch uses interleaved RoPE pairs, so its q/k rows are permuted from HF's
// rotate-half order; qwen2/qwen3 use NEOX-style RoPE and are stored unpermuted.
bool gguf_permutes_qk(const std::string& arch);

// HF tensor name <-> GGUF tensor name ("" when the name has no counterpart).
std::string gguf_name_from_hf(const std::string& hf_name);
std::string hf_name_from_gguf(const std::string& gguf_name);

// Rows of a (heads*head_dim, cols) q or k weight (or bias, cols = 1) between HF rotate-half order
// and llama.cpp's interleaved order (convert_hf_to_gguf.py's LlamaModel.permute): within a head,
// HF row t*head_dim/2 + i <-> GGUF row 2i + t. Works on any dtype (rows are moved as bytes).
Tensor permute_qk_to_gguf(const Tensor& t, int64_t heads);
Tensor permute_qk_from_gguf(const Tensor& t, int64_t heads);

// The hyper-parameters in the metadata (general.architecture llama / qwen2 / qwen3); vocab size
// and tied embeddings come from the tensors. Errors "<path>: ...".
ModelConfig gguf_model_config(const GgufFile& file);

// A GGUF model as HF-named tensors in HF layout: dims reversed, q/k rows permuted back for the
// llama arch; F32/F16/BF16 are shared with the map, Q8_0 is dequantized to F32. Tensors hone does
// not know are an error; llama3's rope_freqs.weight becomes config.rope_scaling (from the
// hone.rope_scaling.* keys hone writes, else the Llama 3.1/3.2 settings), checked value by value.
// format = "gguf". With a partial `range`, only the stage's tensors (range_holds_tensor) are
// shared, dequantized or permuted; the others' names are still checked.
ModelFiles read_gguf_model(const std::string& path, const LayerRange& range = {});

// Writes a model llama.cpp loads: full hyper-parameter metadata, general.file_type, the
// tokenizer when given, tensors under GGUF names with q/k permuted for llama. `type` is F32,
// F16, BF16 or Q8_0; 1-D tensors (norms, biases) stay F32 as llama.cpp's converter keeps them,
// and Q8_0 falls back to F16 for matrices whose rows are not a multiple of 32. Tied embeddings
// write no output.weight (llama.cpp then uses token_embd). llama3 rope scaling is written as
// llama.cpp's rope_freqs.weight, with its settings as hone.rope_scaling.* keys for reading back.
void write_gguf_model(const std::string& path, const ModelConfig& config,
                      const std::map<std::string, Tensor>& hf_tensors, GgmlType type,
                      const GgufTokenizerData* tokenizer, const std::string& name = "");

}  // namespace hone
