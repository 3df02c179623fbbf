#include "lora/peft.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "autograd/json_parse.h"
#include "model/io/atomic_file.h"
#include "model/io/safetensors.h"

namespace hone {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::vector<std::string> chosen_kinds(const LoraConfig& c) {
  if (c.targets.size() == 1 && c.targets[0] == "all-linear") return lora_target_kinds();
  return c.targets;
}

}  // namespace

void save_peft_adapter(const std::string& dir, const LoraAdapters& adapters,
                       const std::string& base_model) {
  std::map<std::string, Tensor> tensors;
  for (const LoraTensor& t : adapters.tensors()) {
    tensors[LoraAdapters::peft_name(t.module, 'A')] = t.a.value();
    tensors[LoraAdapters::peft_name(t.module, 'B')] = t.b.value();
    if (t.m.defined()) tensors[LoraAdapters::peft_name(t.module, 'm')] = t.m.value();
  }
  save_peft_files(dir, adapters.config(), tensors, base_model);
}

void save_peft_files(const std::string& dir, const LoraConfig& c,
                     const std::map<std::string, Tensor>& tensors, const std::string& base_model) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(dir + ": cannot create folder: " + ec.message());
  json cfg = {
      {"peft_type", "LORA"},
      {"task_type", "CAUSAL_LM"},
      {"base_model_name_or_path", base_model},
      {"r", c.rank},
      {"lora_alpha", c.alpha},
      {"lora_dropout", c.dropout},
      {"target_modules", chosen_kinds(c)},
      {"use_rslora", c.rslora},
      {"use_dora", c.dora},
      {"bias", "none"},
      {"fan_in_fan_out", false},
      {"inference_mode", true},
      {"init_lora_weights", true},
      {"modules_to_save", nullptr},
      {"rank_pattern", json::object()},
      {"alpha_pattern", json::object()},
      {"layers_to_transform", c.layers.empty() ? json(nullptr) : json(c.layers)},
      {"revision", nullptr},
  };
  write_safetensors((fs::path(dir) / "adapter_model.safetensors").string(), tensors,
                    {{"format", "pt"}});
  const std::string text = cfg.dump(2) + "\n";
  write_file_atomically((fs::path(dir) / "adapter_config.json").string(),
                        [&](AtomicWriter& w) { w.write(text); });
}

