// The slow quickstart tests' harness: the quickstart recipe trained by the real `hone` binary with
// key=value overrides, and the held-out loss it logged.
#pragma once

#include <cmath>
#include <filesystem>
#include <sstream>
#include <string>

#include "hone_process.h"

namespace hone::test {

// `hone train recipes/configs/quickstart.yaml OVERRIDES output.dir=OUT`.
inline Outcome train_quickstart(const std::string& overrides, const std::filesystem::path& out) {
  return run_hone("train " + std::string(HONE_SOURCE_DIR) + "/recipes/configs/quickstart.yaml " +
                  overrides + " output.dir=" + out.string());
}

// The last "val_loss" in a metrics.jsonl (NaN when there is none).
inline double last_val_loss(const std::string& path) {
  std::istringstream in(slurp(path));
  std::string line;
  double v = std::nan("");
  const std::string key = "\"val_loss\":";
  while (std::getline(in, line)) {
    auto p = line.find(key);
    if (p != std::string::npos) v = std::stod(line.substr(p + key.size()));
  }
  return v;
}

}  // namespace hone::test
