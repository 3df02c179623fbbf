#include "model/config.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "autograd/error.h"
#include "autograd/json_parse.h"

namespace hone {

namespace {

using json = nlohmann::json;

std::string show(const json& v) {
  std::string s = v.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

// Typed field access with one-line errors: "<file>: <field>: <problem>".
struct Fields {
  const std::string& file;
  const json& j;
  std::string prefix;  // "" or "rope_scaling."

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw Error(file + ": " + prefix + key + ": " + what);
  }
  bool has(const std::string& key) const { return j.contains(key) && !j.at(key).is_null(); }
  const json& need(const std::string& key) const {
    if (!has(key)) throw Error(file + ": missing field \"" + prefix + key + "\"");
    return j.at(key);
  }
  int64_t as_int(const std::string& key, const json& v) const {
    if (v.is_number_integer()) {
      if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
        fail(key, show(v) + " is too large");
      return v.get<int64_t>();
    }
    fail(key, "expected an integer, got " + show(v));
  }
  int64_t get_int(const std::string& key) const { return as_int(key, need(key)); }
  int64_t get_int(const std::string& key, int64_t def) const {
    return has(key) ? as_int(key, j.at(key)) : def;
  }
  double get_num(const std::string& key) const {
    const json& v = need(key);
    if (!v.is_number()) fail(key, "expected a number, got " + show(v));
    return v.get<double>();
  }
  double get_num(const std::string& key, double def) const { return has(key) ? get_num(key) : def; }
  bool get_bool(const std::string& key, bool def) const {
    if (!has(key)) return def;
    const json& v = j.at(key);
    if (!v.is_boolean()) fail(key, "expected true or false, got " + show(v));
    return v.get<bool>();
  }
  std::string get_str(const std::string& key, const std::string& def) const {
    if (!has(key)) return def;
    const json& v = j.at(key);
    if (!v.is_string()) fail(key, "expected a string, got " + show(v));
    return v.get<std::string>();
  }
};

struct Family {
  const char* architecture;
  const char* model_type;
};
constexpr Family kFamilies[] = {{"LlamaForCausalLM", "llama"},
                                {"MistralForCausalLM", "mistral"},
                                {"Qwen2ForCausalLM", "qwen2"},
                                {"Qwen3ForCausalLM", "qwen3"}};

std::string supported_list(bool arch) {
  std::string s;
  for (const Family& f : kFamilies)
    s += std::string(s.empty() ? "" : ", ") + (arch ? f.architecture : f.model_type);
  return s;
}

}  // namespace

ModelConfig config_from_hf_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw Error(path + ": no such file or directory");
  if (std::filesystem::is_directory(path, ec))
    throw Error(path + ": is a directory, expected config.json");
  if (!in) throw Error(path + ": cannot open for reading");
  std::stringstream ss;
  ss << in.rdbuf();
  const json j = parse_json<json>(ss.view(), path);
  if (!j.is_object()) throw Error(path + ": expected a JSON object at the top level");
  Fields f{path, j, ""};
  ModelConfig c;

  // Family: from "architectures" and/or "model_type"; both must name a supported family and agree.
  const Family* fam = nullptr;
  if (f.has("architectures")) {
    const json& a = j.at("architectures");
    if (!a.is_array() || a.empty() || !a[0].is_string())
      f.fail("architectures", "expected a list of class names, got " + show(a));
    const std::string name = a[0].get<std::string>();
    for (const Family& x : kFamilies)
      if (name == x.architecture) fam = &x;
    if (!fam)
      f.fail("architectures",
             "unsupported architecture \"" + name + "\" (supported: " + supported_list(true) + ")");
  }
  if (f.has("model_type")) {
    const std::string mt = f.get_str("model_type", "");
    const Family* by_type = nullptr;
    for (const Family& x : kFamilies)
      if (mt == x.model_type) by_type = &x;
    if (!by_type)
      f.fail("model_type",
             "unsupported model_type \"" + mt + "\" (supported: " + supported_list(false) + ")");
    if (fam && fam != by_type)
      f.fail("model_type",
             "\"" + mt + "\" does not match architectures \"" + fam->architecture + "\"");
    fam = by_type;
  }
  if (!fam) throw Error(path + ": missing field \"model_type\" (and no \"architectures\")");
  c.architecture = fam->architecture;
  c.model_type = fam->model_type;

  c.hidden_size = f.get_int("hidden_size");
  c.intermediate_size = f.get_int("intermediate_size");
  c.num_layers = f.get_int("num_hidden_layers");
  c.num_heads = f.get_int("num_attention_heads");
  c.num_kv_heads = f.get_int("num_key_value_heads", c.num_heads);
  c.vocab_size = f.get_int("vocab_size");
  c.max_position_embeddings = f.get_int("max_position_embeddings", 2048);
  c.rope_theta = f.get_num("rope_theta", 10000.0);
  c.rms_norm_eps = f.get_num("rms_norm_eps", 1e-6);
  if (f.has("head_dim")) {
    c.head_dim = f.get_int("head_dim");
  } else {
    if (c.num_heads > 0 && c.hidden_size % c.num_heads != 0)
      f.fail("num_attention_heads", std::to_string(c.num_heads) + " does not divide hidden_size " +
                                        std::to_string(c.hidden_size));
    c.head_dim = c.num_heads > 0 ? c.hidden_size / c.num_heads : 0;
  }

