// The memory planner for a run across ranks (recipes/parallel/layout.h): each pipeline stage's
// peak memory (all replicas of a stage are alike), the bytes each rank sends per step, and a step
// time from the compute rate and the link speed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "recipes/parallel/layout.h"
#include "recipes/plan.h"

namespace hone {

struct StagePlan {
  LayerRange layers;
  PlanSpec spec;         // the single-process spec restricted to the stage
  MemoryPlan memory;     // of one rank of the stage
  int64_t pp_bytes = 0;  // sent per step to the neighbouring stages
  int64_t dp_bytes = 0;  // sent per step in the data-parallel exchange (the busiest replica)
};

struct ParallelPlan {
  RankLayout layout;
  int64_t micro_batches = 1, local_micro_batches = 1;  // M, and M / D per replica
  int64_t hidden_state_bytes = 0;                      // one micro-batch's (B,T,C) f32
  std::vector<StagePlan> stages;
  int64_t peak = 0, peak_stage = 0;  // the largest per-rank peak and its stage
  int64_t busiest_bytes = 0;         // the most bytes one rank sends per step
  double micro_batch_seconds = 0;    // the whole model's forward + backward of one micro-batch
  double compute_seconds = 0;        // (M_local + S - 1) × micro_batch_seconds / S: 1F1B's bubble
  double comm_seconds = 0;           // busiest_bytes / link: not overlapped with compute
  double step_seconds = 0;
};

// `gflops`: one rank's matrix-product rate; `link`: bytes per second a rank sends.
ParallelPlan plan_parallel(const PlanSpec& spec, const RankLayout& layout, int64_t grad_accum,
                           double gflops, double link);

// The smallest stage count whose per-rank peak fits `available` with `data` replicas a stage
// (the micro-batches must divide among them), or 0 when none up to one block a stage does.
int64_t smallest_fitting_stages(const PlanSpec& spec, int64_t data, int64_t grad_accum,
                                int64_t available);

// The table `hone plan --ranks N` prints: a row per stage, the per-rank peak and whether it fits,
// the bytes sent per step, and the step estimate.
std::string parallel_plan_report(const PlanSpec& spec, const ParallelPlan& plan, double gflops,
                                 double link, int64_t available);

// "25Gb/s" (bits), "3.2GB/s" (bytes), also Mb/s and MB/s -> bytes per second. Throws Error
// naming `what` otherwise.
double parse_link_speed(const std::string& text, const std::string& what);

}  // namespace hone
