// The sum of a step's micro-batch gradients, bitwise the same whatever the number of ranks the
// micro-batches were shared out to: g = ((g_0 + g_1) + g_2) + … + g_{M-1}, in f32, in
// micro-batch order, always. Floating-point addition is not associative, so a sum whose order
// depended on the rank count (an MPI_Allreduce, or each rank adding up its own micro-batches first)
// would give a different adapter for every N; instead every element is added in one fixed order.
//
// With D ranks each holding k = M/D consecutive micro-batch gradients (rank r: micro-batches
// r·k … r·k+k−1), the P parameters are cut into D slices (slice j: [j·P/D, (j+1)·P/D)); every
// rank sends slice j of each of its k gradients to rank j, which folds the M pieces of its slice
// in micro-batch order, and an allgather spreads the folded slices. A rank sends
// (k + 1)·|P|·(D−1)/D floats per step: for k = 1 what a ring all-reduce sends.
#pragma once

#include <cstdint>
#include <vector>

#include "autograd/tensor.h"
#include "recipes/parallel/comm.h"

namespace hone {

// The contiguous slice of n elements that rank r of d owns: [first, first + count).
struct Slice {
  int64_t first = 0, count = 0;
};
Slice slice_of(int64_t n, int d, int r);

// local: this rank's k micro-batch gradients, each (P) floats, in micro-batch order. out (P)
// receives the fold of all M = k·comm.size() of them on every rank. out may be local[0].
void fold_gradients(Comm& comm, const std::vector<float*>& local, int64_t P, float* out);

// Collects a step's micro-batch gradients from the arena every backward accumulates into, in
// micro-batch order, and leaves their ordered sum there. Per micro-batch: begin(), the backward
// (or none, for a micro-batch without targets), end(). One rank with one micro-batch keeps the
// backward's own gradient; one rank with several adds them up as it goes (its micro-batches are
// the whole order); several ranks keep theirs apart for fold_gradients.
class StepGradients {
 public:
  // grads: the (P) arena, F32 (F64 with one rank); k: this rank's micro-batches; ranks: the
  // data-parallel group's size.
  StepGradients(Tensor& grads, int64_t k, int ranks);
  void begin();
  void end();
  // The ordered sum of the group's k·ranks micro-batch gradients, in grads on every rank.
  void finish(Comm& dp);

 private:
  Tensor& grads_;
  int64_t k_;
  int ranks_;
  int64_t done_ = 0;
  Tensor acc_;                            // (P) one rank, several micro-batches: the sum so far
  std::vector<std::vector<float>> kept_;  // several ranks: each micro-batch's gradient
};

}  // namespace hone
