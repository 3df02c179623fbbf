// The memory planner: the peak memory of a LoRA training run, predicted from the model's shape and
// the recipe before anything is loaded, term by term (weights, adapters, optimizer state,
// activations, LM head, workspace, runtime), and a step-time estimate. `hone plan` prints it;
// `hone train` refuses a run predicted not to fit, with computed alternatives.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "lora/lora.h"
#include "model/config.h"
#include "model/transformer.h"

namespace hone {

struct RecipeConfig;

struct PlanSpec {
  ModelConfig model;
  DType weight_dtype = DType::F32;  // storage of the frozen projections and embedding
  // The frozen-base products are bf16: f32 projections are then held as bf16
  // (projection_storage in model/transformer.h).
  bool bf16_products = false;
  // Bytes of the base as read, held while it is converted to weight_dtype (a memory-mapped file
  // is wholly touched by the conversion); 0 when the storage is the source's own.
  int64_t source_bytes = 0;
  LoraConfig lora;
  int64_t batch = 1, seq = 512;
  bool checkpointing = false;
  int optimizer_states = 2;  // per trainable parameter: AdamW 2 (m, v), SGD 1 with momentum
  int threads = 1;
  int64_t fused_loss_bytes = Transformer::kFusedLossBytes;
  int64_t runtime_bytes = 0;  // the process before any model memory (libraries, BLAS buffers)
  int64_t data_bytes = 0;     // the training data held for the run, see planned_data_bytes
  // Loading JSONL data: the tokenized records, alive while they are packed into windows.
  int64_t data_load_bytes = 0;
  int64_t tokenizer_bytes = 0;  // the loaded tokenizer's tables, see planned_tokenizer_bytes
  // Converted tensors' source bytes by name (their sum is source_bytes), so a pipeline stage
  // counts only its own.
  std::vector<std::pair<std::string, int64_t>> source_tensors;
  // One pipeline stage of a distributed run (recipes/parallel/layout.h): blocks [first_layer,
  // first_layer + stage_layers) (-1: all), the embedding and the final norm + LM head only where
  // held; `in_flight` micro-batches' activations alive at once; the data-parallel exchange of
  // `data_parallel` replicas, each with `local_micro_batches` micro-batch gradients kept apart.
  int64_t first_layer = 0, stage_layers = -1;
  bool holds_embedding = true, holds_head = true;
  int64_t in_flight = 1;
  int64_t data_parallel = 1, local_micro_batches = 1;
};

struct MemoryPlan {
  int64_t weights = 0;        // frozen base as stored
  int64_t load_extra = 0;     // source held during conversion (load phase only)
  int64_t lora_params = 0;    // trainable parameters
  int64_t adapters = 0;       // their values and gradients
  int64_t optimizer = 0;      // optimizer state
  int64_t activations = 0;    // saved by the forward for the backward
  int64_t backward = 0;       // gradients alive at once during a block's backward
  int64_t lm_head = 0;        // logits and their gradient, or the fused head's chunks
  int64_t workspace = 0;      // weight-conversion tiles and the like
  int64_t runtime = 0;        // as given
  int64_t data = 0;           // the training data held for the run, as given
  int64_t data_load = 0;      // tokenized JSONL records while packing (load phase only)
  int64_t tokenizer = 0;      // the tokenizer's tables, as given
  int64_t dp_buffers = 0;     // gradient fold accumulator / data-parallel exchange buffers
  int64_t load_peak = 0;      // weights + runtime + tokenizer + max(load_extra, data + data_load)
  int64_t train_peak = 0;     // the step's peak
  int64_t peak = 0;           // max of the two
  bool fused_head = false;    // the LM head + cross-entropy run chunked
  double model_flops = 0;     // per step, by bench/compare_table.py's formula
  double executed_flops = 0;  // per step, with recompute (checkpointing, fused head)
};

MemoryPlan plan_memory(const PlanSpec& spec);

// Bytes of the frozen base as Transformer stores it (projections/embedding in weight_dtype, a
// quantized weight whose rows are not whole 32-blocks in BF16, norms and biases F32).
int64_t planned_weight_bytes(const ModelConfig& cfg, DType weight_dtype);
// Bytes of the frozen weights Transformer converts when built from tensors stored as `source`
// (those whose storage differs): held alongside while it converts.
int64_t planned_converted_bytes(const PlanSpec& s, DType source);
// The same for the tensors a pipeline stage holds (PlanSpec's stage fields).
int64_t planned_weight_bytes(const PlanSpec& spec);
// Whether the stage `spec` describes holds the tensor of this HF name.
bool stage_holds_tensor(const PlanSpec& spec, const std::string& name);

// Resident bytes of this process now (VmRSS), and the memory a new allocation can count on:
// MemAvailable, lowered by a cgroup memory limit when one is set.
int64_t current_rss_bytes();
// PlanSpec::runtime_bytes for a process whose resident size is `rss_now` before any model
// memory: plus what OpenBLAS and TBB touch on their first products (4 MiB, measured on the
// stories260K bench at 1 and 2 threads).
inline int64_t planned_runtime_bytes(int64_t rss_now) {
  return rss_now + (int64_t{4} << 20);
}
int64_t available_memory_bytes();

// Bytes of a text recipe's token stores (train and val): a valid cached store's exact size, else
// a bound of one token per corpus byte (every tokenizer hone reads gives at most that, plus
// BOS/EOS per document and a little for repaired UTF-8). 0 for JSONL formats.
int64_t planned_data_bytes(const RecipeConfig& cfg, int32_t vocab_size);

// The memory of a JSONL (completion / alpaca / chat) recipe's data, from its files' record counts:
// `held` the packed or padded windows the run keeps (at most one window per record: packing never
// puts less than one record in a window, padding exactly one), `loading` the tokenized records
// alive while they are windowed (at most seq_len + 1 tokens a record, truncation's limit).
struct InstructDataPlan {
  int64_t records = 0;
  int64_t held = 0;
  int64_t loading = 0;
};
InstructDataPlan planned_instruct_bytes(const RecipeConfig& cfg);

// Resident bytes the recipe's tokenizer takes once loaded: it is loaded here and this process's
// resident size measured before and after (its parse's freed temporaries included: they stay in
// the process's heap). 0 when its files are not at hand.
int64_t planned_tokenizer_bytes(const RecipeConfig& cfg);
// What bf16 products add to the process (oneDNN's code and generated kernels, its per-thread
// buffers, the OpenMP runtime): measured by running them at the spec's shapes, 0 when the
// products are f32.
int64_t planned_bf16_runtime_bytes(const PlanSpec& spec, bool bf16);

// The spec a recipe implies, reading only the model's config and tensor headers (no weights).
PlanSpec plan_spec_for(const RecipeConfig& cfg);
// The same for a model of this shape whose files are not at hand: the base is taken to be stored
// as model.dtype already (a q4_0 GGUF for model.dtype q4_0), so nothing is held while converting.
PlanSpec plan_spec_for_shape(const RecipeConfig& cfg, const ModelConfig& model);

// The report `hone plan` prints: one line per term, the peak, the step estimate, and what fits.
// gflops: the measured matrix-product rate the step estimate divides by.
std::string plan_report(const PlanSpec& spec, const MemoryPlan& plan, double gflops,
                        int64_t available);

// Throws Error when the recipe's predicted peak exceeds `available` bytes: the message gives the
// prediction and concrete alternatives (activation checkpointing, a lower-bit base, half the
// sequence length, half the batch) with their predicted peaks.
void check_plan_fits(const RecipeConfig& cfg, const PlanSpec& spec, int64_t available);

// "1.23 GiB"
std::string human_bytes(int64_t bytes);

// "16G", "512M", "1.5GiB", "123456789" -> bytes (K/M/G/T binary); "none" -> -1 (no check).
// Throws Error naming `what` otherwise.
int64_t parse_memory_size(const std::string& text, const std::string& what);

struct PlanOptions {
  std::string recipe;
  std::vector<std::string> overrides;
  int64_t memory_limit = 0;  // as TrainOptions (0: what the machine has available; -1: no check)
  int64_t ranks = 0;         // 0: as many as stages
  int64_t stages = 0;        // 0: the recipe's training.pipeline_stages
  std::string link = "25Gb/s";
  double gflops = 0;  // one rank's matrix-product rate; 0: time this machine's gemm
  std::string shape;  // a model_shape() name planned instead of the recipe's model files
};

// `hone plan recipe.yaml [key=value ...] [--ranks N] [--stages S] ...`: the single-process report,
// or with more than one rank the per-stage report of recipes/plan_parallel.h.
std::string run_plan(const PlanOptions& options);

// A short sgemm at a training-sized shape: GFLOP/s this machine reaches now, for the step estimate.
// bf16: the bf16 product (training.compute_dtype's choice) instead of sgemm.
double measure_gemm_gflops(int64_t tokens, int64_t hidden, int64_t inter, bool bf16 = false);

}  // namespace hone
