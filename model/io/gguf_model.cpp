#include "model/io/gguf_model.h"

#include <cmath>
#include <cstring>

#include "autograd/ops.h"

namespace hone {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw Error(path + ": " + what);
}

struct NamePair {
  const char* hf;
  const char* gguf;
};

// llama.cpp's tensor names (gguf-py's tensor_mapping) for the tensors hone's models have.
const NamePair kGlobalNames[] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
};
const NamePair kLayerNames[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
    {"self_attn.q_norm.weight", "attn_q_norm.weight"},
    {"self_attn.k_norm.weight", "attn_k_norm.weight"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
};

// Splits "<prefix><N>.<rest>" into N and rest.
bool split_layer(const std::string& name, const std::string& prefix, std::string* n,
                 std::string* rest) {
  if (name.compare(0, prefix.size(), prefix) != 0) return false;
  size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size()) return false;
  *n = name.substr(prefix.size(), dot - prefix.size());
  for (char ch : *n)
    if (ch < '0' || ch > '9') return false;
  if (n->size() > 1 && (*n)[0] == '0') return false;
  *rest = name.substr(dot + 1);
  return true;
}

Tensor permute_rows(const Tensor& t, int64_t heads, bool to_gguf) {
  const int64_t rows = t.dim(0);
  if (heads <= 0 || rows % heads != 0 || (rows / heads) % 2 != 0)
    throw Error("q/k permutation: " + std::to_string(rows) + " rows do not split into " +
                std::to_string(heads) + " heads of even size");
  const int64_t hd = rows / heads, half = hd / 2;
  const size_t row_bytes = t.nbytes() / static_cast<size_t>(rows);
  Tensor out = Tensor::empty(t.dtype(), t.shape());
  const auto* src = static_cast<const uint8_t*>(t.raw());
  auto* dst = static_cast<uint8_t*>(out.raw());
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t k = 0; k < 2; ++k) {
        const int64_t hf = h * hd + k * half + i, gg = h * hd + 2 * i + k;
        const int64_t from = to_gguf ? hf : gg, to = to_gguf ? gg : hf;
        std::memcpy(dst + to * row_bytes, src + from * row_bytes, row_bytes);
      }
  return out;
}

std::vector<std::string> string_array(const GgufFile& f, const std::string& key) {
  const GgufValue* v = f.find(key);
  std::vector<std::string> out;
  if (!v) return out;
  if (v->type != GgufValueType::Array || v->elem != GgufValueType::String)
    fail(f.path, key + ": expected an array of strings");
  out.reserve(v->items.size());
  for (const auto& it : v->items) out.push_back(it.s);
  return out;
}

std::string hf_class(const std::string& arch) {
  if (arch == "qwen2") return "Qwen2ForCausalLM";
  if (arch == "qwen3") return "Qwen3ForCausalLM";
  return "LlamaForCausalLM";
}

const char* torch_dtype_of(GgmlType t) {
  switch (t) {
    case GgmlType::F32:
      return "float32";
    case GgmlType::F16:
      return "float16";
    case GgmlType::BF16:
      return "bfloat16";
    default:
      return "";
  }
}

}  // namespace

std::string gguf_architecture(const ModelConfig& c) {
  if (c.model_type == "llama" || c.model_type == "mistral") return "llama";
  if (c.model_type == "qwen2" || c.model_type == "qwen3") return c.model_type;
  throw Error("GGUF export: model_type \"" + c.model_type +
              "\" has no llama.cpp architecture (supported: llama, mistral, qwen2, qwen3)");
}

bool gguf_permutes_qk(const std::string& arch) {
  return arch == "llama";
}

std::string gguf_name_from_hf(const std::string& hf) {
  for (const auto& p : kGlobalNames)
    if (hf == p.hf) return p.gguf;
  std::string n, rest;
  if (!split_layer(hf, "model.layers.", &n, &rest)) return "";
  for (const auto& p : kLayerNames)
    if (rest == p.hf) return "blk." + n + "." + p.gguf;
  return "";
}

