#include "model/shapes.h"

namespace hone {

namespace {

ModelConfig llama_like(int64_t hidden, int64_t inter, int64_t layers, int64_t heads,
                       int64_t kv_heads, int64_t vocab, double theta, bool tied) {
  ModelConfig c;
  c.hidden_size = hidden;
  c.intermediate_size = inter;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = hidden / heads;
  c.vocab_size = vocab;
  c.max_position_embeddings = 8192;
  c.rope_theta = theta;
  c.tie_word_embeddings = tied;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  return c;
}

}  // namespace

const std::vector<std::string>& model_shape_names() {
  static const std::vector<std::string> names = {"smollm2-135m", "qwen2.5-0.5b", "llama3.2-1b",
                                                 "llama3-8b",    "llama3-70b",   "llama3.1-405b"};
  return names;
}

ModelConfig model_shape(const std::string& name) {
  if (name == "smollm2-135m") return llama_like(576, 1536, 30, 9, 3, 49152, 100000, true);
  if (name == "qwen2.5-0.5b") {
    ModelConfig c = llama_like(896, 4864, 24, 14, 2, 151936, 1000000, true);
    c.architecture = "Qwen2ForCausalLM";
    c.model_type = "qwen2";
    c.rms_norm_eps = 1e-6;
    c.attention_bias = true;
    return c;
  }
  // Llama 3.x: their llama3 rope scaling changes frequencies, not cost; left out.
  if (name == "llama3.2-1b") return llama_like(2048, 8192, 16, 32, 8, 128256, 500000, true);
  if (name == "llama3-8b") return llama_like(4096, 14336, 32, 32, 8, 128256, 500000, false);
  // Their config.json: untied heads, rope_theta 500000; 3.1 trains to 131072 positions.
  if (name == "llama3-70b") return llama_like(8192, 28672, 80, 64, 8, 128256, 500000, false);
  if (name == "llama3.1-405b") {
    ModelConfig c = llama_like(16384, 53248, 126, 128, 8, 128256, 500000, false);
    c.max_position_embeddings = 131072;
    return c;
  }
  std::string known;
  for (const auto& n : model_shape_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error("unknown model shape \"" + name + "\" (known: " + known + ")");
}

}  // namespace hone
