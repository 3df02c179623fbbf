#include "model/io/model_files.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "model/io/gguf_model.h"
#include "model/io/llama2c.h"
#include "model/io/safetensors.h"

namespace hone {

namespace fs = std::filesystem;

std::map<std::string, Shape> expected_tensor_shapes(const ModelConfig& c, const LayerRange& range) {
  const int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), ff = c.intermediate_size;
  std::map<std::string, Shape> m;
  m["model.embed_tokens.weight"] = {c.vocab_size, h};
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    m[p + "input_layernorm.weight"] = {h};
    m[p + "self_attn.q_proj.weight"] = {q, h};
    m[p + "self_attn.k_proj.weight"] = {kv, h};
    m[p + "self_attn.v_proj.weight"] = {kv, h};
    m[p + "self_attn.o_proj.weight"] = {h, q};
    if (c.attention_bias) {
      m[p + "self_attn.q_proj.bias"] = {q};
      m[p + "self_attn.k_proj.bias"] = {kv};
      m[p + "self_attn.v_proj.bias"] = {kv};
    }
    if (c.qk_norm) {
      m[p + "self_attn.q_norm.weight"] = {c.head_dim};
      m[p + "self_attn.k_norm.weight"] = {c.head_dim};
    }
    m[p + "post_attention_layernorm.weight"] = {h};
    m[p + "mlp.gate_proj.weight"] = {ff, h};
    m[p + "mlp.up_proj.weight"] = {ff, h};
    m[p + "mlp.down_proj.weight"] = {h, ff};
  }
  m["model.norm.weight"] = {h};
  if (!c.tie_word_embeddings) m["lm_head.weight"] = {c.vocab_size, h};
  const LayerRange r = range.resolved(c.num_layers);
  if (r.is_full(c.num_layers)) return m;
  for (auto it = m.begin(); it != m.end();)
    it = range_holds_tensor(r, c, it->first) ? std::next(it) : m.erase(it);
  return m;
}

void check_model_tensors(const ModelConfig& config, const std::map<std::string, Tensor>& tensors,
                         const std::string& source, const LayerRange& range) {
  for (const auto& [name, shape] : expected_tensor_shapes(config, range)) {
    auto it = tensors.find(name);
    if (it == tensors.end())
      throw Error(source + ": tensor " + name + ": missing (the config implies shape " +
                  shape_str(shape) + ")");
    const Tensor& t = it->second;
    if (t.shape() != shape)
      throw Error(source + ": tensor " + name + ": shape " + shape_str(t.shape()) + ", expected " +
                  shape_str(shape) + " from the config");
    DType d = t.dtype();
    if (d != DType::F32 && d != DType::F64 && d != DType::BF16 && d != DType::F16)
      throw Error(source + ": tensor " + name + ": dtype " + dtype_name(d) +
                  ", expected a float type (F32, BF16, F16, F64)");
  }
}

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A HF checkpoint: config.json plus either one safetensors file or a sharded index.
ModelFiles load_hf(const std::string& source, const fs::path& config, const fs::path& weights,
                   const LayerRange& range) {
  std::error_code ec;
  if (!fs::exists(config, ec))
    throw Error(source + ": no config.json beside the weights (looked for " + config.string() +
                ")");
  ModelFiles out;
  out.source = source;
  out.format = "safetensors";
  out.config = config_from_hf_json(config.string());
  out.files.push_back(config.string());
  const TensorFilter keep = range_filter(range.resolved(out.config.num_layers), out.config);
  SafetensorsFile st;
  if (ends_with(weights.string(), ".index.json")) {
    st = read_safetensors_index(weights.string(), keep);
    out.files.push_back(weights.string());
    out.files.insert(out.files.end(), st.files.begin(), st.files.end());
  } else {
    st = read_safetensors(weights.string(), keep);
    out.files.push_back(weights.string());
  }
  out.tensors = std::move(st.tensors);
  return out;
}

}  // namespace

ModelFiles load_model_files(const std::string& path, const LayerRange& range) {
  std::error_code ec;
  if (path.empty()) throw Error("model path is empty");
  if (!fs::exists(path, ec)) throw Error(path + ": no such file or directory");
  ModelFiles out;
  const fs::path p(path);
  if (fs::is_directory(p, ec)) {
    const fs::path config = p / "config.json";
    if (!fs::exists(config, ec))
      throw Error(path + ": no config.json in this folder (expected a Hugging Face model folder)");
    if (fs::exists(p / "model.safetensors", ec))
      out = load_hf(path, config, p / "model.safetensors", range);
    else if (fs::exists(p / "model.safetensors.index.json", ec))
      out = load_hf(path, config, p / "model.safetensors.index.json", range);
    else
      throw Error(path + ": no model.safetensors or model.safetensors.index.json in this folder");
  } else if (ends_with(path, ".safetensors") || ends_with(path, ".safetensors.index.json")) {
    out = load_hf(path, p.parent_path() / "config.json", p, range);
  } else if (ends_with(path, ".gguf")) {
    out = read_gguf_model(path, range);
  } else {
    char magic[4] = {0, 0, 0, 0};
    std::ifstream in(path, std::ios::binary);
    in.read(magic, 4);
    if (std::memcmp(magic, "PK\x03\x04", 4) == 0)
      throw Error(path + ": a PyTorch (zip/pickle) checkpoint; convert it to safetensors first");
    if (std::memcmp(magic, "GGUF", 4) == 0) {
      out = read_gguf_model(path, range);
      check_model_tensors(out.config, out.tensors, path, range);
      return out;
    }
    if (!ends_with(path, ".bin"))
      throw Error(path +
                  ": unrecognised model file (expected a folder with config.json, a "
                  ".safetensors file, a .safetensors.index.json or a llama2.c .bin)");
    out = read_llama2c(path, range);
  }
  check_model_tensors(out.config, out.tensors, path, range);
  out.source = path;
  return out;
}

}  // namespace hone
