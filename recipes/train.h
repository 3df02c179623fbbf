// `hone train recipe.yaml [key=value ...] [--resume [PATH]]`: the training loop, top to bottom.
#pragma once

#include <string>
#include <vector>

namespace hone {

struct TrainOptions {
  std::string recipe;
  std::vector<std::string> overrides;  // "key.path=value"
  std::string resume;                  // "" = fresh run, "latest", or a checkpoint path
  bool quiet = false;                  // no progress lines (errors still go to stderr)
  // Bytes the run may use: the memory planner refuses a run predicted to need more. 0 = what
  // the machine has available now (MemAvailable, or the cgroup limit); -1 = no check.
  int64_t memory_limit = 0;
};

struct TrainSummary {
  int64_t steps_done = 0;
  int64_t total_steps = 0;
  bool interrupted = false;  // stopped by SIGINT/SIGTERM after saving a checkpoint
  double last_loss = 0;
  double val_before = -1;  // held-out loss before training (-1: no validation data / resumed)
  double val_after = -1;
  std::string adapter_dir;
  std::string last_checkpoint;
};

TrainSummary run_train(const TrainOptions& options);

// `hone eval`: held-out loss and perplexity of the recipe's model, with `adapter_dir` (a PEFT
// folder) applied when given. Prints one line; returns the loss. `quiet` (hone -q) drops the
// description of the data read.
double run_eval(const std::string& recipe, const std::vector<std::string>& overrides,
                const std::string& adapter_dir, bool quiet = false);

// `hone eval --protocol llama-perplexity`: llama.cpp's perplexity protocol (recipes/
// llama_perplexity.h) on `text_file` (default: the recipe's data.val file) at `n_ctx` tokens a
// chunk (0: data.seq_len), at most `max_chunks` chunks (0: all), with `adapter_dir` applied when
// given. Prints one line; returns the perplexity.
struct LlamaPerplexityOptions {
  std::string recipe;
  std::vector<std::string> overrides;
  std::string adapter_dir;
  std::string text_file;
  int64_t n_ctx = 0;
  int64_t max_chunks = 0;
};
double run_eval_llama_perplexity(const LlamaPerplexityOptions& options);

}  // namespace hone
