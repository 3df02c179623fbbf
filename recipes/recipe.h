// The training recipe: a YAML file parsed once into typed structs, with every default in the
// member initialisers below. recipes/configs/stories260k-shakespeare.yaml documents each key.
// Parsing validates everything before any work starts and reports every problem at once.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "lora/lora.h"
#include "optim/adamw.h"

namespace hone {

struct ModelRecipe {
  std::string path;           // required: HF folder, .safetensors, or llama2.c .bin (absolute)
  std::string tokenizer;      // "" = the one beside / inside the model
  std::string dtype = "f32";  // frozen base weights: f32 | bf16 | f16
  bool operator==(const ModelRecipe&) const = default;
};

struct DataRecipe {
  std::string train;            // required: a file, a folder of .txt/.md files, or a glob
  std::string val;              // "" = none (or split off with val_fraction)
  double val_fraction = 0.0;    // [0, 1); exclusive with val
  std::string format = "text";  // text | completion | alpaca | chat
  // Record key of each logical field (completion: prompt, completion; alpaca: instruction,
  // input, output; chat: messages, role, content); unnamed fields keep their logical name.
  std::map<std::string, std::string> fields;
  std::string train_on = "completions";  // completions (assistant turns) | all
  std::string chat_template;             // "" = the model's own; else llama3|chatml|llama2|mistral
  std::string on_bad_line = "error";     // error (stop at file:line) | skip (count and go on)
  int64_t seq_len = 512;
  bool packing = true;
  uint64_t shuffle_seed = 0;  // defaults to training.seed when not given
  bool add_bos = true;
  bool add_eos = true;
  bool operator==(const DataRecipe&) const = default;
};

struct TrainingRecipe {
  int64_t batch_size = 8;  // sequences per micro-batch
  int64_t grad_accum = 1;  // micro-batches per optimizer step
  // Exactly one is set after parsing; with neither in the recipe, epochs = 1.
  std::optional<int64_t> max_steps;
  std::optional<int64_t> epochs;
  uint64_t seed = 42;
  double grad_clip = 1.0;  // global-norm clip; 0 = off
  int threads = 0;         // 0 = all cores
  // Pipeline parallel under MPI: the blocks are split across this many ranks (embedding on the
  // first, final norm + LM head + loss on the last). The remaining factor of the rank count is
  // data parallel: ranks = pipeline_stages × data-parallel degree. 1 = no pipeline.
  int64_t pipeline_stages = 1;
  // Keep only each block's input in forward and recompute the block in backward: activation
  // memory of one block instead of all, for one more forward. Gradients are unchanged.
  bool activation_checkpointing = false;
  // The LM head and the cross-entropy fused and tiled, so the (tokens × vocab) logits never
  // exist, for one more head product in backward: "auto" from 1 GiB of logits, "true" always,
  // "false" never.
  std::string fused_lm_head = "auto";
  // The frozen-base products' arithmetic: "f32", "bf16" (bf16 inputs, f32 accumulation; the
  // adapters, norms, attention, loss and optimizer stay f32) or "auto" (bf16 where this CPU
  // runs it faster: kernels/compute_choice.h).
  std::string compute_dtype = "auto";
  // Logit bytes from which the head is fused (Transformer::set_fused_loss_bytes): 0 = always.
  int64_t fused_loss_bytes() const;
  bool operator==(const TrainingRecipe&) const = default;
};

struct OptimizerRecipe {
  std::string name = "adamw";  // adamw | sgd
  double lr = AdamWConfig{}.lr;
  double beta1 = AdamWConfig{}.beta1;
  double beta2 = AdamWConfig{}.beta2;
  double eps = AdamWConfig{}.eps;
  double weight_decay = AdamWConfig{}.weight_decay;
  double momentum = 0.0;  // sgd only
  AdamWConfig adamw() const { return {lr, beta1, beta2, eps, weight_decay}; }
  bool operator==(const OptimizerRecipe&) const = default;
};

struct SchedulerRecipe {
  std::string name = "cosine";  // constant | linear | cosine, after a linear warmup
  int64_t warmup_steps = 0;
  double min_lr = 0.0;  // where linear and cosine end
  bool operator==(const SchedulerRecipe&) const = default;
};

struct EvalRecipe {
  int64_t every = 0;        // steps between evaluations; 0 = only at the end
  int64_t max_batches = 0;  // 0 = the whole validation set
  bool operator==(const EvalRecipe&) const = default;
};

struct CheckpointRecipe {
  std::string dir;    // defaults to <output.dir>/checkpoints
  int64_t every = 0;  // steps between checkpoints; 0 = only at the end (and on interrupt)
  int64_t keep = 2;   // newest N kept; 0 = keep all
  bool operator==(const CheckpointRecipe&) const = default;
};

struct OutputRecipe {
  std::string dir;  // required: the final adapter goes here
  bool operator==(const OutputRecipe&) const = default;
};

struct LoggingRecipe {
  int64_t every = 10;        // steps between progress lines / metric records
  std::string metrics_file;  // defaults to <output.dir>/metrics.jsonl
  bool operator==(const LoggingRecipe&) const = default;
};

// Every path is absolute and normalised after parsing.
struct RecipeConfig {
  ModelRecipe model;
  LoraConfig lora;  // lora.seed defaults to training.seed when not given
  DataRecipe data;
  TrainingRecipe training;
  OptimizerRecipe optimizer;
  SchedulerRecipe scheduler;
  EvalRecipe eval;
  CheckpointRecipe checkpoint;
  OutputRecipe output;
  LoggingRecipe logging;
  // Where the recipe came from, for messages; not part of the recipe (ignored by == and to_yaml).
  std::string source;

  bool operator==(const RecipeConfig& o) const;
};

// Reads and parses a recipe file, then applies `overrides` ("key.path=value", YAML values, e.g.
// "lora.targets=[q_proj,v_proj]"). Relative paths in the file resolve against the file's folder,
// those in overrides against the current directory. Throws one Error listing every problem, each
// on its own line, prefixed by the file name (or by "override KEY=VALUE").
RecipeConfig load_recipe(const std::string& path, const std::vector<std::string>& overrides = {});

// The same from text: `source_name` prefixes messages, `base_dir` anchors relative paths.
// Pure: touches no file (see check_recipe_paths).
RecipeConfig parse_recipe(const std::string& yaml_text, const std::string& source_name,
                          const std::string& base_dir,
                          const std::vector<std::string>& overrides = {});

// Throws one Error naming every input (model, tokenizer, train/val data) that does not exist.
void check_recipe_paths(const RecipeConfig& cfg);

// The resolved recipe, every field included, as YAML that parses back to an equal config.
std::string to_yaml(const RecipeConfig& cfg);

}  // namespace hone