std::string read_peft_base_model(const std::string& dir) {
  const std::string path = (fs::path(dir) / "adapter_config.json").string();
  const json j = parse_json_file<json>(path);
  const auto it = j.find("base_model_name_or_path");
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

LoraConfig read_peft_config(const std::string& dir) {
  const std::string path = (fs::path(dir) / "adapter_config.json").string();
  if (!std::ifstream(path))
    throw Error(path + ": no such file (is " + dir + " a PEFT adapter folder?)");
  json j = parse_json_file<json>(path);
  auto field = [&](const char* key) -> const json& {
    if (!j.contains(key)) throw Error(path + ": missing field \"" + std::string(key) + "\"");
    return j.at(key);
  };
  // A JSON number as an int in [lo, hi], or an error naming the field: nlohmann's get<int>() on a
  // fraction or an out-of-range value converts with undefined behaviour.
  auto integer = [&](const std::string& key, const json& v, int64_t lo, int64_t hi) -> int64_t {
    const bool fits = v.is_number_unsigned() ? v.get<uint64_t>() <= static_cast<uint64_t>(hi)
                                             : v.is_number_integer() && v.get<int64_t>() >= lo &&
                                                   v.get<int64_t>() <= hi;
    if (!fits)
      throw Error(path + ": " + key + ": expected an integer in [" + std::to_string(lo) + ", " +
                  std::to_string(hi) + "], got " + v.dump());
    return v.is_number_unsigned() ? static_cast<int64_t>(v.get<uint64_t>()) : v.get<int64_t>();
  };
  try {
    if (j.value("peft_type", "LORA") != "LORA")
      throw Error(path + ": peft_type: only LORA is supported (got " + j["peft_type"].dump() + ")");
    if (j.contains("bias") && j["bias"] != "none")
      throw Error(path + ": bias: only \"none\" is supported (got " + j["bias"].dump() + ")");
    for (const char* k : {"rank_pattern", "alpha_pattern"})
      if (j.contains(k) && j[k].is_object() && !j[k].empty())
        throw Error(path + ": " + k + ": per-module patterns are not supported yet");
    if (j.contains("modules_to_save") && !j["modules_to_save"].is_null() &&
        !j["modules_to_save"].empty())
      throw Error(path + ": modules_to_save: not supported (only LoRA tensors are loaded)");
    LoraConfig c;
    c.rank = integer("r", field("r"), INT64_MIN, INT64_MAX);
    c.alpha = field("lora_alpha").get<double>();
    c.dropout = j.value("lora_dropout", 0.0);
    c.rslora = j.value("use_rslora", false);
    c.dora = j.value("use_dora", false);
    const json& tm = field("target_modules");
    if (tm.is_string()) {
      c.targets = {tm.get<std::string>()};  // "all-linear"; PEFT's regex form is refused
    } else {
      c.targets = tm.get<std::vector<std::string>>();
      std::sort(c.targets.begin(), c.targets.end());
    }
    if (j.contains("layers_to_transform") && !j["layers_to_transform"].is_null()) {
      const json& layers = j["layers_to_transform"];
      if (layers.is_array()) {
        for (const json& l : layers)
          c.layers.push_back(static_cast<int>(integer("layers_to_transform", l, 0, INT32_MAX)));
      } else {
        c.layers = {static_cast<int>(integer("layers_to_transform", layers, 0, INT32_MAX))};
      }
    }
    try {
      c.validate();
    } catch (const Error& e) {
      throw Error(path + ": " + e.what());
    }
    return c;
  } catch (const json::exception& e) {
    throw Error(path + ": " + e.what());
  }
}

void load_peft_weights(LoraAdapters& adapters, const std::string& safetensors_path,
                       const std::set<std::string>& elsewhere) {
  SafetensorsFile f = read_safetensors(safetensors_path);
  std::set<std::string> used;
  for (const LoraTensor& t : adapters.tensors()) {
    for (auto [which, var] : {std::pair{'A', t.a}, std::pair{'B', t.b}, std::pair{'m', t.m}}) {
      if (!var.defined()) continue;  // m without DoRA
      std::string name = LoraAdapters::peft_name(t.module, which);
      auto it = f.tensors.find(name);
      if (it == f.tensors.end()) throw Error(safetensors_path + ": missing tensor " + name);
      if (it->second.shape() != var.shape())
        throw Error(safetensors_path + ": " + name + " has shape " + shape_str(it->second.shape()) +
                    ", the model needs " + shape_str(var.shape()));
      Tensor src = it->second.to(var.dtype());
      std::memcpy(var.value().raw(), src.raw(), src.nbytes());
      used.insert(name);
    }
  }
  for (const auto& [name, t] : f.tensors)
    if (!used.count(name) && !elsewhere.count(name))
      throw Error(safetensors_path + ": tensor " + name +
                  " matches no adapted module of the model");
}

std::unique_ptr<LoraAdapters> load_peft_adapter(const std::string& dir, Transformer& model) {
  LoraConfig c = read_peft_config(dir);
  auto adapters = std::make_unique<LoraAdapters>(model, c);
  adapters->set_training(false);
  // A pipeline stage takes its layers' tensors; the others' belong to the other stages.
  std::set<std::string> elsewhere;
  if (!model.is_full()) {
    const LoraAdapters whole(model.config(), c);
    for (const LoraTensor& t : whole.tensors())
      for (char which : {'A', 'B', 'm'}) elsewhere.insert(LoraAdapters::peft_name(t.module, which));
  }
  load_peft_weights(*adapters, (fs::path(dir) / "adapter_model.safetensors").string(), elsewhere);
  return adapters;
}

}  // namespace hone
