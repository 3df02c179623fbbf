#include "recipes/resume_policy.h"

#include <map>
#include <sstream>

namespace hone {

namespace {

enum class Change {
  Refuse,   // the saved state depends on it
  Warn,     // a legitimate change; the run is no longer the same run
  Bitwise,  // the same arithmetic in another order: no longer bitwise the same run
  Path,     // a file moved; its contents are checked (data) or its shape is (model)
  Allow,    // cannot touch the adapter
};

// Per key, then per section; a key of a section not listed (a key added later) is refused until
// it is classified here.
Change policy(const std::string& key) {
  static const std::map<std::string, Change> keys = {
      {"model.path", Change::Path},
      {"model.tokenizer", Change::Path},
      {"data.train", Change::Path},
      {"data.val", Change::Warn},
      {"data.on_bad_line", Change::Allow},  // the token stream itself is compared (data_id)
      {"training.grad_clip", Change::Warn},
      {"training.threads", Change::Bitwise},
      {"training.fused_lm_head", Change::Bitwise},
      {"training.compute_dtype", Change::Bitwise},
      {"training.activation_checkpointing", Change::Allow},  // the same gradients, recomputed
      {"training.pipeline_stages", Change::Allow},           // the same arithmetic on other ranks
      {"optimizer.name", Change::Refuse},
  };
  static const std::map<std::string, Change> sections = {
      {"model", Change::Refuse},    {"lora", Change::Refuse},      {"data", Change::Refuse},
      {"training", Change::Refuse}, {"optimizer", Change::Warn},   {"scheduler", Change::Warn},
      {"eval", Change::Allow},      {"checkpoint", Change::Allow}, {"output", Change::Allow},
      {"logging", Change::Allow},
  };
  if (auto it = keys.find(key); it != keys.end()) return it->second;
  auto it = sections.find(key.substr(0, key.find('.')));
  return it == sections.end() ? Change::Refuse : it->second;
}

// "section.key" -> value, from the resolved YAML (two levels, one key per line).
std::map<std::string, std::string> flatten(const RecipeConfig& cfg) {
  std::map<std::string, std::string> out;
  std::istringstream in(to_yaml(cfg));
  std::string line, section;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    if (line[0] != ' ') {
      section = line.substr(0, colon);
      continue;
    }
    const size_t start = line.find_first_not_of(' ');
    std::string value = colon + 1 < line.size() ? line.substr(colon + 2) : "";
    out[section + "." + line.substr(start, colon - start)] = value;
  }
  return out;
}

}  // namespace

std::vector<std::string> check_resume_changes(const std::string& checkpoint,
                                              const RecipeConfig& then, const RecipeConfig& now,
                                              int64_t step) {
  const auto a = flatten(then), b = flatten(now);
  std::vector<std::string> refused, warnings;
  for (const auto& [key, old_value] : a) {
    // The run's length is compared as a step count (max_steps, or epochs once the data is
    // known: see check_resume_length).
    if (key == "training.max_steps" || key == "training.epochs") continue;
    auto it = b.find(key);
    const std::string new_value = it == b.end() ? "(none)" : it->second;
    if (new_value == old_value) continue;
    const std::string change =
        key + " changed (checkpoint: " + old_value + "; recipe: " + new_value + ")";
    switch (policy(key)) {
      case Change::Refuse:
        refused.push_back(change);
        break;
      case Change::Warn:
        warnings.push_back(change + ": resuming, but the run is no longer the same run");
        break;
      case Change::Bitwise:
        warnings.push_back(change +
                           ": resuming, but the run is no longer the same run bit for bit "
                           "(the same arithmetic, rounded in another order)");
        break;
      case Change::Path:
        warnings.push_back(change + ": resuming, as the " +
                           (key.rfind("model.", 0) == 0 ? "model's shape" : "data's tokens") +
                           " match; if the contents differ, the run is no longer the same run");
        break;
      case Change::Allow:
        break;
    }
  }
  if (now.training.max_steps && *now.training.max_steps < step)
    refused.push_back("training.max_steps: " + std::to_string(*now.training.max_steps) +
                      " is below the checkpoint's step " + std::to_string(step) +
                      " (the run has trained past it): raise it to at least " +
                      std::to_string(step) + ", or resume an earlier checkpoint (--resume PATH)");
  if (!refused.empty()) {
    std::string msg = checkpoint +
                      ": cannot resume: the recipe changes what the checkpoint's run "
                      "depends on, so it would not continue that run:";
    for (const std::string& r : refused) msg += "\n  " + r;
    msg += "\nKeep these as they were, or start a new run in a new output.dir";
    throw Error(msg);
  }
  return warnings;
}

}  // namespace hone