std::string hf_name_from_gguf(const std::string& g) {
  for (const auto& p : kGlobalNames)
    if (g == p.gguf) return p.hf;
  std::string n, rest;
  if (!split_layer(g, "blk.", &n, &rest)) return "";
  for (const auto& p : kLayerNames)
    if (rest == p.gguf) return "model.layers." + n + "." + p.hf;
  return "";
}

Tensor permute_qk_to_gguf(const Tensor& t, int64_t heads) {
  return permute_rows(t, heads, true);
}

Tensor permute_qk_from_gguf(const Tensor& t, int64_t heads) {
  return permute_rows(t, heads, false);
}

namespace {

// The llama3 rope_scaling written beside rope_freqs.weight, so hone's own GGUFs round-trip it
// exactly (llama.cpp reads the tensor alone and ignores these keys).
constexpr const char* kScalingKeys[] = {
    "hone.rope_scaling.factor", "hone.rope_scaling.low_freq_factor",
    "hone.rope_scaling.high_freq_factor", "hone.rope_scaling.original_max_position_embeddings"};

// llama.cpp's rope_freqs: each RoPE frequency is divided by it, the ratio of plain to scaled.
std::vector<float> llama3_freq_factors(const ModelConfig& c, const RopeScaling& s) {
  const auto plain = rope_inv_freq(c.head_dim, c.rope_theta, RopeScaling{});
  const auto scaled = rope_inv_freq(c.head_dim, c.rope_theta, s);
  std::vector<float> out(plain.size());
  for (size_t i = 0; i < plain.size(); ++i) out[i] = static_cast<float>(plain[i] / scaled[i]);
  return out;
}

// The rope_scaling a rope_freqs.weight stands for: hone's keys when present (hone's own export),
// else the Llama 3.1 / 3.2 settings llama.cpp's converter meets (factor 8 or 32, frequency
// factors 1 and 4, original context 8192). Either way the tensor must equal the factors the
// scaling gives, so a model never runs with a RoPE other than the file's.
RopeScaling llama3_scaling_from(const GgufFile& f, const GgufTensorInfo& info,
                                const ModelConfig& c) {
  const int64_t half = c.head_dim / 2;
  if (info.ne.size() != 1 || info.ne[0] != half || info.type != GgmlType::F32)
    fail(f.path, "tensor rope_freqs.weight: expected " + std::to_string(half) +
                     " F32 values (head size / 2), got " + ggml_type_name(info.type) + " of " +
                     std::to_string(info.numel()));
  const Tensor got = gguf_tensor(f, info);
  std::vector<RopeScaling> candidates;
  const bool keyed = f.find(kScalingKeys[0]) != nullptr;
  if (keyed) {
    RopeScaling s;
    s.type = "llama3";
    s.factor = f.get_float(kScalingKeys[0]);
    s.low_freq_factor = f.get_float(kScalingKeys[1]);
    s.high_freq_factor = f.get_float(kScalingKeys[2]);
    s.original_max_position_embeddings = f.get_int(kScalingKeys[3]);
    if (!(s.factor >= 1) || !(s.high_freq_factor > s.low_freq_factor) || !(s.low_freq_factor > 0) ||
        s.original_max_position_embeddings <= 0)
      fail(f.path,
           "hone.rope_scaling.*: factor " + std::to_string(s.factor) + ", low_freq_factor " +
               std::to_string(s.low_freq_factor) + ", high_freq_factor " +
               std::to_string(s.high_freq_factor) + ", original_max_position_embeddings " +
               std::to_string(s.original_max_position_embeddings) + " are not a llama3 scaling");
    candidates.push_back(s);
  } else {
    for (double factor : {8.0, 32.0, 16.0, 4.0}) {
      RopeScaling s;
      s.type = "llama3";
      s.factor = factor;
      candidates.push_back(s);
    }
  }
  for (const RopeScaling& s : candidates) {
    const std::vector<float> want = llama3_freq_factors(c, s);
    bool same = true;
    for (int64_t i = 0; i < half && same; ++i)
      same = std::abs(got.item(i) - want[i]) <= 1e-6 * std::abs(want[i]);
    if (same) return s;
  }
  std::string values;
  for (int64_t i = 0; i < half && i < 8; ++i)
    values += (i ? ", " : "") + std::to_string(got.item(i));
  if (keyed)
    fail(f.path, "tensor rope_freqs.weight: [" + values + (half > 8 ? ", ..." : "") +
                     "] is not the llama3 scaling that hone.rope_scaling.* describes");
  fail(f.path, "tensor rope_freqs.weight: [" + values + (half > 8 ? ", ..." : "") +
                   "] matches no llama3 rope_scaling hone recognises without hone.rope_scaling.* "
                   "keys (factor 4, 8, 16 or 32 with low/high frequency factors 1 and 4 and an "
                   "original context of 8192)");
}

}  // namespace

