// A training run's complete state in one checkpoint file: the adapter arena, the optimizer's
// moments and step, the data cursor, the dropout RNG, the resolved recipe and the metrics so far.
// Resuming restores all of it, so the resumed run continues bit for bit.
#pragma once

#include <string>
#include <vector>

#include "recipes/run_setup.h"

namespace hone {

// <dir>/step-00000120.h5
std::string checkpoint_path(const std::string& dir, int64_t step);
// Checkpoints in `dir`, oldest first (by step). Temporary files are ignored.
std::vector<std::string> list_checkpoints(const std::string& dir);
// The newest checkpoint in `dir`, or "" when there is none.
std::string latest_checkpoint(const std::string& dir);
// Deletes all but the newest `keep` checkpoints (keep <= 0: keep all).
void prune_checkpoints(const std::string& dir, int64_t keep);

// `step` = optimizer steps completed. Written atomically.
void save_run_checkpoint(const Run& run, int64_t step, const std::string& metrics_jsonl,
                         const std::string& path);

// Restores a checkpoint into a prepared run. Refuses, naming what differs, a checkpoint whose
// model, LoRA shape, data or optimizer differ from the recipe. Returns the completed step count;
// `metrics_jsonl` receives the metrics recorded up to then.
int64_t restore_run_checkpoint(Run& run, const std::string& path, std::string* metrics_jsonl);

}  // namespace hone
