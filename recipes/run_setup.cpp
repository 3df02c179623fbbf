#include "recipes/run_setup.h"

#include <filesystem>
#include <iostream>
#include <sstream>

#include "autograd/block_cache.h"
#include "data/instruct_dataset.h"
#include "model/io/finite_weights.h"
#include "recipes/data_inspect.h"
#include "recipes/model_tokenizer.h"
#include "recipes/plan.h"

namespace hone {

namespace fs = std::filesystem;

namespace {

// FNV-1a over the token stream: cheap, stable across platforms, enough to tell data apart.
uint64_t fnv1a(const ExampleSet& examples) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](int32_t v) {
    for (int i = 0; i < 4; ++i) {
      h ^= static_cast<uint8_t>(static_cast<uint32_t>(v) >> (8 * i));
      h *= 1099511628211ull;
    }
  };
  for (const Example& e : examples) {
    for (int32_t t : e.ids) mix(t);
    for (int32_t t : e.targets) mix(t);
  }
  return h;
}

}  // namespace

DType weight_dtype_from(const std::string& s) {
  if (s == "f32") return DType::F32;
  if (s == "bf16") return DType::BF16;
  if (s == "f16") return DType::F16;
  if (s == "q8_0") return DType::Q8_0;
  if (s == "q4_0") return DType::Q4_0;
  throw Error("model.dtype: expected f32, bf16, f16, q8_0 or q4_0 (got \"" + s + "\")");
}

void load_base(Run& run, const LayerRange& range) {
  const RecipeConfig& cfg = run.cfg;
  ModelFiles files = load_model_files(cfg.model.path, range);
  check_finite_weights(files.tensors, files.source);  // a damaged base, not a too-high lr
  run.model_config = files.config;
  run.model = std::make_unique<Transformer>(files.config, files.tensors,
                                            weight_dtype_from(cfg.model.dtype), range);
  // Tensors the model converted (e.g. f32 projections held as bf16 under bf16 products) are
  // dropped now; read into memory, they would stay in the block cache: hand them back.
  files.tensors.clear();
  block_cache_release();
  run.model->set_activation_checkpointing(cfg.training.activation_checkpointing);
  run.model->set_fused_loss_bytes(cfg.training.fused_loss_bytes());
  try {
    run.tokenizer = tokenizer_for_model(cfg.model.path, cfg.model.tokenizer);
  } catch (const Error& e) {
    throw Error(cfg.source + ": model.tokenizer: " + e.what());
  }
  if (run.tokenizer->vocab_size() != files.config.vocab_size)
    throw Error(cfg.source + ": model.tokenizer: vocabulary of " +
                std::to_string(run.tokenizer->vocab_size()) +
                " tokens does not match the model's " + std::to_string(files.config.vocab_size));
  std::ostringstream id;
  const ModelConfig& m = files.config;
  id << m.architecture << " hidden " << m.hidden_size << " layers " << m.num_layers << " heads "
     << m.num_heads << "/" << m.num_kv_heads << " vocab " << m.vocab_size << " params "
     << m.num_parameters() << " dtype " << cfg.model.dtype;
  run.model_id = id.str();
}

TextDataOptions text_data_options(const RecipeConfig& cfg) {
  TextDataOptions o;
  o.train = cfg.data.train;
  o.val = cfg.data.val;
  o.val_fraction = cfg.data.val_fraction;
  o.seq_len = cfg.data.seq_len;
  o.add_bos = cfg.data.add_bos;
  o.add_eos = cfg.data.add_eos;
  // The token cache is keyed by the tokenizer's files (a GGUF model's own vocabulary: the
  // model file's head).
  std::string tok_path = cfg.model.tokenizer;
  if (tok_path.empty()) tok_path = find_model_tokenizer(cfg.model.path);
  if (tok_path.empty()) tok_path = cfg.model.path;
  o.tokenizer_key = tokenizer_files_key(tok_path);
  return o;
}