  if (f.has("rope_scaling")) {
    const json& rs = j.at("rope_scaling");
    if (!rs.is_object()) f.fail("rope_scaling", "expected an object or null, got " + show(rs));
    Fields r{path, rs, "rope_scaling."};
    std::string type = r.has("rope_type") ? r.get_str("rope_type", "") : r.get_str("type", "");
    const char* type_key = r.has("rope_type") ? "rope_type" : "type";
    if (type.empty()) throw Error(path + ": missing field \"rope_scaling.rope_type\"");
    if (type == "llama3") {
      c.rope_scaling.type = "llama3";
      c.rope_scaling.factor = r.get_num("factor");
      c.rope_scaling.low_freq_factor = r.get_num("low_freq_factor");
      c.rope_scaling.high_freq_factor = r.get_num("high_freq_factor");
      c.rope_scaling.original_max_position_embeddings =
          r.get_int("original_max_position_embeddings");
    } else if (type != "default") {  // "default" is HF's name for plain RoPE
      r.fail(type_key, "unsupported rope scaling type \"" + type + "\" (supported: llama3)");
    }
  }

  c.tie_word_embeddings = f.get_bool("tie_word_embeddings", false);
  // Qwen2 always has q/k/v biases (its config has no attention_bias switch).
  c.attention_bias = c.model_type == "qwen2" ? true : f.get_bool("attention_bias", false);
  c.qk_norm = c.model_type == "qwen3";
  c.bos_token_id = f.get_int("bos_token_id", -1);
  if (f.has("eos_token_id")) {
    const json& e = j.at("eos_token_id");
    if (e.is_array()) {
      for (const json& x : e) c.eos_token_ids.push_back(f.as_int("eos_token_id", x));
    } else {
      c.eos_token_ids.push_back(f.as_int("eos_token_id", e));
    }
  }
  c.torch_dtype = f.get_str("torch_dtype", "");
  c.validate(path);
  return c;
}

void ModelConfig::validate(const std::string& source) const {
  auto fail = [&](const std::string& field, const std::string& what) {
    throw Error(source + ": " + field + ": " + what);
  };
  auto positive = [&](const char* field, int64_t v) {
    if (v <= 0) fail(field, "must be > 0 (got " + std::to_string(v) + ")");
  };
  positive("hidden_size", hidden_size);
  positive("intermediate_size", intermediate_size);
  positive("num_hidden_layers", num_layers);
  positive("num_attention_heads", num_heads);
  positive("num_key_value_heads", num_kv_heads);
  positive("head_dim", head_dim);
  positive("vocab_size", vocab_size);
  positive("max_position_embeddings", max_position_embeddings);
  if (num_heads % num_kv_heads != 0)
    fail("num_key_value_heads", std::to_string(num_kv_heads) +
                                    " does not divide num_attention_heads " +
                                    std::to_string(num_heads));
  if (head_dim % 2 != 0) fail("head_dim", std::to_string(head_dim) + " must be even for RoPE");
  if (!(rope_theta > 0)) fail("rope_theta", "must be > 0 (got " + std::to_string(rope_theta) + ")");
  if (!(rms_norm_eps > 0) || !(rms_norm_eps < 1))
    fail("rms_norm_eps", "must be in (0, 1) (got " + std::to_string(rms_norm_eps) + ")");
  if (!rope_scaling.type.empty()) {
    if (rope_scaling.type != "llama3")
      fail("rope_scaling.rope_type", "unsupported \"" + rope_scaling.type + "\"");
    if (!(rope_scaling.factor > 0)) fail("rope_scaling.factor", "must be > 0");
    if (rope_scaling.original_max_position_embeddings <= 0)
      fail("rope_scaling.original_max_position_embeddings", "must be > 0");
    if (!(rope_scaling.low_freq_factor > 0) ||
        !(rope_scaling.high_freq_factor > rope_scaling.low_freq_factor))
      fail("rope_scaling.high_freq_factor", "must be > low_freq_factor > 0 (got high " +
                                                std::to_string(rope_scaling.high_freq_factor) +
                                                ", low " +
                                                std::to_string(rope_scaling.low_freq_factor) + ")");
  }
  if (bos_token_id < -1 || bos_token_id >= vocab_size)
    fail("bos_token_id", std::to_string(bos_token_id) + " is outside the vocabulary (size " +
                             std::to_string(vocab_size) + ")");
  for (int64_t e : eos_token_ids)
    if (e < 0 || e >= vocab_size)
      fail("eos_token_id", std::to_string(e) + " is outside the vocabulary (size " +
                               std::to_string(vocab_size) + ")");
}

int64_t ModelConfig::num_parameters() const {
  const int64_t h = hidden_size;
  int64_t layer = 2 * h                             // input and post-attention norms
                  + h * q_dim() + 2 * h * kv_dim()  // q, k, v
                  + q_dim() * h                     // o
                  + 3 * h * intermediate_size;      // gate, up, down
  if (attention_bias) layer += q_dim() + 2 * kv_dim();
  if (qk_norm) layer += 2 * head_dim;
  return vocab_size * h + num_layers * layer + h + (tie_word_embeddings ? 0 : vocab_size * h);
}

}  // namespace hone
