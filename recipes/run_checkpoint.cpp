#include "recipes/run_checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "recipes/checkpoint.h"

namespace hone {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "hone-checkpoint-1";

int64_t step_of(const fs::path& p) {
  const std::string name = p.filename().string();
  if (name.size() != 16 || name.rfind("step-", 0) != 0 || p.extension() != ".h5") return -1;
  try {
    return std::stoll(name.substr(5, 8));
  } catch (...) {
    return -1;
  }
}

const std::string& need(const CheckpointData& d, const std::string& key, const std::string& path) {
  auto it = d.strings.find(key);
  if (it == d.strings.end()) throw Error(path + ": not a hone checkpoint (no \"" + key + "\")");
  return it->second;
}

}  // namespace

std::string checkpoint_path(const std::string& dir, int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%08lld.h5", static_cast<long long>(step));
  return (fs::path(dir) / name).string();
}

std::vector<std::string> list_checkpoints(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return {};
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    int64_t s = step_of(e.path());
    if (s >= 0 && e.is_regular_file()) found.emplace_back(s, e.path().string());
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& [s, p] : found) out.push_back(p);
  return out;
}

std::string latest_checkpoint(const std::string& dir) {
  auto all = list_checkpoints(dir);
  return all.empty() ? std::string() : all.back();
}

void prune_checkpoints(const std::string& dir, int64_t keep) {
  if (keep <= 0) return;
  auto all = list_checkpoints(dir);
  for (size_t i = 0; i + static_cast<size_t>(keep) < all.size(); ++i) {
    std::error_code ec;
    fs::remove(all[i], ec);
  }
}

void save_run_checkpoint(const Run& run, int64_t step, const std::string& metrics_jsonl,
                         const std::string& path) {
  CheckpointData d;
  d.tensors["lora/values"] = run.adapters->values();
  for (const auto& [name, t] : run.optimizer->state()) d.tensors["optimizer/" + name] = t;
  const DataLoader::Cursor c = run.loader->cursor();
  d.strings["format"] = kFormat;
  d.strings["step"] = std::to_string(step);
  d.strings["optimizer"] = run.optimizer->name();
  d.strings["data_cursor"] =
      std::to_string(c.epoch) + " " + std::to_string(c.position) + " " + std::to_string(c.seed);
  d.strings["dropout_rng"] = std::to_string(run.adapters->dropout_rng().state());
  d.strings["model_id"] = run.model_id;
  d.strings["lora_id"] = run.lora_id;
  d.strings["data_id"] = run.data_id;
  d.strings["recipe"] = to_yaml(run.cfg);
  d.strings["metrics"] = metrics_jsonl;
  write_checkpoint(path, d);
}

int64_t restore_run_checkpoint(Run& run, const std::string& path, std::string* metrics_jsonl) {
  CheckpointData d = read_checkpoint(path);
  if (need(d, "format", path) != kFormat)
    throw Error(path + ": unsupported checkpoint format \"" + d.strings["format"] + "\"");
  auto same = [&](const char* key, const std::string& now, const char* what) {
    const std::string& then = need(d, key, path);
    if (then != now)
      throw Error(path + ": cannot resume: the " + what +
                  " differs from the recipe's (checkpoint: " + then + "; recipe: " + now + ")");
  };
  same("model_id", run.model_id, "model");
  same("lora_id", run.lora_id, "LoRA shape");
  same("data_id", run.data_id, "training data");
  same("optimizer", run.optimizer->name(), "optimizer");

  auto it = d.tensors.find("lora/values");
  if (it == d.tensors.end() || it->second.shape() != run.adapters->values().shape() ||
      it->second.dtype() != DType::F32)
    throw Error(path + ": lora/values missing or of the wrong shape");
  std::map<std::string, Tensor> opt_state;
  for (const auto& [name, t] : d.tensors)
    if (name.rfind("optimizer/", 0) == 0) opt_state[name.substr(10)] = t;
  try {
    run.optimizer->load_state(opt_state);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  std::copy_n(it->second.data<float>(), it->second.numel(), run.adapters->values().data<float>());

  DataLoader::Cursor c;
  std::istringstream cur(need(d, "data_cursor", path));
  if (!(cur >> c.epoch >> c.position >> c.seed)) throw Error(path + ": bad data_cursor");
  run.loader->restore(c);
  run.adapters->dropout_rng().set_state(std::stoull(need(d, "dropout_rng", path)));
  if (metrics_jsonl) *metrics_jsonl = d.strings["metrics"];
  return std::stoll(need(d, "step", path));
}

}  // namespace hone
