// The arithmetic of one optimizer step and of evaluation, separate from the driver's I/O so
// tests can call it directly.
#pragma once

#include <vector>

#include "data/loader.h"
#include "lora/lora.h"

namespace hone {

// Forward and backward over the micro-batches of one optimizer step. Each micro-batch's mean
// loss is weighted by its share of the step's target tokens, so the gradients left in
// adapters.grads() (zeroed first) are those of the mean over ALL target tokens of the step —
// not a mean of per-micro-batch means. Returns that mean loss (0 when no token is a target).
double accumulate_step(const Transformer& model, LoraAdapters& adapters,
                       const std::vector<Batch>& micro_batches);

struct EvalResult {
  double loss = 0;        // mean cross-entropy per target token
  double perplexity = 0;  // exp(loss)
  int64_t tokens = 0;     // target tokens scored
};

// Held-out loss over `examples` in order, `batch_size` at a time, at most `max_batches` batches
// (0 = all). Dropout is off during evaluation.
EvalResult evaluate(const Transformer& model, LoraAdapters* adapters, const ExampleSet& examples,
                    int64_t batch_size, int64_t max_batches);

}  // namespace hone
