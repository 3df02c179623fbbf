// Everything a run needs, built from a validated recipe: the base model, its tokenizer, the
// adapters, the data and the optimizer. Shared by `hone train` and `hone eval`.
#pragma once

#include <memory>
#include <string>

#include "data/loader.h"
#include "data/text_dataset.h"
#include "data/tokenizer.h"
#include "lora/lora.h"
#include "model/io/model_files.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"
#include "recipes/recipe.h"

namespace hone {

struct Run {
  RecipeConfig cfg;
  ModelConfig model_config;
  std::unique_ptr<Transformer> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<LoraAdapters> adapters;  // null for evaluation of the base model
  TrainValSplit data;
  std::unique_ptr<DataLoader> loader;
  std::unique_ptr<Optimizer> optimizer;
  ScheduleConfig schedule;
  int64_t total_steps = 0;
  int64_t steps_per_epoch = 0;
  // Identities a checkpoint must match to be resumed (see run_checkpoint.h).
  std::string model_id, lora_id, data_id;
};

// Storage dtype of the frozen base from a recipe string (f32 | bf16 | f16).
DType weight_dtype_from(const std::string& s);

// Loads the model (and tokenizer) a recipe names. The tokenizer is model.tokenizer, or for a
// folder the tokenizer file inside it (llama2.c tok*.bin for now). A partial `range` loads a
// pipeline stage: only that stage's tensors are read, checked (shapes, finite values) and kept.
void load_base(Run& run, const LayerRange& range = {});
// The text-data options a recipe implies (data.format text), the token cache keyed by the
// files of the tokenizer the run uses.
TextDataOptions text_data_options(const RecipeConfig& cfg);
// Reads, tokenizes, packs and splits the recipe's data; says what it read on stderr unless quiet
// (warnings always).
void load_data(Run& run, bool quiet = false);
// Adapters, loader, optimizer and schedule for training.
void prepare_training(Run& run);

}  // namespace hone
