// A training run's complete state in one checkpoint file: the adapter arena, the optimizer's
// moments and step, the data cursor, the dropout RNG, the resolved recipe and the metrics so far.
// Resuming restores all of it, so the resumed run continues bit for bit.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "recipes/checkpoint.h"
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

// The whole model's adapter arena and optimizer state, gathered from a pipeline's stages.
struct WholeState {
  Tensor values;                            // (P) the whole model's arena
  std::map<std::string, Tensor> optimizer;  // as Optimizer::state(), whole-arena moments
};

// `step` = optimizer steps completed. Written atomically. `whole`, on a pipeline stage, holds the
// whole model's arenas (gather_whole_state), so the file is the one a single process writes.
void save_run_checkpoint(const Run& run, int64_t step, const std::string& metrics_jsonl,
                         const std::string& path, const WholeState* whole = nullptr);

// A checkpoint read, verified (checksums) and parsed, before any model or data is loaded.
struct ResumePoint {
  std::string path;
  CheckpointData data;
  RecipeConfig recipe;  // the resolved recipe the checkpoint's run was trained with
  int64_t step = 0;     // optimizer steps completed
  int64_t total_steps = 0;
};

// Errors name the file and the field (a corrupt file, an unknown format, a malformed number).
ResumePoint open_run_checkpoint(const std::string& path);

// After the data is known (epochs -> steps): refuses a run shorter than the checkpoint's step;
// returns a warning when the run's length changed, else "".
std::string check_resume_length(const ResumePoint& p, int64_t total_steps);

// Restores a checkpoint into a prepared run. Refuses, naming what differs, a checkpoint whose
// model, LoRA shape, data or optimizer differ from the recipe. Returns the completed step count;
// `metrics_jsonl` receives the metrics recorded up to then. On a pipeline stage, the stage's
// slice of the whole-model arenas is taken (a checkpoint of any layout resumes on any other).
int64_t restore_run_checkpoint(Run& run, const ResumePoint& p, std::string* metrics_jsonl);

}  // namespace hone
