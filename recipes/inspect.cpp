#include "recipes/inspect.h"

#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "model/io/gguf_model.h"
#include "model/io/model_files.h"

namespace hone {

namespace {

// 260032 -> "260,032"
std::string grouped(int64_t n) {
  std::string s = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return (n < 0 ? "-" : "") + out;
}

std::string human_bytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, ++u;
  std::ostringstream o;
  o.precision(u ? 1 : 0);
  o << std::fixed << v << ' ' << units[u];
  return o.str();
}

std::string num(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

// Splits "model.layers.12.mlp.up_proj.weight" into (12, "mlp.up_proj.weight"); -1 if not a layer.
std::pair<int64_t, std::string> split_layer(const std::string& name) {
  const std::string p = "model.layers.";
  if (name.rfind(p, 0) != 0) return {-1, name};
  size_t dot = name.find('.', p.size());
  if (dot == std::string::npos || dot == p.size()) return {-1, name};
  const std::string idx = name.substr(p.size(), dot - p.size());
  for (char c : idx)
    if (c < '0' || c > '9') return {-1, name};
  return {std::stoll(idx), name.substr(dot + 1)};
}

}  // namespace

std::string inspect_report(const std::string& path) {
  ModelFiles m = load_model_files(path);
  const ModelConfig& c = m.config;
  std::ostringstream o;

  uint64_t disk = 0;
  for (const std::string& f : m.files) {
    std::error_code ec;
    auto s = std::filesystem::file_size(f, ec);
    if (!ec) disk += s;
  }
  o << "model: " << path << "\n";
  o << "format: " << m.format << " (" << m.files.size()
    << (m.files.size() == 1 ? " file, " : " files, ") << grouped(static_cast<int64_t>(disk))
    << " bytes = " << human_bytes(disk) << " on disk)\n";
  o << "architecture: " << c.architecture << "\n";
  o << "model_type: " << c.model_type << "\n";
  o << "hidden_size: " << c.hidden_size << "\n";
  o << "intermediate_size: " << c.intermediate_size << "\n";
  o << "num_hidden_layers: " << c.num_layers << "\n";
  o << "num_attention_heads: " << c.num_heads << "\n";
  o << "num_key_value_heads: " << c.num_kv_heads
    << (c.num_kv_heads < c.num_heads
            ? " (grouped-query attention, " + std::to_string(c.num_heads / c.num_kv_heads) +
                  " query heads per KV head)"
            : std::string())
    << "\n";
  o << "head_dim: " << c.head_dim << "\n";
  o << "vocab_size: " << c.vocab_size << "\n";
  o << "max_position_embeddings: " << c.max_position_embeddings << "\n";
  o << "rope_theta: " << num(c.rope_theta) << "\n";
  o << "rope_scaling: ";
  if (c.rope_scaling.type.empty())
    o << "none\n";
  else
    o << c.rope_scaling.type << " (factor " << num(c.rope_scaling.factor) << ", low_freq_factor "
      << num(c.rope_scaling.low_freq_factor) << ", high_freq_factor "
      << num(c.rope_scaling.high_freq_factor) << ", original_max_position_embeddings "
      << c.rope_scaling.original_max_position_embeddings << ")\n";
  o << "rms_norm_eps: " << num(c.rms_norm_eps) << "\n";
  o << "tie_word_embeddings: " << (c.tie_word_embeddings ? "true" : "false") << "\n";
  o << "attention_bias: " << (c.attention_bias ? "true" : "false") << "\n";
  o << "qk_norm: " << (c.qk_norm ? "true" : "false") << "\n";
  o << "bos_token_id: " << c.bos_token_id << "\n";
  o << "eos_token_id:";
  if (c.eos_token_ids.empty()) o << " none";
  for (int64_t e : c.eos_token_ids) o << ' ' << e;
  o << "\n";
  if (!c.torch_dtype.empty()) o << "torch_dtype: " << c.torch_dtype << "\n";

  // A GGUF's tensors are listed with the type stored in the file (Q8_0, Q4_0, ...), not the
  // dtype the loader dequantized them to; GGUF tensors without an HF name are listed as they are.
  std::map<std::string, std::string> stored;                 // HF name -> GGML type name
  std::vector<std::pair<std::string, std::string>> unnamed;  // GGUF name, GGML type name
  std::map<std::string, Shape> unnamed_shapes;
  if (m.format == "gguf") {
    const GgufFile g = read_gguf(m.files.empty() ? path : m.files.front());
    for (const GgufTensorInfo& ti : g.tensors) {
      const std::string hf = hf_name_from_gguf(ti.name);
      if (!hf.empty() && m.tensors.count(hf)) {
        stored[hf] = ggml_type_name(ti.type);
      } else {
        unnamed.emplace_back(ti.name, ggml_type_name(ti.type));
        unnamed_shapes[ti.name] = ti.shape();
      }
    }
  }
  auto type_of = [&](const std::string& name, const Tensor& t) -> std::string {
    auto it = stored.find(name);
    return it != stored.end() ? it->second : dtype_name(t.dtype());
  };
  int64_t params = 0;
  std::map<std::string, int64_t> dtypes;  // name -> tensor count
  for (const auto& [name, t] : m.tensors) {
    params += t.numel();
    ++dtypes[type_of(name, t)];
  }
  for (const auto& [name, type] : unnamed) ++dtypes[type];
  o << "parameters: " << grouped(params);
  if (params != c.num_parameters())
    o << " (the config implies " << grouped(c.num_parameters()) << ")";
  o << "\n";
  o << "tensors: " << m.tensors.size() + unnamed.size() << "\n";
  o << "dtypes:";
  for (const auto& [d, n] : dtypes) o << ' ' << d << " (" << n << ")";
  o << "\n";

  // Per-layer tensors are shown once, for layer 0; layers that differ from it are listed in full.
  auto line = [&](const std::string& name, const Tensor& t) {
    o << "  " << name << "  " << shape_str(t.shape()) << "  " << type_of(name, t) << "\n";
  };
  std::map<int64_t, std::map<std::string, const Tensor*>> layers;
  std::vector<std::pair<std::string, const Tensor*>> others;
  for (const auto& [name, t] : m.tensors) {
    auto [i, rest] = split_layer(name);
    if (i < 0)
      others.emplace_back(name, &t);
    else
      layers[i][rest] = &t;
  }
  auto same_layout = [&](int64_t la, const std::map<std::string, const Tensor*>& a, int64_t lb,
                         const std::map<std::string, const Tensor*>& b) {
    if (a.size() != b.size()) return false;
    const std::string pa = "model.layers." + std::to_string(la) + ".";
    const std::string pb = "model.layers." + std::to_string(lb) + ".";
    for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib)
      if (ia->first != ib->first || ia->second->shape() != ib->second->shape() ||
          type_of(pa + ia->first, *ia->second) != type_of(pb + ib->first, *ib->second))
        return false;
    return true;
  };
  o << "tensor list:\n";
  for (const auto& [name, t] : others)
    if (name.rfind("model.embed_tokens", 0) == 0) line(name, *t);
  if (!layers.empty()) {
    const auto& [first, ref] = *layers.begin();
    for (const auto& [rest, t] : ref)
      line("model.layers." + std::to_string(first) + "." + rest, *t);
    int64_t same = 0;
    std::vector<int64_t> differ;
    for (const auto& [i, l] : layers) {
      if (same_layout(i, l, first, ref))
        ++same;
      else
        differ.push_back(i);
    }
    o << "  ... × " << same << " layers (" << ref.size() << " tensors each)\n";
    for (int64_t i : differ) {
      o << "  layer " << i << " differs from layer " << first << ":\n";
      for (const auto& [rest, t] : layers[i])
        line("model.layers." + std::to_string(i) + "." + rest, *t);
    }
  }
  for (const auto& [name, t] : others)
    if (name.rfind("model.embed_tokens", 0) != 0) line(name, *t);
  for (const auto& [name, type] : unnamed)
    o << "  " << name << "  " << shape_str(unnamed_shapes[name]) << "  " << type << "\n";
  return o.str();
}

}  // namespace hone
