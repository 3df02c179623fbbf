#include "recipes/train_step.h"

#include <cmath>
#include <cstdio>
#include <cstring>

#include "recipes/parallel/grad_fold.h"

namespace hone {

namespace {

// The state micro-batch m of a step draws its dropout masks from.
uint64_t micro_batch_state(uint64_t step_state, uint64_t m) {
  Rng r(step_state ^ (0xd1b54a32d192ed03ull * (m + 1)));
  return r.next_u64();
}

// acc += g, element by element: the one addition fold_gradients makes too.
template <typename T>
void add_into(T* acc, const T* g, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += g[i];
}

}  // namespace

double accumulate_step(const Transformer& model, LoraAdapters& adapters,
                       const std::vector<Batch>& micro_batches, Comm& dp) {
  const int64_t M = static_cast<int64_t>(micro_batches.size());
  const int ranks = dp.size();
  if (M % ranks != 0)
    throw Error("internal: " + std::to_string(M) + " micro-batches among " + std::to_string(ranks) +
                " ranks");
  const int64_t k = M / ranks, first = dp.rank() * k;
  adapters.zero_grad();
  int64_t total = 0;
  for (const Batch& b : micro_batches) total += b.n_targets;
  Rng& rng = adapters.dropout_rng();
  const uint64_t step_state = rng.state();
  if (total == 0) {
    rng.skip(1);
    return 0.0;
  }
  Tensor& grads = adapters.grads();  // (P) the arena every backward accumulates into
  const int64_t P = grads.numel();
  if (ranks > 1 && grads.dtype() != DType::F32)
    throw Error("internal: data parallel needs f32 adapter gradients");
  // Single process, one micro-batch: the backward's gradient is the step's, as it always was.
  // Otherwise each micro-batch's gradient is taken alone: one rank adds them up as it goes (its
  // micro-batches are the whole order), several keep theirs apart for the ordered sum.
  const bool alone = ranks == 1 && k == 1;
  Tensor acc;  // (P) ranks == 1: the sum so far
  std::vector<std::vector<float>> kept(ranks > 1 ? static_cast<size_t>(k) : 0);
  std::vector<double> loss_sums(static_cast<size_t>(k), 0.0);  // Σ over tokens, per micro-batch
  for (int64_t j = 0; j < k; ++j) {
    const Batch& b = micro_batches[static_cast<size_t>(first + j)];
    if (!alone) adapters.zero_grad();
    if (b.n_targets > 0) {
      rng.set_state(micro_batch_state(step_state, static_cast<uint64_t>(first + j)));
      Tape tape;
      Var mean = model.loss(&tape, b.ids, b.targets, b.batch, b.seq,
                            b.segment_start.empty() ? nullptr : &b.segment_start);
      const double share = static_cast<double>(b.n_targets) / static_cast<double>(total);
      Var weighted = scale(&tape, mean, share);
      tape.backward(weighted);
      loss_sums[static_cast<size_t>(j)] = mean.value().item(0) * static_cast<double>(b.n_targets);
    }
    if (ranks > 1) {
      const float* g = grads.data<float>();
      kept[static_cast<size_t>(j)].assign(g, g + P);
    } else if (!alone) {
      if (j == 0) {
        acc = grads.clone();
      } else if (grads.dtype() == DType::F64) {
        add_into(acc.data<double>(), grads.data<double>(), P);
      } else {
        add_into(acc.data<float>(), grads.data<float>(), P);
      }
    }
  }
  rng.set_state(step_state);
  rng.skip(1);
  if (ranks == 1 && !alone) {
    std::memcpy(grads.raw(), acc.raw(), grads.nbytes());
  } else if (ranks > 1) {
    std::vector<float*> local;
    for (auto& v : kept) local.push_back(v.data());
    fold_gradients(dp, local, P, grads.data<float>());
  }
  // Every micro-batch's loss, in micro-batch order, summed in that order on every rank.
  std::vector<double> all(static_cast<size_t>(M));
  dp.allgather(loss_sums.data(), all.data(), static_cast<size_t>(k) * sizeof(double));
  double loss_sum = 0;
  for (double x : all) loss_sum += x;
  return loss_sum / static_cast<double>(total);
}

double accumulate_step(const Transformer& model, LoraAdapters& adapters,
                       const std::vector<Batch>& micro_batches) {
  return accumulate_step(model, adapters, micro_batches, local_comm());
}

EvalResult evaluate(const Transformer& model, LoraAdapters* adapters, const ExampleSet& examples,
                    int64_t batch_size, int64_t max_batches, Comm& dp) {
  if (adapters) adapters->set_training(false);
  int64_t n_batches = (static_cast<int64_t>(examples.size()) + batch_size - 1) / batch_size;
  if (max_batches > 0) n_batches = std::min(n_batches, max_batches);
  const int ranks = dp.size();
  const int64_t per_rank = (n_batches + ranks - 1) / ranks;
  // This rank's batches i = rank, rank + ranks, ...: (loss sum, target tokens) each.
  std::vector<std::pair<double, int64_t>> mine(static_cast<size_t>(per_rank), {0.0, 0});
  for (int64_t j = 0; j < per_rank; ++j) {
    const int64_t i = dp.rank() + j * ranks;
    if (i >= n_batches) break;
    const size_t start = static_cast<size_t>(i * batch_size);
    const size_t end = std::min(examples.size(), start + static_cast<size_t>(batch_size));
    std::vector<Example> made;
    for (size_t e = start; e < end; ++e) made.push_back(examples[e]);
    std::vector<const Example*> rows;
    for (const Example& e : made) rows.push_back(&e);
    const Batch b = collate(rows);
    if (b.n_targets > 0) {
      Var mean = model.loss(nullptr, b.ids, b.targets, b.batch, b.seq,
                            b.segment_start.empty() ? nullptr : &b.segment_start);
      mine[static_cast<size_t>(j)] = {mean.value().item(0) * static_cast<double>(b.n_targets),
                                      b.n_targets};
    }
  }
  if (adapters) adapters->set_training(true);
  std::vector<std::pair<double, int64_t>> all(static_cast<size_t>(per_rank * ranks));
  dp.allgather(mine.data(), all.data(), mine.size() * sizeof(mine[0]));
  EvalResult r;
  double loss_sum = 0;
  for (int64_t i = 0; i < n_batches; ++i) {  // batch i sits at rank i % ranks, slot i / ranks
    const auto& x = all[static_cast<size_t>((i % ranks) * per_rank + i / ranks)];
    loss_sum += x.first;
    r.tokens += x.second;
  }
  r.loss = r.tokens ? loss_sum / static_cast<double>(r.tokens) : 0.0;
  r.perplexity = std::exp(r.loss);
  return r;
}

EvalResult evaluate(const Transformer& model, LoraAdapters* adapters, const ExampleSet& examples,
                    int64_t batch_size, int64_t max_batches) {
  return evaluate(model, adapters, examples, batch_size, max_batches, local_comm());
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
