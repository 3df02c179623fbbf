#include "optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <sstream>

#include "autograd/error.h"

namespace hone {

ScheduleKind schedule_kind_from_name(const std::string& name) {
  if (name == "constant") return ScheduleKind::Constant;
  if (name == "linear") return ScheduleKind::Linear;
  if (name == "cosine") return ScheduleKind::Cosine;
  throw Error("lr schedule: unknown kind '" + name + "' (known: constant, linear, cosine)");
}

const char* schedule_kind_name(ScheduleKind k) {
  switch (k) {
    case ScheduleKind::Constant:
      return "constant";
    case ScheduleKind::Linear:
      return "linear";
    case ScheduleKind::Cosine:
      return "cosine";
  }
  return "?";
}

double lr_at(const ScheduleConfig& cfg, int64_t step, int64_t total_steps) {
  auto fail = [](const std::string& what, auto got) {
    std::ostringstream s;
    s << "lr schedule: " << what << " (got " << got << ")";
    throw Error(s.str());
  };
  if (step < 0) fail("step must be >= 0", step);
  if (total_steps <= 0) fail("total_steps must be > 0", total_steps);
  if (cfg.warmup_steps < 0) fail("warmup_steps must be >= 0", cfg.warmup_steps);
  if (cfg.warmup_steps > total_steps)
    fail("warmup_steps must be <= total_steps (" + std::to_string(total_steps) + ")",
         cfg.warmup_steps);
  if (!(std::isfinite(cfg.lr) && cfg.lr >= 0)) fail("lr must be finite and >= 0", cfg.lr);
  if (!(cfg.min_lr >= 0 && cfg.min_lr <= cfg.lr)) fail("min_lr must be in [0, lr]", cfg.min_lr);

  if (step < cfg.warmup_steps)
    return cfg.lr * static_cast<double>(step) / static_cast<double>(cfg.warmup_steps);
  if (cfg.kind == ScheduleKind::Constant) return cfg.lr;
  const double span = static_cast<double>(std::max<int64_t>(1, total_steps - cfg.warmup_steps));
  const double progress = std::clamp(static_cast<double>(step - cfg.warmup_steps) / span, 0.0, 1.0);
  const double factor = cfg.kind == ScheduleKind::Linear
                            ? 1.0 - progress
                            : 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  return cfg.min_lr + (cfg.lr - cfg.min_lr) * factor;
}

}  // namespace hone