GgufTokenizerData gguf_tokenizer(const GgufFile& f) {
  GgufTokenizerData t;
  t.model = f.get_string("tokenizer.ggml.model");
  t.pre = f.get_string("tokenizer.ggml.pre", "");
  t.tokens = string_array(f, "tokenizer.ggml.tokens");
  if (t.tokens.empty()) fail(f.path, "tokenizer.ggml.tokens: missing or empty");
  if (const GgufValue* v = f.find("tokenizer.ggml.scores")) {
    if (v->type != GgufValueType::Array ||
        !(v->elem == GgufValueType::F32 || v->elem == GgufValueType::F64))
      fail(f.path, "tokenizer.ggml.scores: expected an array of FLOAT32");
    for (const auto& it : v->items) t.scores.push_back(static_cast<float>(it.f));
  }
  if (const GgufValue* v = f.find("tokenizer.ggml.token_type")) {
    if (v->type != GgufValueType::Array)
      fail(f.path, "tokenizer.ggml.token_type: expected an array");
    for (const auto& it : v->items) {
      int64_t x;
      if (!it.get_int(&x)) fail(f.path, "tokenizer.ggml.token_type: expected integers");
      t.token_types.push_back(static_cast<int32_t>(x));
    }
  }
  const size_t n = t.tokens.size();
  if (!t.scores.empty() && t.scores.size() != n)
    fail(f.path, "tokenizer.ggml.scores has " + std::to_string(t.scores.size()) + " entries for " +
                     std::to_string(n) + " tokens");
  if (!t.token_types.empty() && t.token_types.size() != n)
    fail(f.path, "tokenizer.ggml.token_type has " + std::to_string(t.token_types.size()) +
                     " entries for " + std::to_string(n) + " tokens");
  t.merges = string_array(f, "tokenizer.ggml.merges");
  auto id = [&](const char* key) {
    int64_t v = f.get_int(key, -1);
    if (v == 0xffffffff) return int64_t{-1};  // llama.cpp writes "no such token" as u32 -1
    if (v >= static_cast<int64_t>(n))
      fail(f.path, std::string(key) + ": " + std::to_string(v) + " is outside the " +
                       std::to_string(n) + " tokens");
    return v;
  };
  t.bos_id = id("tokenizer.ggml.bos_token_id");
  t.eos_id = id("tokenizer.ggml.eos_token_id");
  t.unk_id = id("tokenizer.ggml.unknown_token_id");
  t.pad_id = id("tokenizer.ggml.padding_token_id");
  if (f.find("tokenizer.ggml.add_bos_token"))
    t.add_bos = f.get_bool("tokenizer.ggml.add_bos_token", false);
  if (f.find("tokenizer.ggml.add_eos_token"))
    t.add_eos = f.get_bool("tokenizer.ggml.add_eos_token", false);
  t.chat_template = f.get_string("tokenizer.chat_template", "");
  return t;
}

