// Learning-rate schedules with linear warmup, following HF transformers'
// get_{constant,linear,cosine}_schedule_with_warmup (the multiplier a LambdaLR applies), with a
// floor: linear and cosine decay from `lr` down to `min_lr` rather than to 0, as
// get_cosine_with_min_lr_schedule_with_warmup does.
//
// `step` is the 0-based index of the update about to be applied (0 for the first optimizer.step),
// which is what a LambdaLR passes after `step` scheduler.step() calls. So, as in HF:
//   warmup (step < warmup_steps): lr · step / warmup_steps   (the first update has lr 0 when
//                                                              warmup_steps > 0)
//   then, with progress = (step − warmup_steps) / max(1, total_steps − warmup_steps):
//   constant: lr
//   linear:   min_lr + (lr − min_lr) · (1 − progress)
//   cosine:   min_lr + (lr − min_lr) · ½(1 + cos(π · progress))
// progress is clamped to [0, 1], so steps at or past total_steps get min_lr (HF's cosine would
// turn back up past the end).
#pragma once

#include <cstdint>
#include <string>

namespace hone {

enum class ScheduleKind { Constant, Linear, Cosine };

// "constant" | "linear" | "cosine"; throws Error naming the known kinds otherwise.
ScheduleKind schedule_kind_from_name(const std::string& name);
const char* schedule_kind_name(ScheduleKind k);

struct ScheduleConfig {
  ScheduleKind kind = ScheduleKind::Constant;
  double lr = 1e-3;          // peak, reached at the end of warmup
  int64_t warmup_steps = 0;  // >= 0
  double min_lr = 0.0;       // floor of linear/cosine decay; 0 <= min_lr <= lr
};

// The learning rate for update `step` (0-based) of a run of `total_steps` updates. Throws Error on
// step < 0, total_steps <= 0, warmup_steps < 0 or > total_steps, lr < 0, or min_lr outside
// [0, lr].
double lr_at(const ScheduleConfig& cfg, int64_t step, int64_t total_steps);

}  // namespace hone
