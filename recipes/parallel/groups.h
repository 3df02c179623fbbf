// Where a rank sits in a run of S pipeline stages × D data-parallel replicas. World rank =
// replica·S + stage: a replica's stages are consecutive ranks, so with the usual host-file order
// the activations passed between stages stay on one machine as far as they can.
#pragma once

#include <memory>

#include "recipes/parallel/comm.h"

namespace hone {

struct Parallel {
  int stage = 0, stages = 1;      // this rank's stage of S
  int replica = 0, replicas = 1;  // this rank's replica of D
  Comm* world = nullptr;          // every rank
  Comm* pipe = nullptr;           // the S stages of this replica; rank = stage
  Comm* dp = nullptr;             // the D replicas of this stage; rank = replica
  std::unique_ptr<Comm> owned_pipe, owned_dp;

  bool first_stage() const { return stage == 0; }
  bool last_stage() const { return stage == stages - 1; }
  // The rank that prints and writes files: world rank 0 (replica 0's first stage).
  bool lead() const { return world->rank() == 0; }
  // The world rank of (replica, stage).
  int world_rank(int r, int s) const { return r * stages + s; }
};

// The groups of `world` for `stages` pipeline stages (world.size() a multiple of stages).
Parallel make_parallel(Comm& world, int stages);
// This process alone.
Parallel single_process();

}  // namespace hone
