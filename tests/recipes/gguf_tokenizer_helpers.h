// Shared by the GGUF tokenizer tests: a one-layer model that carries a vocabulary into a GGUF, the
// GGUF written with it, and the fixture texts tokenizers are compared on.
#pragma once

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common.h"
#include "model/config.h"
#include "model/io/gguf_model.h"
#include "model/random_weights.h"

namespace hone::test {

// A one-layer model of `vocab` rows (Qwen3's architecture for "qwen3", Llama's otherwise).
inline ModelConfig tiny_vocab_config(const std::string& model_type, int64_t vocab) {
  ModelConfig cfg;
  cfg.model_type = model_type;
  cfg.architecture = model_type == "qwen3" ? "Qwen3ForCausalLM" : "LlamaForCausalLM";
  cfg.qk_norm = model_type == "qwen3";
  cfg.hidden_size = 16;
  cfg.intermediate_size = 32;
  cfg.num_layers = 1;
  cfg.num_heads = 2;
  cfg.num_kv_heads = 1;
  cfg.head_dim = 8;
  cfg.vocab_size = vocab;
  cfg.tie_word_embeddings = true;
  return cfg;
}

// An f32 GGUF of cfg's random weights (seed 1) carrying `tok`; returns `path`.
inline std::string write_gguf_with(const std::string& path, const ModelConfig& cfg,
                                   const GgufTokenizerData& tok) {
  write_gguf_model(path, cfg, random_weights(cfg, 1), GgmlType::F32, &tok);
  return path;
}

// The "text" of every line of ../shared/fixtures/tokenizer/texts.jsonl; none when it is absent.
inline std::vector<std::string> fixture_texts() {
  std::vector<std::string> out;
  std::ifstream in(shared_file("fixtures/tokenizer/texts.jsonl"));
  for (std::string line; std::getline(in, line);)
    out.push_back(nlohmann::json::parse(line)["text"].get<std::string>());
  return out;
}

}  // namespace hone::test
