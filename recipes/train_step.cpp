#include "recipes/train_step.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>

#include "autograd/block_cache.h"
#include "optim/clip.h"
#include "recipes/parallel/grad_fold.h"

namespace hone {

namespace {

// The state micro-batch m of a step draws its dropout masks from.
uint64_t micro_batch_state(uint64_t step_state, uint64_t m) {
  Rng r(step_state ^ (0xd1b54a32d192ed03ull * (m + 1)));
  return r.next_u64();
}

// A micro-batch between its forward and its backward on this stage.
struct InFlight {
  int64_t j = 0;  // index among the replica's micro-batches
  std::unique_ptr<Tape> tape;
  Var in;        // (N, C) the previous stage's hidden state, a leaf (not on the first stage)
  Var out;       // (N, C) this stage's output (not on the last stage)
  Var weighted;  // the loss weighted by the micro-batch's share (last stage)
};

const std::vector<int32_t>* segments(const Batch& b) {
  return b.segment_start.empty() ? nullptr : &b.segment_start;
}

// Receives a (rows, C) hidden state or gradient from stage `from`.
Tensor receive(Comm& pipe, int from, int64_t rows, int64_t C) {
  Tensor t = Tensor::empty(DType::F32, {rows, C});
  pipe.recv(from, t.raw(), t.nbytes());
  return t;
}

}  // namespace

double accumulate_step(const Transformer& model, LoraAdapters& adapters,
                       const std::vector<Batch>& micro_batches, const Parallel& par) {
  const int64_t M = static_cast<int64_t>(micro_batches.size());
  const int D = par.replicas;
  if (M % D != 0)
    throw Error("internal: " + std::to_string(M) + " micro-batches among " + std::to_string(D) +
                " replicas");
  const int64_t k = M / D, first = par.replica * k;
  int64_t total = 0;
  for (const Batch& b : micro_batches) total += b.n_targets;
  Rng& rng = adapters.dropout_rng();
  const uint64_t step_state = rng.state();
  if (total == 0) {
    adapters.zero_grad();
    rng.skip(1);
    return 0.0;
  }
  StepGradients grads(adapters.grads(), k, D);
  const int64_t C = model.config().hidden_size;
  std::vector<double> loss_sums(static_cast<size_t>(k), 0.0);  // Σ over tokens, per micro-batch
  std::deque<InFlight> flight;
  int64_t collected = 0;              // micro-batches whose gradient is collected, in order
  auto skip_until = [&](int64_t j) {  // micro-batches without targets: a zero gradient each
    for (; collected < j; ++collected) {
      grads.begin();
      grads.end();
    }
  };
  auto forward = [&](int64_t j) {
    const Batch& b = micro_batches[static_cast<size_t>(first + j)];
    rng.set_state(micro_batch_state(step_state, static_cast<uint64_t>(first + j)));
    InFlight f;
    f.j = j;
    f.tape = std::make_unique<Tape>();
    Tape* t = f.tape.get();
    Var x;
    if (par.first_stage()) {
      x = model.embed(t, b.ids, b.batch, b.seq);
    } else {
      f.in = Var(receive(*par.pipe, par.stage - 1, b.batch * b.seq, C), true);
      x = f.in;
    }
    Var h = model.run_blocks(t, x, b.batch, b.seq, segments(b));
    if (par.last_stage()) {
      Var mean = model.head_loss(t, h, b.targets);
      const double share = static_cast<double>(b.n_targets) / static_cast<double>(total);
      f.weighted = scale(t, mean, share);
      loss_sums[static_cast<size_t>(j)] = mean.value().item(0) * static_cast<double>(b.n_targets);
    } else {
      par.pipe->send(par.stage + 1, h.value().raw(), h.value().nbytes());
      f.out = h;
    }
    flight.push_back(std::move(f));
  };
  auto backward = [&]() {
    InFlight f = std::move(flight.front());
    flight.pop_front();
    skip_until(f.j);
    grads.begin();
    if (par.last_stage()) {
      f.tape->backward(f.weighted);
    } else {
      const Tensor& out = f.out.value();
      f.tape->backward_from(f.out, receive(*par.pipe, par.stage + 1, out.dim(0), C));
    }
    if (!par.first_stage()) {
      if (!f.in.has_grad()) throw Error("internal: a stage's input got no gradient");
      par.pipe->send(par.stage - 1, f.in.grad().raw(), f.in.grad().nbytes());
    }
    grads.end();
    collected = f.j + 1;
  };
  // 1F1B over the replica's micro-batches with targets (every stage skips the same ones).
  std::vector<int64_t> order;
  for (int64_t j = 0; j < k; ++j)
    if (micro_batches[static_cast<size_t>(first + j)].n_targets > 0) order.push_back(j);
  const int64_t n = static_cast<int64_t>(order.size());
  const int64_t warm = std::min<int64_t>(par.stages - par.stage - 1, n);
  for (int64_t i = 0; i < warm; ++i) forward(order[static_cast<size_t>(i)]);
  for (int64_t i = warm; i < n; ++i) {
    forward(order[static_cast<size_t>(i)]);
    backward();
  }
  while (!flight.empty()) backward();
  skip_until(k);
  rng.set_state(step_state);
  rng.skip(1);
  grads.finish(*par.dp);
  // Every micro-batch's loss, from the last stages, in micro-batch order on every rank.
  std::vector<double> all(static_cast<size_t>(par.world->size() * k));
  par.world->allgather(loss_sums.data(), all.data(), static_cast<size_t>(k) * sizeof(double));
  double loss_sum = 0;
  for (int r = 0; r < D; ++r)
    for (int64_t j = 0; j < k; ++j)
      loss_sum += all[static_cast<size_t>(par.world_rank(r, par.stages - 1) * k + j)];
  return loss_sum / static_cast<double>(total);
}

double accumulate_step(const Transformer& model, LoraAdapters& adapters,
                       const std::vector<Batch>& micro_batches) {
  static const Parallel alone = single_process();
  return accumulate_step(model, adapters, micro_batches, alone);
}

double clip_step_gradients(LoraAdapters& adapters, double max_norm, const Parallel& par) {
  // Where each LoRA factor starts in this stage's arena: the chunks restart there.
  const float* base = adapters.values().numel() ? adapters.values().data<float>() : nullptr;
  std::vector<int64_t> starts;
  for (const LoraTensor& t : adapters.tensors())
    for (const Var* v : {&t.a, &t.b, &t.m})
      if (v->defined()) starts.push_back(v->value().data<float>() - base);
  std::sort(starts.begin(), starts.end());
  const std::vector<double> mine = grad_norm_partials(adapters.grads(), starts);
  // Every stage's chunk sums, stage after stage: the whole arena's list.
  const std::vector<int64_t> counts = allgather_value(*par.pipe, static_cast<int64_t>(mine.size()));
  std::vector<int64_t> bytes;
  int64_t n = 0;
  for (int64_t c : counts) {
    bytes.push_back(c * static_cast<int64_t>(sizeof(double)));
    n += c;
  }
  std::vector<double> all(static_cast<size_t>(n));
  int64_t at = 0;
  for (int s = 0; s < par.stage; ++s) at += counts[static_cast<size_t>(s)];
  std::copy(mine.begin(), mine.end(), all.begin() + at);
  par.pipe->allgatherv_bytes(all.data(), bytes);
  double total = 0;
  for (double x : all) total += x;
  return clip_to_norm(adapters.grads(), std::sqrt(total), max_norm);
}

EvalResult evaluate(const Transformer& model, LoraAdapters* adapters, const ExampleSet& examples,
                    int64_t batch_size, int64_t max_batches, const Parallel& par) {
  if (adapters) adapters->set_training(false);
  int64_t n_batches = (static_cast<int64_t>(examples.size()) + batch_size - 1) / batch_size;
  if (max_batches > 0) n_batches = std::min(n_batches, max_batches);
  const int D = par.replicas;
  const int64_t per_rank = (n_batches + D - 1) / D;
  const int64_t C = model.config().hidden_size;
  // This replica's batches i = replica, replica + D, ...: (loss sum, target tokens) each, on the
  // last stage; the hidden states flow there through the stages.
  std::vector<std::pair<double, int64_t>> mine(static_cast<size_t>(per_rank), {0.0, 0});
  bool partial = false;
  for (int64_t j = 0; j < per_rank; ++j) {
    const int64_t i = par.replica + j * D;
    if (i >= n_batches) break;
    const size_t start = static_cast<size_t>(i * batch_size);
    const size_t end = std::min(examples.size(), start + static_cast<size_t>(batch_size));
    // A partial last batch asks for blocks of sizes the cache does not hold: the full batches'
    // cached blocks and its own would be resident together (11 MiB above the training step's
    // peak on a 256-token stories260K run), so the cache goes back to the system first.
    if (end - start < static_cast<size_t>(batch_size)) {
      block_cache_release();
      partial = true;
    }
    std::vector<Example> made;
    for (size_t e = start; e < end; ++e) made.push_back(examples[e]);
    std::vector<const Example*> rows;
    for (const Example& e : made) rows.push_back(&e);
    const Batch b = collate(rows);
    if (b.n_targets == 0) continue;  // every stage skips it alike
    Var x = par.first_stage() ? model.embed(nullptr, b.ids, b.batch, b.seq)
                              : Var(receive(*par.pipe, par.stage - 1, b.batch * b.seq, C), false);
    Var h = model.run_blocks(nullptr, x, b.batch, b.seq, segments(b));
    if (par.last_stage()) {
      Var mean = model.head_loss(nullptr, h, b.targets);
      mine[static_cast<size_t>(j)] = {mean.value().item(0) * static_cast<double>(b.n_targets),
                                      b.n_targets};
    } else {
      par.pipe->send(par.stage + 1, h.value().raw(), h.value().nbytes());
    }
  }
  if (adapters) adapters->set_training(true);
  // The partial last batch's blocks have sizes no training step asks for: back to the system.
  if (partial) block_cache_release();
  std::vector<std::pair<double, int64_t>> all(static_cast<size_t>(per_rank * par.world->size()));
  par.world->allgather(mine.data(), all.data(), mine.size() * sizeof(mine[0]));
  EvalResult r;
  double loss_sum = 0;
  for (int64_t i = 0; i < n_batches; ++i) {  // batch i: replica i % D's last stage, slot i / D
    const int rank = par.world_rank(static_cast<int>(i % D), par.stages - 1);
    const auto& x = all[static_cast<size_t>(rank * per_rank + i / D)];
    loss_sum += x.first;
    r.tokens += x.second;
  }
  r.loss = r.tokens ? loss_sum / static_cast<double>(r.tokens) : 0.0;
  r.perplexity = std::exp(r.loss);
  return r;
}

EvalResult evaluate(const Transformer& model, LoraAdapters* adapters, const ExampleSet& examples,
                    int64_t batch_size, int64_t max_batches) {
  static const Parallel alone = single_process();
  return evaluate(model, adapters, examples, batch_size, max_batches, alone);
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
