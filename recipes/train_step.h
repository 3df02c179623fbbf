// The arithmetic of one optimizer step and of evaluation, separate from the driver's I/O so
// tests can call it directly.
#pragma once

#include <string>
#include <vector>

#include "data/loader.h"
#include "lora/lora.h"
#include "recipes/parallel/groups.h"

namespace hone {

// Forward and backward over the micro-batches of one optimizer step. Each micro-batch's mean
// loss is weighted by its share of the step's target tokens, so the gradients left in
// adapters.grads() (zeroed first) are those of the mean over ALL target tokens of the step —
// not a mean of per-micro-batch means. Returns that mean loss (0 when no token is a target).
//
// Across ranks (`par`): `micro_batches` is the whole step's (every rank draws them all, so each
// knows the step's target count). Replica r computes micro-batches r·k … r·k+k−1 (k = M / D)
// and the gradients are summed in micro-batch order (grad_fold.h), so every D gives bitwise the
// same gradients, loss and adapter. With S pipeline stages each rank holds a stage's blocks and
// adapters; a replica's micro-batches flow through its stages in 1F1B order (PipeDream-flush:
// stage s runs S−s−1 forwards ahead, then one forward and one backward in turn, then the last
// backwards), only the (B·T, C) hidden states and their gradients crossing between stages; each
// stage's gradients are those of the whole model's slice, bit for bit. Micro-batch m's dropout
// masks are drawn from a state derived from (the generator's state at the step's start, m),
// whichever rank draws them; the generator then moves on by one draw.
double accumulate_step(const Transformer& model, LoraAdapters& adapters,
                       const std::vector<Batch>& micro_batches, const Parallel& par);
double accumulate_step(const Transformer& model, LoraAdapters& adapters,
                       const std::vector<Batch>& micro_batches);

// The global gradient norm of the adapters across the pipeline's stages, then clipped to
// max_norm (clip_grad_norm's semantics): the chunk sums of every LoRA tensor (grad_norm_partials),
// added in the whole model's order whatever the number of stages.
double clip_step_gradients(LoraAdapters& adapters, double max_norm, const Parallel& par);

struct EvalResult {
  double loss = 0;        // mean cross-entropy per target token
  double perplexity = 0;  // exp(loss)
  int64_t tokens = 0;     // target tokens scored
};

// Held-out loss over `examples` in order, `batch_size` at a time, at most `max_batches` batches
// (0 = all). Dropout is off during evaluation. Across ranks, batch i is scored by replica i mod D
// (through its stages) and the sums are added in batch order: the same figure on every rank and
// for every layout.
EvalResult evaluate(const Transformer& model, LoraAdapters* adapters, const ExampleSet& examples,
                    int64_t batch_size, int64_t max_batches, const Parallel& par);
EvalResult evaluate(const Transformer& model, LoraAdapters* adapters, const ExampleSet& examples,
                    int64_t batch_size, int64_t max_batches);

// Tells a collapsed run from a slow one. A step that has target tokens but a gradient norm of
// exactly 0 carries no signal at all; a healthy LoRA run never has one (B starts at 0 but its
// gradient does not). A learning rate far too high (1e6) drives the model to that state, often
// predicting the uniform distribution (loss = ln(vocab)), and the optimizer then never moves it
// again. observe() returns a description once the run has collapsed: 3 such steps in a row, or
// one whose loss is also ln(vocab) within 1e-5 relative; "" otherwise.
class CollapseWatch {
 public:
  explicit CollapseWatch(int64_t vocab_size) : vocab_(vocab_size) {}
  std::string observe(double loss, double grad_norm, int64_t n_targets);

  static constexpr int64_t kZeroSteps = 3;

 private:
  int64_t vocab_;
  int64_t zero_streak_ = 0;
};

}  // namespace hone