GgufTokenizerData read_gguf_tokenizer(const std::string& path) {
  return gguf_tokenizer(read_gguf(path));
}

void add_gguf_tokenizer_metadata(GgufMetadata& md, const GgufTokenizerData& t) {
  md.emplace_back("tokenizer.ggml.model", GgufValue::str(t.model));
  if (!t.pre.empty()) md.emplace_back("tokenizer.ggml.pre", GgufValue::str(t.pre));
  md.emplace_back("tokenizer.ggml.tokens", GgufValue::strings(t.tokens));
  if (!t.scores.empty()) md.emplace_back("tokenizer.ggml.scores", GgufValue::f32s(t.scores));
  if (!t.token_types.empty())
    md.emplace_back("tokenizer.ggml.token_type", GgufValue::i32s(t.token_types));
  if (!t.merges.empty()) md.emplace_back("tokenizer.ggml.merges", GgufValue::strings(t.merges));
  auto id = [&](const char* key, int64_t v) {
    if (v >= 0) md.emplace_back(key, GgufValue::u32(static_cast<uint32_t>(v)));
  };
  id("tokenizer.ggml.bos_token_id", t.bos_id);
  id("tokenizer.ggml.eos_token_id", t.eos_id);
  id("tokenizer.ggml.unknown_token_id", t.unk_id);
  id("tokenizer.ggml.padding_token_id", t.pad_id);
  if (t.add_bos) md.emplace_back("tokenizer.ggml.add_bos_token", GgufValue::boolean(*t.add_bos));
  if (t.add_eos) md.emplace_back("tokenizer.ggml.add_eos_token", GgufValue::boolean(*t.add_eos));
  if (!t.chat_template.empty())
    md.emplace_back("tokenizer.chat_template", GgufValue::str(t.chat_template));
}

ModelConfig gguf_model_config(const GgufFile& f) {
  const std::string arch = f.get_string("general.architecture");
  if (arch != "llama" && arch != "qwen2" && arch != "qwen3")
    fail(f.path,
         "general.architecture \"" + arch + "\" is not supported (supported: llama, qwen2, qwen3)");
  if (f.get_string("general.type", "model") != "model")
    fail(f.path, "general.type is \"" + f.get_string("general.type") + "\", not a model");
  const std::string p = arch + ".";
  ModelConfig c;
  c.model_type = arch;
  c.architecture = hf_class(arch);
  c.hidden_size = f.get_int(p + "embedding_length");
  c.intermediate_size = f.get_int(p + "feed_forward_length");
  c.num_layers = f.get_int(p + "block_count");
  c.num_heads = f.get_int(p + "attention.head_count");
  c.num_kv_heads = f.get_int(p + "attention.head_count_kv", c.num_heads);
  if (c.num_heads <= 0) fail(f.path, p + "attention.head_count: must be > 0");
  c.head_dim = f.get_int(p + "attention.key_length", c.hidden_size / c.num_heads);
  if (f.get_int(p + "attention.value_length", c.head_dim) != c.head_dim)
    fail(f.path, p + "attention.value_length differs from key_length (not supported)");
  if (f.get_int(p + "rope.dimension_count", c.head_dim) != c.head_dim)
    fail(f.path, p + "rope.dimension_count " +
                     std::to_string(f.get_int(p + "rope.dimension_count")) +
                     " differs from the head size " + std::to_string(c.head_dim) +
                     " (partial RoPE is not supported)");
  const std::string scaling = f.get_string(p + "rope.scaling.type", "none");
  if (scaling != "none") fail(f.path, p + "rope.scaling.type \"" + scaling + "\" is not supported");
  c.rms_norm_eps = f.get_float(p + "attention.layer_norm_rms_epsilon");
  c.rope_theta = f.get_float(p + "rope.freq_base", 10000.0);
  c.max_position_embeddings = f.get_int(p + "context_length", 2048);
  const GgufTensorInfo* embd = f.tensor("token_embd.weight");
  if (!embd || embd->ne.size() != 2) fail(f.path, "no 2-D tensor token_embd.weight");
  c.vocab_size = embd->ne[1];
  c.torch_dtype = torch_dtype_of(embd->type);
  c.tie_word_embeddings = f.tensor("output.weight") == nullptr;
  c.attention_bias = arch == "qwen2" || f.tensor("blk.0.attn_q.bias") != nullptr;
  c.qk_norm = arch == "qwen3";
  if (const GgufTensorInfo* freqs = f.tensor("rope_freqs.weight"))
    c.rope_scaling = llama3_scaling_from(f, *freqs, c);
  c.bos_token_id = f.get_int("tokenizer.ggml.bos_token_id", -1);
  const int64_t eos = f.get_int("tokenizer.ggml.eos_token_id", -1);
  if (eos >= 0) c.eos_token_ids = {eos};
  c.validate(f.path);
  return c;
}