void load_data(Run& run, bool quiet) {
  const RecipeConfig& cfg = run.cfg;
  if (cfg.data.seq_len > run.model_config.max_position_embeddings)
    throw Error(cfg.source + ": data.seq_len: " + std::to_string(cfg.data.seq_len) +
                " exceeds the model's context of " +
                std::to_string(run.model_config.max_position_embeddings));
  std::ostringstream id;
  if (cfg.data.format == "text") {
    const TextDataOptions o = text_data_options(cfg);
    TextTokenStats stats;
    run.data = load_text_data(o, *run.tokenizer, &stats);
    for (const std::string& w : stats.warnings) std::cerr << "hone: warning: " << w << "\n";
    if (!quiet) {
      std::cerr << "hone: data: " << stats.files << (stats.files == 1 ? " file, " : " files, ")
                << stats.tokens << " tokens (" << human_bytes(stats.mapped_bytes)
                << " mapped); token cache: " << stats.tokenized << " tokenized, " << stats.reused
                << " reused";
      if (!stats.stores.empty() && !stats.stores[0].empty())
        std::cerr << " (" << fs::path(stats.stores[0]).parent_path().string() << ")";
      std::cerr << "\n";
    }
    id << "seq_len " << cfg.data.seq_len << " train " << run.data.train.size() << " windows fnv "
       << std::hex << fnv1a(run.data.train);
  } else {
    // completion | alpaca | chat: JSONL records, loss-masked, packed or padded.
    InstructStats stats;
    run.data = load_instruct_data(instruct_data_options(cfg, recipe_tokenizer_path(cfg)),
                                  *run.tokenizer, &stats);
    if (stats.bad_lines > 0) {
      std::cerr << "hone: data.train: skipped " << stats.bad_lines
                << " bad lines (data.on_bad_line: skip), first: " << stats.bad_line_messages[0]
                << "\n";
    }
    if (stats.truncated > 0 || stats.no_targets > 0) {
      std::cerr << "hone: data: " << stats.truncated << " of " << stats.records
                << " records truncated to seq_len + 1 tokens, " << stats.no_targets
                << " dropped with no target left\n";
    }
    id << "format " << cfg.data.format << " seq_len " << cfg.data.seq_len << " train "
       << run.data.train.size() << " windows fnv " << std::hex << fnv1a(run.data.train);
  }
  run.data_id = id.str();
}

void prepare_training(Run& run) {
  const RecipeConfig& cfg = run.cfg;
  run.adapters = std::make_unique<LoraAdapters>(*run.model, cfg.lora);
  std::ostringstream id;
  id << "rank " << cfg.lora.rank << " alpha " << cfg.lora.alpha << " rslora " << cfg.lora.rslora
     << (cfg.lora.dora ? " dora" : "") << " modules " << run.adapters->full_num_modules()
     << " params " << run.adapters->full_num_parameters();
  run.lora_id = id.str();

  const int64_t batch = cfg.training.batch_size;
  if (static_cast<int64_t>(run.data.train.size()) < batch)
    throw Error(cfg.source + ": training.batch_size: " + std::to_string(batch) + " exceeds the " +
                std::to_string(run.data.train.size()) + " training windows of data.train");
  run.loader =
      std::make_unique<DataLoader>(run.data.train, batch, cfg.data.shuffle_seed, true, true);
  run.steps_per_epoch =
      std::max<int64_t>(1, run.loader->batches_per_epoch() / cfg.training.grad_accum);
  run.total_steps =
      cfg.training.max_steps ? *cfg.training.max_steps : *cfg.training.epochs * run.steps_per_epoch;

  OptimizerConfig oc;
  oc.lr = cfg.optimizer.lr;
  oc.beta1 = cfg.optimizer.beta1;
  oc.beta2 = cfg.optimizer.beta2;
  oc.eps = cfg.optimizer.eps;
  oc.weight_decay = cfg.optimizer.weight_decay;
  oc.momentum = cfg.optimizer.momentum;
  run.optimizer =
      make_optimizer(cfg.optimizer.name, run.adapters->values(), run.adapters->grads(), oc);
  run.schedule.kind = schedule_kind_from_name(cfg.scheduler.name);
  run.schedule.lr = cfg.optimizer.lr;
  run.schedule.warmup_steps = std::min(cfg.scheduler.warmup_steps, run.total_steps);
  run.schedule.min_lr = cfg.scheduler.min_lr;
}

}  // namespace hone
