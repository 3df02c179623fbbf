// The rank layout of a distributed run, as plain arithmetic both the MPI driver and `hone plan`
// use: N ranks = S pipeline stages × D data-parallel replicas, which blocks each stage holds, how
// many micro-batches a 1F1B stage keeps in flight, and the bytes each rank sends per step. No MPI.
#pragma once

#include <cstdint>
#include <string>

#include "model/layer_range.h"

namespace hone {

struct RankLayout {
  int64_t ranks = 1;   // N = stages × data
  int64_t stages = 1;  // S: pipeline stages
  int64_t data = 1;    // D: data-parallel replicas of each stage
};

// The layout of `ranks` ranks in `stages` stages for a step of `grad_accum` micro-batches on a
// model of `num_layers` blocks. Throws Error when ranks is not a multiple of stages, when the
// micro-batches do not divide among the data-parallel replicas, or when there are more stages
// than blocks, naming the nearest valid values. `ranks_flag` names the rank count in the message
// ("--ranks" for hone plan, "mpirun -np" for the driver).
RankLayout make_rank_layout(int64_t ranks, int64_t stages, int64_t grad_accum, int64_t num_layers,
                            const std::string& ranks_flag = "--ranks");

// Blocks [first, last) of stage s: L/S each, the first L % S stages one more (the model's
// pipeline_stage_layers, with the layout's integer types).
LayerRange stage_layers(int64_t num_layers, int64_t stages, int64_t stage);
// The stage holding block `layer`.
int64_t stage_of_layer(int64_t num_layers, int64_t stages, int64_t layer);

// 1F1B (PipeDream-flush): stage s has at most min(M_local, S - s) micro-batches' activations
// alive, M_local = the micro-batches of one replica.
int64_t micro_batches_in_flight(int64_t local_micro_batches, int64_t stages, int64_t stage);

// Bytes stage s sends per step between stages: each of its M_local micro-batches sends its hidden
// state forward (not from the last stage) and its gradient backward (not from the first), each
// `hidden_state_bytes` = batch × seq × hidden × 4 (f32).
int64_t pp_bytes_sent(int64_t local_micro_batches, int64_t hidden_state_bytes, int64_t stages,
                      int64_t stage);

// The data-parallel exchange of a stage's P adapter parameters among its D replicas, each with
// k = M / D micro-batch gradients kept apart so the sum is taken in one fixed order: the vector is
// cut into D contiguous slices, slice j = [j·P/D, (j+1)·P/D) (integer division), owned by replica
// j; every replica sends slice j of each of its k gradients to replica j, the owner folds the M
// slices in micro-batch order, then every owner sends its folded slice to the D - 1 others.
struct Slice {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};
Slice dp_slice(int64_t params, int64_t data, int64_t j);
// Bytes replica j sends in the scatter (k·(P - |slice j|)·4) and in the allgather
// ((D - 1)·|slice j|·4); averaged over the replicas they are k·P·4·(D-1)/D and P·4·(D-1)/D.
// 0 when D = 1. The per-step scalars (each micro-batch's loss and target count, the per-tensor
// squared norms for clipping) are a few hundred bytes and not counted.
int64_t dp_scatter_bytes_sent(int64_t params, int64_t data, int64_t k, int64_t j);
int64_t dp_allgather_bytes_sent(int64_t params, int64_t data, int64_t j);
int64_t dp_bytes_sent(int64_t params, int64_t data, int64_t k, int64_t j);
// The bytes the exchange keeps beside the adapters' own gradient buffer: D > 1, the k gradients
// kept apart (k·P·4) and the owner's receive buffer of M slices (k·|largest slice|·D·4, i.e.
// k·P·4 when the slices are even); D = 1, the fold accumulator (P·4) when k > 1, else nothing.
int64_t dp_buffer_bytes(int64_t params, int64_t data, int64_t k);

}  // namespace hone
