#include "model/io/hf_export.h"

#include <sys/mman.h>
#include <unistd.h>

#include <bit>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "model/io/atomic_file.h"
#include "model/io/model_files.h"

namespace hone {

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes little-endian");

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

const char* torch_dtype_name(DType d) {
  switch (d) {
    case DType::F32:
      return "float32";
    case DType::BF16:
      return "bfloat16";
    case DType::F16:
      return "float16";
    case DType::F64:
      return "float64";
    default:
      throw Error(std::string("export: unsupported output dtype ") + dtype_name(d));
  }
}

std::string shard_name(size_t i, size_t n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, n);
  return buf;
}

// Copies `src` to `dst` in chunks through an atomic write.
void copy_file_atomically(const std::string& src, const std::string& dst) {
  std::ifstream in(src, std::ios::binary);
  if (!in) throw Error(src + ": cannot open for reading");
  write_file_atomically(dst, [&](AtomicWriter& w) {
    std::vector<char> buf(1 << 20);
    while (in) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      const std::streamsize got = in.gcount();
      if (got > 0) w.write(buf.data(), static_cast<size_t>(got));
    }
    if (in.bad()) throw Error(src + ": read failed");
  });
}

}  // namespace

uint64_t ExportTensor::nbytes() const {
  return static_cast<uint64_t>(shape_numel(shape)) * dtype_size(dtype);
}

std::vector<ExportTensor> hf_export_plan(const ModelConfig& config, DType dtype) {
  const std::map<std::string, Shape> shapes = expected_tensor_shapes(config);
  std::vector<ExportTensor> plan;
  std::set<std::string> taken;
  auto add = [&](const std::string& name) {
    auto it = shapes.find(name);
    if (it == shapes.end() || taken.count(name)) return;
    plan.push_back({name, dtype, it->second});
    taken.insert(name);
  };
  add("model.embed_tokens.weight");
  for (int64_t l = 0; l < config.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    for (auto it = shapes.lower_bound(p); it != shapes.end() && it->first.rfind(p, 0) == 0; ++it)
      add(it->first);
  }
  add("model.norm.weight");
  add("lm_head.weight");
  for (const auto& [name, shape] : shapes) add(name);  // anything else, for completeness
  return plan;
}

std::string hf_config_json(const ModelConfig& c, DType dtype) {
  ojson j;
  j["architectures"] = {c.architecture};
  j["model_type"] = c.model_type;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rope_theta"] = c.rope_theta;
  if (c.rope_scaling.type.empty()) {
    j["rope_scaling"] = nullptr;
  } else {
    j["rope_scaling"] = {
        {"rope_type", c.rope_scaling.type},
        {"factor", c.rope_scaling.factor},
        {"low_freq_factor", c.rope_scaling.low_freq_factor},
        {"high_freq_factor", c.rope_scaling.high_freq_factor},
        {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}};
  }
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["hidden_act"] = "silu";
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  // Qwen2's config has no switch: its q/k/v biases are implied by the architecture.
  if (c.model_type != "qwen2") j["attention_bias"] = c.attention_bias;
  if (c.model_type == "llama") j["mlp_bias"] = false;
  if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
  if (c.eos_token_ids.size() > 1) j["eos_token_id"] = c.eos_token_ids;
  j["torch_dtype"] = torch_dtype_name(dtype);
  j["use_cache"] = true;
  return j.dump(2) + "\n";
}

std::string hf_generation_config_json(const ModelConfig& c) {
  ojson j;
  j["_from_model_config"] = true;
  if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
  if (c.eos_token_ids.size() > 1) j["eos_token_id"] = c.eos_token_ids;
  return j.dump(2) + "\n";
}

std::vector<std::vector<size_t>> hf_shard_plan(const std::vector<ExportTensor>& plan,
                                               uint64_t max_shard_size) {
  std::vector<std::vector<size_t>> shards;
  uint64_t current = 0;
  for (size_t i = 0; i < plan.size(); ++i) {
    const uint64_t n = plan[i].nbytes();
    if (shards.empty() ||
        (max_shard_size > 0 && !shards.back().empty() && current + n > max_shard_size)) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().push_back(i);
    current += n;
  }
  if (shards.empty()) shards.emplace_back();
  return shards;
}

