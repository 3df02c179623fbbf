#include "recipes/train_step.h"

#include <cmath>
#include <cstdio>

namespace hone {

double accumulate_step(const Transformer& model, LoraAdapters& adapters,
                       const std::vector<Batch>& micro_batches) {
  adapters.zero_grad();
  int64_t total = 0;
  for (const Batch& b : micro_batches) total += b.n_targets;
  if (total == 0) return 0.0;
  double loss_sum = 0;  // Σ_b mean_b · n_b = Σ over tokens
  for (const Batch& b : micro_batches) {
    if (b.n_targets == 0) continue;
    Tape tape;
    Var mean = model.loss(&tape, b.ids, b.targets, b.batch, b.seq,
                          b.segment_start.empty() ? nullptr : &b.segment_start);
    const double share = static_cast<double>(b.n_targets) / static_cast<double>(total);
    Var weighted = scale(&tape, mean, share);
    tape.backward(weighted);
    loss_sum += mean.value().item(0) * static_cast<double>(b.n_targets);
  }
  return loss_sum / static_cast<double>(total);
}

EvalResult evaluate(const Transformer& model, LoraAdapters* adapters, const ExampleSet& examples,
                    int64_t batch_size, int64_t max_batches) {
  if (adapters) adapters->set_training(false);
  EvalResult r;
  double loss_sum = 0;
  int64_t batches = 0;
  for (size_t start = 0; start < examples.size(); start += static_cast<size_t>(batch_size)) {
    if (max_batches > 0 && batches >= max_batches) break;
    const size_t end = std::min(examples.size(), start + static_cast<size_t>(batch_size));
    std::vector<Example> made;
    for (size_t i = start; i < end; ++i) made.push_back(examples[i]);
    std::vector<const Example*> rows;
    for (const Example& e : made) rows.push_back(&e);
    const Batch b = collate(rows);
    if (b.n_targets > 0) {
      Var mean = model.loss(nullptr, b.ids, b.targets, b.batch, b.seq,
                            b.segment_start.empty() ? nullptr : &b.segment_start);
      loss_sum += mean.value().item(0) * static_cast<double>(b.n_targets);
      r.tokens += b.n_targets;
    }
    ++batches;
  }
  if (adapters) adapters->set_training(true);
  r.loss = r.tokens ? loss_sum / static_cast<double>(r.tokens) : 0.0;
  r.perplexity = std::exp(r.loss);
  return r;
}

std::string CollapseWatch::observe(double loss, double grad_norm, int64_t n_targets) {
  if (n_targets == 0 || grad_norm != 0.0) {
    zero_streak_ = 0;
    return "";
  }
  ++zero_streak_;
  const double uniform = std::log(static_cast<double>(vocab_));
  const bool at_uniform = std::abs(loss - uniform) <= 1e-5 * uniform;
  if (zero_streak_ < kZeroSteps && !at_uniform) return "";
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "the gradient norm has been exactly 0 for %lld step%s with loss %.6g (%s)",
                static_cast<long long>(zero_streak_), zero_streak_ == 1 ? "" : "s", loss,
                at_uniform ? "= ln(vocab): the model predicts the uniform distribution"
                           : "no learning signal left");
  return buf;
}

}  // namespace hone
