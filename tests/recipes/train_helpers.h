// Small training runs for tests: a recipe over the stories260K model and the tinyshakespeare
// slices shipped in the repository.
#pragma once

#include <fstream>
#include <string>

#include "hone_process.h"

namespace hone::test {

inline std::string repo_file(const std::string& rel) {
  return std::string(HONE_SOURCE_DIR) + "/" + rel;
}

// A recipe training stories260K for `steps` steps into `out`; `extra` is appended YAML.
inline std::string write_small_recipe(const std::string& path, const std::string& out, int steps,
                                      const std::string& extra = "") {
  std::ofstream f(path);
  f << "model:\n  path: " << repo_file("data/samples/stories260K/stories260K.bin")
    << "\n  tokenizer: " << repo_file("data/samples/stories260K/tok512.bin") << "\n"
    << "lora:\n  rank: 4\n  alpha: 8\n  dropout: 0.1\n  targets: all-linear\n"
    << "data:\n  train: " << repo_file("data/samples/tinyshakespeare/train.txt")
    << "\n  val: " << repo_file("data/samples/tinyshakespeare/val.txt") << "\n  seq_len: 64\n"
    << "training:\n  batch_size: 4\n  max_steps: " << steps << "\n  seed: 7\n  threads: 2\n"
    << "optimizer:\n  lr: 3.0e-3\n  weight_decay: 0.01\n"
    << "scheduler:\n  name: cosine\n  warmup_steps: 2\n"
    << "eval:\n  max_batches: 2\n"
    << "checkpoint:\n  every: 1\n  keep: 3\n"
    << "output:\n  dir: " << out << "\n"
    << "logging:\n  every: 1\n"
    << extra;
  return path;
}

}  // namespace hone::test