void write_safetensors_streaming(const std::string& path, const std::vector<ExportTensor>& tensors,
                                 const TensorProducer& produce, const TensorDone& done) {
  std::string header = "{\"__metadata__\":{\"format\":\"pt\"}";
  uint64_t offset = 0;
  std::set<std::string> names;
  for (const ExportTensor& e : tensors) {
    if (e.name.empty() || e.name == "__metadata__" || !names.insert(e.name).second)
      throw Error(path + ": cannot write a tensor named \"" + e.name + "\" (empty or repeated)");
    nlohmann::json shape = nlohmann::json::array();
    for (int64_t d : e.shape) shape.push_back(d);
    const uint64_t end = offset + e.nbytes();
    // Appended piece by piece (GCC 12 warns falsely on a long chain of operator+).
    header += ',';
    header += nlohmann::json(e.name).dump();
    header += ":{\"dtype\":\"";
    header += dtype_name(e.dtype);
    header += "\",\"shape\":";
    header += shape.dump();
    header += ",\"data_offsets\":[";
    header += std::to_string(offset);
    header += ',';
    header += std::to_string(end);
    header += "]}";
    offset = end;
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');  // every tensor starts 8-byte aligned
  const uint64_t n = header.size();
  write_file_atomically(path, [&](AtomicWriter& w) {
    w.write(&n, 8);
    w.write(header);
    for (const ExportTensor& e : tensors) {
      Tensor t = produce(e);
      if (!t.defined() || t.dtype() != e.dtype || t.shape() != e.shape)
        throw Error(path + ": tensor " + e.name + ": produced " +
                    (t.defined() ? std::string(dtype_name(t.dtype())) + " " + shape_str(t.shape())
                                 : std::string("nothing")) +
                    ", planned " + dtype_name(e.dtype) + " " + shape_str(e.shape));
      w.write(t.raw(), t.nbytes());
      t = Tensor();
      if (done) done(e);
    }
  });
}

void export_hf(const std::string& out_dir, const ModelConfig& config, DType dtype,
               const std::vector<ExportTensor>& plan, const TensorProducer& produce,
               const HfExportOptions& options, const TensorDone& done) {
  if (out_dir.empty()) throw Error("export: output folder is empty");
  const std::string torch_dtype = torch_dtype_name(dtype);  // validates before any write

  write_folder_atomically(out_dir, options.force, [&](const std::string& tmp_dir) {
    const fs::path tmp(tmp_dir);
    std::error_code ec;
    write_file_atomically((tmp / "config.json").string(),
                          [&](AtomicWriter& w) { w.write(hf_config_json(config, dtype)); });
    write_file_atomically((tmp / "generation_config.json").string(),
                          [&](AtomicWriter& w) { w.write(hf_generation_config_json(config)); });
    if (!options.tokenizer_dir.empty()) {
      for (const char* f :
           {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
            "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja"}) {
        const fs::path src = fs::path(options.tokenizer_dir) / f;
        if (fs::is_regular_file(src, ec)) copy_file_atomically(src.string(), (tmp / f).string());
      }
    }
    const auto shards = hf_shard_plan(plan, options.max_shard_size);
    if (shards.size() == 1) {
      write_safetensors_streaming((tmp / "model.safetensors").string(), plan, produce, done);
    } else {
      ojson index;
      uint64_t total = 0;
      for (const ExportTensor& e : plan) total += e.nbytes();
      index["metadata"] = {{"total_size", total}};
      nlohmann::json weight_map = nlohmann::json::object();  // sorted by name, as transformers
      for (size_t s = 0; s < shards.size(); ++s) {
        std::vector<ExportTensor> part;
        for (size_t i : shards[s]) {
          part.push_back(plan[i]);
          weight_map[plan[i].name] = shard_name(s, shards.size());
        }
        write_safetensors_streaming((tmp / shard_name(s, shards.size())).string(), part, produce,
                                    done);
      }
      index["weight_map"] = weight_map;
      write_file_atomically((tmp / "model.safetensors.index.json").string(),
                            [&](AtomicWriter& w) { w.write(index.dump(2) + "\n"); });
    }
  });
}

uint64_t parse_byte_size(const std::string& s, const std::string& what) {
  auto bad = [&]() -> Error {
    return Error(what + ": expected a size such as 2GB, 500MB, 1.5GiB or a byte count (got \"" + s +
                 "\")");
  };
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  if (i == 0) throw bad();
  double value;
  try {
    size_t used = 0;
    value = std::stod(s.substr(0, i), &used);
    if (used != i) throw bad();
  } catch (const std::exception&) {
    throw bad();
  }
  std::string unit = s.substr(i);
  while (!unit.empty() && unit.front() == ' ') unit.erase(unit.begin());
  for (char& ch : unit) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  double mult;
  if (unit.empty() || unit == "B")
    mult = 1;
  else if (unit == "KB")
    mult = 1e3;
  else if (unit == "MB")
    mult = 1e6;
  else if (unit == "GB")
    mult = 1e9;
  else if (unit == "TB")
    mult = 1e12;
  else if (unit == "KIB")
    mult = 1024.0;
  else if (unit == "MIB")
    mult = 1024.0 * 1024;
  else if (unit == "GIB")
    mult = 1024.0 * 1024 * 1024;
  else if (unit == "TIB")
    mult = 1024.0 * 1024 * 1024 * 1024;
  else
    throw bad();
  const double bytes = std::floor(value * mult);
  if (!(bytes >= 1) || bytes > 1.8e19)
    throw Error(what + ": must be at least 1 byte (got \"" + s + "\")");
  return static_cast<uint64_t>(bytes);
}

void release_mapped_pages(const Tensor& t) {
  // Only whole pages inside the tensor: its neighbours' pages stay as they are.
  static const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(t.raw());
  const uintptr_t lo = (begin + page - 1) / page * page;
  const uintptr_t hi = (begin + t.nbytes()) / page * page;
  if (hi <= lo) return;
  ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

}  // namespace hone