ModelFiles read_gguf_model(const std::string& path, const LayerRange& range) {
  GgufFile f = read_gguf(path);
  ModelFiles out;
  out.config = gguf_model_config(f);
  const TensorFilter keep = range_filter(range.resolved(out.config.num_layers), out.config);
  out.format = "gguf";
  out.source = path;
  out.files = {path};
  const ModelConfig& c = out.config;
  const bool permute = gguf_permutes_qk(c.model_type);
  for (const GgufTensorInfo& info : f.tensors) {
    const std::string hf = hf_name_from_gguf(info.name);
    if (hf.empty()) {
      if (info.name == "rope_freqs.weight") continue;  // checked into config.rope_scaling
      fail(path,
           "tensor \"" + info.name + "\" is not part of a " + c.model_type + " model hone knows");
    }
    if (keep && !keep(hf)) continue;
    Tensor t = gguf_tensor(f, info);
    if (permute) {
      const bool q = hf.find("self_attn.q_proj.") != std::string::npos;
      const bool k = hf.find("self_attn.k_proj.") != std::string::npos;
      if (q || k) {
        const int64_t heads = q ? c.num_heads : c.num_kv_heads;
        if (t.ndim() < 1 || t.dim(0) != heads * c.head_dim)
          fail(path, "tensor \"" + info.name + "\": shape " + shape_str(t.shape()) +
                         " does not fit " + std::to_string(heads) + " heads of " +
                         std::to_string(c.head_dim));
        t = permute_qk_from_gguf(t, heads);
      }
    }
    out.tensors[hf] = std::move(t);
  }
  return out;
}

