// Which tokenizer goes with a model, in both directions: loading one for a model (an explicit
// file, the model folder's, or a GGUF's embedded vocabulary), and the tokenizer.ggml.* metadata a
// GGUF export of the model carries.
#pragma once

#include <memory>
#include <string>

#include "data/tokenizer.h"
#include "model/config.h"
#include "model/io/gguf_model.h"

namespace hone {

// `tokenizer_path` if given; else the tokenizer file in the model's folder; else, for a .gguf
// model, its embedded SentencePiece ("llama") vocabulary. Errors name the model.
std::unique_ptr<Tokenizer> tokenizer_for_model(const std::string& model_path,
                                               const std::string& tokenizer_path);

// Where the tokenizer of a model comes from, in tokenizer_for_model's order: `tokenizer_path` if
// given; else the tokenizer file in the model's folder; else a .gguf model itself (its embedded
// vocabulary); "" when there is none.
std::string model_tokenizer_source(const std::string& model_path,
                                   const std::string& tokenizer_path);

// The chat template for chat data: the built-in `name` if given; else the chat_template of the
// tokenizer_config.json beside `tokenizer_source` (see model_tokenizer_source), or a GGUF's
// tokenizer.chat_template. Checked here, so a syntax error names the file it came from; errors
// say what to set when there is no template.
std::string chat_template_for_model(const std::string& name, const std::string& tokenizer_source);

// The GGUF tokenizer metadata for a model: from a GGUF base as is; from a llama2.c tok.bin as a
// SentencePiece "llama" vocabulary (pieces with "▁", scores, token types); from a byte-level BPE
// tokenizer.json as a "gpt2" vocabulary with merges, token types, BOS/EOS, the pre-tokenizer
// name llama.cpp expects for the architecture, and the chat template.
GgufTokenizerData gguf_tokenizer_for_model(const std::string& model_path,
                                           const std::string& tokenizer_path,
                                           const ModelConfig& config);

}  // namespace hone
