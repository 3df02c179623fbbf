// Small training runs for tests: a recipe over the stories260K model and the tinyshakespeare
// slices shipped in the repository.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "hone_process.h"

extern char** environ;

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

// Starts `hone -q train recipe [--resume]` in the background, stderr to /dev/null; returns its pid.
inline pid_t spawn_train(const std::string& recipe, bool resume = false) {
  std::string bin = std::string(HONE_BINARY_DIR) + "/hone";
  std::vector<std::string> args = {bin, "-q", "train", recipe};
  if (resume) args.push_back("--resume");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  posix_spawn(&pid, bin.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

// Waits (up to 30 s) until `path` exists or the process ends; true when it appeared.
inline bool wait_for(const std::string& path, pid_t pid) {
  for (int i = 0; i < 6000; ++i) {
    if (std::filesystem::exists(path)) return true;
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) return std::filesystem::exists(path);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

}  // namespace hone::test
