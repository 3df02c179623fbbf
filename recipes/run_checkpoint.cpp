#include "recipes/run_checkpoint.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "recipes/checkpoint.h"

namespace hone {

namespace fs = std::filesystem;

namespace {

// 2: every dataset checksummed (checkpoint.h), total_steps stored. Format 1 files have no
// checksums and are refused by read_checkpoint.
constexpr const char* kFormat = "hone-checkpoint-2";

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

// A non-negative decimal integer filling the whole field, else an error naming file and field.
uint64_t parse_count(const std::string& text, const std::string& path, const std::string& field,
                     uint64_t max = UINT64_MAX) {
  uint64_t v = 0;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc() || p != end || v > max)
    throw Error(path + ": " + field + ": expected a non-negative integer" +
                (v > max || ec == std::errc::result_out_of_range ? " in range" : "") + " (got \"" +
                text + "\")");
  return v;
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
                         const std::string& path, const WholeState* whole) {
  CheckpointData d;
  d.tensors["lora/values"] = whole ? whole->values : run.adapters->values();
  for (const auto& [name, t] : whole ? whole->optimizer : run.optimizer->state())
    d.tensors["optimizer/" + name] = t;
  const DataLoader::Cursor c = run.loader->cursor();
  d.strings["format"] = kFormat;
  d.strings["step"] = std::to_string(step);
  d.strings["total_steps"] = std::to_string(run.total_steps);
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

ResumePoint open_run_checkpoint(const std::string& path) {
  ResumePoint p;
  p.path = path;
  p.data = read_checkpoint(path);
  const CheckpointData& d = p.data;
  if (need(d, "format", path) != kFormat)
    throw Error(path + ": format: unsupported checkpoint format \"" + d.strings.at("format") +
                "\" (this hone reads " + kFormat + ")");
  const auto max_i64 = static_cast<uint64_t>(INT64_MAX);
  p.step = static_cast<int64_t>(parse_count(need(d, "step", path), path, "step", max_i64));
  p.total_steps =
      static_cast<int64_t>(parse_count(need(d, "total_steps", path), path, "total_steps", max_i64));
  parse_count(need(d, "dropout_rng", path), path, "dropout_rng");
  std::istringstream cur(need(d, "data_cursor", path));
  std::string f[3], extra;
  if (!(cur >> f[0] >> f[1] >> f[2]) || (cur >> extra))
    throw Error(path + ": data_cursor: expected \"epoch position seed\" (got \"" +
                d.strings.at("data_cursor") + "\")");
  for (const std::string& x : f) parse_count(x, path, "data_cursor");
  p.recipe = parse_recipe(need(d, "recipe", path), path + ": recipe", "/");
  return p;
}

std::string check_resume_length(const ResumePoint& p, int64_t total_steps) {
  if (total_steps < p.step)
    throw Error(p.path + ": cannot resume: the recipe's run of " + std::to_string(total_steps) +
                " steps is shorter than the checkpoint's step " + std::to_string(p.step) +
                ": raise training.max_steps / training.epochs, or resume an earlier checkpoint "
                "(--resume PATH)");
  if (total_steps == p.total_steps) return "";
  return "the run's length (training.max_steps / training.epochs) changed (checkpoint: " +
         std::to_string(p.total_steps) + " steps; recipe: " + std::to_string(total_steps) +
         " steps): resuming, but the run is no longer the same run (the learning-rate schedule "
         "spans the new length from here on)";
}

int64_t restore_run_checkpoint(Run& run, const ResumePoint& p, std::string* metrics_jsonl) {
  const std::string& path = p.path;
  const CheckpointData& d = p.data;
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

  // A pipeline stage takes its slice of the whole model's arenas.
  const LoraAdapters& ad = *run.adapters;
  const int64_t whole = ad.full_num_parameters(), at = ad.arena_offset(), P = ad.num_parameters();
  auto mine = [&](const Tensor& t) {
    return t.ndim() == 1 && t.numel() == whole && P != whole ? t.slice0(at, at + P) : t;
  };
  auto it = d.tensors.find("lora/values");
  if (it == d.tensors.end() || it->second.shape() != Shape{whole} ||
      it->second.dtype() != DType::F32)
    throw Error(path + ": lora/values missing or of the wrong shape");
  const Tensor values = mine(it->second);
  std::map<std::string, Tensor> opt_state;
  for (const auto& [name, t] : d.tensors)
    if (name.rfind("optimizer/", 0) == 0) opt_state[name.substr(10)] = mine(t);
  try {
    run.optimizer->load_state(opt_state);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  std::copy_n(values.data<float>(), values.numel(), run.adapters->values().data<float>());

  DataLoader::Cursor c;
  std::istringstream cur(need(d, "data_cursor", path));
  cur >> c.epoch >> c.position >> c.seed;  // checked by open_run_checkpoint
  try {
    run.loader->restore(c);
  } catch (const Error& e) {
    throw Error(path + ": data_cursor: " + e.what());
  }
  run.adapters->dropout_rng().set_state(
      parse_count(need(d, "dropout_rng", path), path, "dropout_rng"));
  if (metrics_jsonl) {
    auto m = d.strings.find("metrics");
    *metrics_jsonl = m == d.strings.end() ? "" : m->second;
  }
  return p.step;
}

}  // namespace hone
