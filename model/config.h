// ModelConfig: the hyper-parameters of a Llama-family decoder, from a Hugging Face config.json
// or a llama2.c checkpoint header. Validated once; everything downstream trusts it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "autograd/ops.h"  // RopeScaling

namespace hone {

struct ModelConfig {
  std::string architecture = "LlamaForCausalLM";  // HF class name
  std::string model_type = "llama";               // llama | mistral | qwen2 | qwen3
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;  // explicit in Qwen3; else hidden_size / num_heads
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 2048;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-5;
  RopeScaling rope_scaling;  // type "" = none
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v biases (Qwen2)
  bool qk_norm = false;         // per-head RMSNorm on q and k before RoPE (Qwen3)
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;
  std::string torch_dtype;  // as declared by the file, informational

  // Throws Error("<source>: <field>: <problem>") on inconsistent values.
  void validate(const std::string& source) const;
  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
  // Parameters of the base model (embedding, blocks, final norm, untied head).
  int64_t num_parameters() const;
};

// Parses a HF config.json. Errors name the file and the field.
ModelConfig config_from_hf_json(const std::string& path);

}  // namespace hone
