// Hugging Face tokenizer.json <-> GGUF tokenizer.ggml.*, both ways: llama.cpp's pre-tokenizer
// name for a tokenizer.json (keyed by its split regex, not by the model type), a
// SentencePiece-style tokenizer.json as a GGUF "llama" vocabulary, and a GGUF vocabulary ("gpt2"
// or "llama", the latter also what a llama2.c tokenizer.bin becomes) as the tokenizer.json and
// tokenizer_config.json that reproduce its ids.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "data/hf_tokenizer.h"
#include "model/config.h"
#include "model/io/gguf_model.h"

namespace hone {

// llama.cpp's tokenizer.ggml.pre for a byte-level BPE tokenizer.json (`j`, read from `path`):
// "llama-bpe" (Llama 3's split regex, digits in groups of up to 3), "qwen2" (single digits),
// "gpt-2" (ByteLevel's own regex), "smollm" (single digits, then GPT-2's regex). Any other
// pre-tokenizer is refused, naming the file and field: llama.cpp would split text differently.
std::string gguf_pre_for(const nlohmann::json& j, const std::string& path);

// A SentencePiece-style tokenizer.json (Llama 2, Mistral, TinyLlama): a BPE model with
// byte_fallback whose spaces become "▁" (Prepend + Replace normalizers, or a Metaspace
// pre-tokenizer that prepends).
bool is_sentencepiece_json(const nlohmann::json& j);

// Such a tokenizer.json as llama.cpp's "llama" vocabulary: the pieces with "▁", token types
// (control, user-defined, byte for <0xNN>, unknown), and scores llama.cpp's score-driven merging
// turns into the file's merge order (a token scores minus the rank of its first merge).
GgufTokenizerData gguf_llama_from_tokenizer_json(const nlohmann::json& j, const HfTokenizer& hf,
                                                 const std::string& path);

// The GGUF vocabulary for a tokenizer.json: SentencePiece-style ones as "llama", byte-level BPE
// as "gpt2" (with merges, the pre-tokenizer name above); both with BOS/EOS/pad, whether HF's
// encode adds BOS/EOS, and the chat template of the tokenizer_config.json beside it. Padded to
// the model's `config.vocab_size` rows with unused tokens.
GgufTokenizerData gguf_tokenizer_from_json(const std::string& path, const ModelConfig& config);

struct HfTokenizerFiles {
  std::string tokenizer_json;
  std::string tokenizer_config_json;
};

// The tokenizer.json / tokenizer_config.json that encode as the GGUF vocabulary `t` does:
// "gpt2" as a byte-level BPE with the pre-tokenizer its tokenizer.ggml.pre names; "llama" as a
// SentencePiece-style BPE with byte fallback, merges in score order (the pairs whose join is a
// token, as SentencePiece merges them) and <s> added as tokenizer.ggml.add_bos_token says
// (llama.cpp's default for this model: yes). Errors name `source` and the field.
HfTokenizerFiles hf_files_from_gguf(const GgufTokenizerData& t, const std::string& source);

}  // namespace hone