void write_gguf_model(const std::string& path, const ModelConfig& c,
                      const std::map<std::string, Tensor>& hf_tensors, GgmlType type,
                      const GgufTokenizerData* tokenizer, const std::string& name) {
  uint32_t file_type;
  switch (type) {
    case GgmlType::F32:
      file_type = 0;
      break;  // LLAMA_FTYPE_ALL_F32
    case GgmlType::F16:
      file_type = 1;
      break;  // MOSTLY_F16
    case GgmlType::Q8_0:
      file_type = 7;
      break;  // MOSTLY_Q8_0
    case GgmlType::Q4_0:
      file_type = 2;
      break;  // MOSTLY_Q4_0
    case GgmlType::BF16:
      file_type = 32;
      break;  // MOSTLY_BF16
    default:
      fail(path, std::string("cannot export a model as ") + ggml_type_name(type) +
                     " (supported: F32, F16, BF16, Q8_0, Q4_0)");
  }
  c.validate(path);
  check_model_tensors(c, hf_tensors, path);
  const std::string arch = gguf_architecture(c);
  const std::string p = arch + ".";
  auto u32 = [](int64_t v) { return GgufValue::u32(static_cast<uint32_t>(v)); };
  GgufMetadata md;
  md.emplace_back("general.architecture", GgufValue::str(arch));
  md.emplace_back("general.type", GgufValue::str("model"));
  if (!name.empty()) md.emplace_back("general.name", GgufValue::str(name));
  md.emplace_back("general.file_type", GgufValue::u32(file_type));
  md.emplace_back("general.quantization_version", GgufValue::u32(2));
  md.emplace_back(p + "vocab_size", u32(c.vocab_size));
  md.emplace_back(p + "context_length", u32(c.max_position_embeddings));
  md.emplace_back(p + "embedding_length", u32(c.hidden_size));
  md.emplace_back(p + "block_count", u32(c.num_layers));
  md.emplace_back(p + "feed_forward_length", u32(c.intermediate_size));
  md.emplace_back(p + "attention.head_count", u32(c.num_heads));
  md.emplace_back(p + "attention.head_count_kv", u32(c.num_kv_heads));
  if (c.head_dim * c.num_heads != c.hidden_size || arch == "qwen3") {
    md.emplace_back(p + "attention.key_length", u32(c.head_dim));
    md.emplace_back(p + "attention.value_length", u32(c.head_dim));
  }
  md.emplace_back(p + "rope.dimension_count", u32(c.head_dim));
  md.emplace_back(p + "rope.freq_base", GgufValue::f32(static_cast<float>(c.rope_theta)));
  if (c.rope_scaling.type == "llama3") {
    const RopeScaling& r = c.rope_scaling;
    md.emplace_back(kScalingKeys[0], GgufValue::f32(static_cast<float>(r.factor)));
    md.emplace_back(kScalingKeys[1], GgufValue::f32(static_cast<float>(r.low_freq_factor)));
    md.emplace_back(kScalingKeys[2], GgufValue::f32(static_cast<float>(r.high_freq_factor)));
    md.emplace_back(kScalingKeys[3], u32(r.original_max_position_embeddings));
  }
  md.emplace_back(p + "attention.layer_norm_rms_epsilon",
                  GgufValue::f32(static_cast<float>(c.rms_norm_eps)));
  if (tokenizer) add_gguf_tokenizer_metadata(md, *tokenizer);

  // Tensors in llama.cpp's usual order: embedding, blocks in layer order, final norm, head.
  const auto shapes = expected_tensor_shapes(c);
  std::vector<std::string> order = {"model.embed_tokens.weight"};
  for (int64_t i = 0; i < c.num_layers; ++i)
    for (const auto& np : kLayerNames) {
      std::string n = "model.layers." + std::to_string(i) + "." + np.hf;
      if (shapes.count(n)) order.push_back(n);
    }
  order.push_back("model.norm.weight");
  if (!c.tie_word_embeddings) order.push_back("lm_head.weight");

  std::vector<GgufTensorOut> out;
  if (c.rope_scaling.type == "llama3") {
    const std::vector<float> factors = llama3_freq_factors(c, c.rope_scaling);
    out.push_back({"rope_freqs.weight",
                   Tensor::from_f32(factors, {static_cast<int64_t>(factors.size())}),
                   GgmlType::F32});
  }
  const bool permute = gguf_permutes_qk(arch);
  for (const std::string& hf : order) {
    Tensor t = hf_tensors.at(hf);
    if (permute && (hf.find("self_attn.q_proj.") != std::string::npos ||
                    hf.find("self_attn.k_proj.") != std::string::npos)) {
      const bool q = hf.find("q_proj") != std::string::npos;
      t = permute_qk_to_gguf(t, q ? c.num_heads : c.num_kv_heads);
    }
    GgmlType tt = type;
    if (t.ndim() == 1) tt = GgmlType::F32;
    if ((tt == GgmlType::Q8_0 || tt == GgmlType::Q4_0) && t.dim(-1) % 32 != 0) tt = GgmlType::F16;
    out.push_back({gguf_name_from_hf(hf), std::move(t), tt});
  }
  write_gguf(path, md, out);
}

}  // namespace hone
