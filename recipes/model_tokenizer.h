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

// A tokenizer file of any kind hone reads: a tokenizer.json (or a folder holding one), a llama2.c
// tokenizer.bin, or a GGUF file's embedded vocabulary (tokenizer.ggml.model "llama" or "gpt2").
std::unique_ptr<Tokenizer> open_tokenizer(const std::string& path);

// `tokenizer_path` if given (see open_tokenizer); else the tokenizer file in the model's folder;
// else, for a .gguf model, its embedded vocabulary. Errors name the model.
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

// The GGUF tokenizer metadata for a model: from a GGUF (the base or --tokenizer) as is; from a
// llama2.c tok.bin as a SentencePiece "llama" vocabulary (pieces with "▁", scores, token types);
// from a tokenizer.json as gguf_tokenizer_from_json says (recipes/model_tokenizer_gguf.h).
GgufTokenizerData gguf_tokenizer_for_model(const std::string& model_path,
                                           const std::string& tokenizer_path,
                                           const ModelConfig& config);

// The Hugging Face tokenizer files (tokenizer.json, tokenizer_config.json) of the model's own
// tokenizer, written into the folder `dir`: copied when it is a tokenizer.json; generated so they
// give the same ids when it is a llama2.c tokenizer.bin or a GGUF's embedded vocabulary. False
// when the model has no tokenizer.
bool write_hf_tokenizer_for_model(const std::string& model_path, const std::string& dir);

}  // namespace hone
