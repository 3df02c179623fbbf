#include "recipes/report/train_report.h"

#include <algorithm>
#include <filesystem>

#include "recipes/report/run_files.h"

namespace hone::report {

namespace {

// Prompt and continuation lengths of the samples: short, so the two cost well under a second on
// the small models and a few seconds on the large ones.
constexpr int64_t kPromptTokens = 24, kMaxPrompt = 96, kNewTokens = 48;

// The sample's prompt: an instruction example's prompt part (its inputs up to the first target
// that counts), or the first kPromptTokens tokens of a text window.
std::vector<int32_t> prompt_of(const Run& run) {
  const ExampleSet& set = run.data.val.empty() ? run.data.train : run.data.val;
  if (set.empty()) return {};
  const Example e = set.front();
  int64_t n = 0;
  while (n < static_cast<int64_t>(e.targets.size()) && e.targets[n] == kIgnoreIndex) ++n;
  n = n + 1 < 8 ? kPromptTokens : std::min(n + 1, kMaxPrompt);
  n = std::min<int64_t>(n, static_cast<int64_t>(e.ids.size()));
  return std::vector<int32_t>(e.ids.begin(), e.ids.begin() + n);
}

}  // namespace

TrainReport::TrainReport(const Run& run, const std::string& resolved, bool resumed)
    : metrics_file_(run.cfg.logging.metrics_file) {
  const RecipeConfig& cfg = run.cfg;
  const ModelConfig& m = run.model_config;
  info_["name"] = std::filesystem::path(cfg.output.dir).filename().string();
  info_["total_steps"] = run.total_steps;
  // Token positions per optimizer step (what the secondary axis of the loss chart counts).
  info_["tokens_per_step"] = cfg.training.batch_size * cfg.training.grad_accum * cfg.data.seq_len;
  info_["model"] = {{"path", cfg.model.path},
                    {"architecture", m.architecture},
                    {"hidden size", m.hidden_size},
                    {"layers", m.num_layers},
                    {"heads (query / key-value)",
                     std::to_string(m.num_heads) + " / " + std::to_string(m.num_kv_heads)},
                    {"vocabulary", m.vocab_size},
                    {"context", m.max_position_embeddings},
                    {"parameters", m.num_parameters()},
                    {"weights dtype", cfg.model.dtype}};
  const LoraConfig& l = cfg.lora;
  info_["adapter"] = {{"rank", l.rank},
                      {"alpha", l.alpha},
                      {"rslora", l.rslora},
                      {"dropout", l.dropout},
                      {"targets", l.targets},
                      {"layers", l.layers.empty() ? nlohmann::ordered_json("all")
                                                  : nlohmann::ordered_json(l.layers)},
                      {"adapted modules", run.adapters->full_num_modules()},
                      {"trainable parameters", run.adapters->full_num_parameters()}};
  info_["data"] = {
      {"format", cfg.data.format},
      {"train", cfg.data.train},
      {"held-out", cfg.data.val.empty() ? "val_fraction " + std::to_string(cfg.data.val_fraction)
                                        : cfg.data.val},
      {"train windows", run.data.train.size()},
      {"held-out windows", run.data.val.size()},
      {"seq_len", cfg.data.seq_len}};
  info_["recipe"] = resolved;
  if (resumed) {
    // The "before" sample was taken by the run's first process; keep it if it is there.
    try {
      const nlohmann::ordered_json old = read_run_info(run_info_path(metrics_file_));
      if (old.is_object() && old.contains("samples")) info_["samples"] = old["samples"];
      if (info_.contains("samples")) info_["samples"].erase("after");
    } catch (const Error&) {
      // An unreadable run.json only loses the old sample; this run rewrites the file.
    }
  }
}

std::string TrainReport::sample(Run& run) const {
  const std::vector<int32_t> prompt = prompt_of(run);
  if (prompt.empty()) return "";
  const Transformer& model = *run.model;
  run.adapters->set_training(false);  // no dropout, and its mask generator untouched
  const int64_t ctx = run.model_config.max_position_embeddings;
  KVCache cache = model.make_cache(std::min<int64_t>(ctx, prompt.size() + kNewTokens));
  const auto& eos = run.model_config.eos_token_ids;
  std::vector<int32_t> feed = prompt;
  int32_t prev = prompt.back();
  std::string text;
  for (int64_t i = 0;
       i < kNewTokens && cache.len + static_cast<int64_t>(feed.size()) <= cache.capacity(); ++i) {
    const Tensor logits = model.forward_cached(cache, feed);  // (feed, V)
    const float* last = logits.data<float>() + (logits.dim(0) - 1) * logits.dim(1);
    const int32_t next = static_cast<int32_t>(std::max_element(last, last + logits.dim(1)) - last);
    if (next == run.tokenizer->bos_id() || std::find(eos.begin(), eos.end(), next) != eos.end())
      break;
    text += run.tokenizer->decode_token(prev, next);
    prev = next;
    feed.assign(1, next);
  }
  run.adapters->set_training(true);
  return text;
}

void TrainReport::sample_before(Run& run) {
  if (run.cfg.training.pipeline_stages != 1) return;
  const std::vector<int32_t> prompt = prompt_of(run);
  if (prompt.empty()) return;
  info_["samples"] = {{"prompt", run.tokenizer->decode(prompt)},
                      {"new_tokens", kNewTokens},
                      {"before", sample(run)}};
}

void TrainReport::sample_after(Run& run) {
  if (run.cfg.training.pipeline_stages != 1) return;
  const std::vector<int32_t> prompt = prompt_of(run);
  if (prompt.empty()) return;
  if (!info_.contains("samples"))
    info_["samples"] = {{"prompt", run.tokenizer->decode(prompt)}, {"new_tokens", kNewTokens}};
  info_["samples"]["after"] = sample(run);
}

void TrainReport::write(const std::string& metrics_text) const {
  write_run_info(run_info_path(metrics_file_), info_);
  RunCurves r = parse_metrics(metrics_text, metrics_file_);
  r.name = info_["name"].get<std::string>();
  r.info = info_;
  r.recipe = info_["recipe"].get<std::string>();
  write_report(report_path(metrics_file_), {r});
}

}  // namespace hone::report
