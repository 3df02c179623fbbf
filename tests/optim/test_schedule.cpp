#include <gtest/gtest.h>

#include <string>

#include "autograd/error.h"
#include "optim/schedule.h"

using namespace hone;

namespace {

ScheduleConfig sched(ScheduleKind k, double lr, int64_t warmup, double min_lr = 0) {
  ScheduleConfig c;
  c.kind = k;
  c.lr = lr;
  c.warmup_steps = warmup;
  c.min_lr = min_lr;
  return c;
}

}  // namespace

// Values worked out by hand from HF's lr_lambda(current_step) with lr = 1e-3 (or 2e-3),
// warmup 10, 110 total updates (decay span 100).
TEST(Schedule, WarmupIsLinearFromZero) {
  for (auto k : {ScheduleKind::Constant, ScheduleKind::Linear, ScheduleKind::Cosine}) {
    const auto c = sched(k, 1e-3, 10);
    EXPECT_EQ(lr_at(c, 0, 110), 0.0) << schedule_kind_name(k);  // first update: 0 (as HF)
    EXPECT_DOUBLE_EQ(lr_at(c, 1, 110), 1e-4);
    EXPECT_DOUBLE_EQ(lr_at(c, 5, 110), 5e-4);
    EXPECT_DOUBLE_EQ(lr_at(c, 9, 110), 9e-4);   // last warmup update
    EXPECT_DOUBLE_EQ(lr_at(c, 10, 110), 1e-3);  // first after warmup: the peak
  }
}

TEST(Schedule, Constant) {
  const auto c = sched(ScheduleKind::Constant, 2e-3, 0, 1e-4);  // min_lr has no effect
  for (int64_t s : {0, 1, 50, 109, 110, 500}) EXPECT_EQ(lr_at(c, s, 110), 2e-3) << s;
}

TEST(Schedule, Linear) {
  const auto c = sched(ScheduleKind::Linear, 1e-3, 10);
  EXPECT_DOUBLE_EQ(lr_at(c, 35, 110), 0.75e-3);  // a quarter of the way: (110-35)/100
  EXPECT_DOUBLE_EQ(lr_at(c, 60, 110), 0.5e-3);   // middle
  EXPECT_NEAR(lr_at(c, 109, 110), 1e-5, 1e-18);  // last update: 1/100 of the peak, not 0
  EXPECT_EQ(lr_at(c, 110, 110), 0.0);            // at and past the end: 0
  EXPECT_EQ(lr_at(c, 200, 110), 0.0);
}

TEST(Schedule, Cosine) {
  const auto c = sched(ScheduleKind::Cosine, 1e-3, 10);
  EXPECT_DOUBLE_EQ(lr_at(c, 60, 110), 0.5e-3);  // middle: cos(π/2) = 0
  // A quarter: ½(1 + cos(π/4)) = ½ + √2/4.
  EXPECT_NEAR(lr_at(c, 35, 110), 1e-3 * (0.5 + 0.35355339059327373), 1e-15);
  EXPECT_NEAR(lr_at(c, 85, 110), 1e-3 * (0.5 - 0.35355339059327373), 1e-15);
  // Last update: ½(1 + cos(0.99π)) = sin²(0.005π).
  EXPECT_NEAR(lr_at(c, 109, 110), 1e-3 * 2.4671981713422146e-4, 1e-18);
  EXPECT_NEAR(lr_at(c, 110, 110), 0.0, 1e-18);
  EXPECT_NEAR(lr_at(c, 400, 110), 0.0, 1e-18);  // clamped: no rise past the end
}

TEST(Schedule, MinLrIsTheFloorOfDecay) {
  const auto lin = sched(ScheduleKind::Linear, 1e-3, 10, 1e-4);
  EXPECT_DOUBLE_EQ(lr_at(lin, 10, 110), 1e-3);                     // still starts at the peak
  EXPECT_DOUBLE_EQ(lr_at(lin, 60, 110), 1e-4 + 0.9e-3 * 0.5);      // middle of [min, peak]
  EXPECT_NEAR(lr_at(lin, 109, 110), 1e-4 + 0.9e-3 * 0.01, 1e-18);  // last update
  EXPECT_DOUBLE_EQ(lr_at(lin, 110, 110), 1e-4);
  EXPECT_DOUBLE_EQ(lr_at(lin, 1000, 110), 1e-4);
  EXPECT_DOUBLE_EQ(lr_at(lin, 5, 110), 5e-4);  // warmup still rises from 0, not from min_lr

  const auto cos = sched(ScheduleKind::Cosine, 1e-3, 10, 1e-4);
  EXPECT_DOUBLE_EQ(lr_at(cos, 60, 110), 1e-4 + 0.9e-3 * 0.5);
  EXPECT_DOUBLE_EQ(lr_at(cos, 110, 110), 1e-4);
  EXPECT_DOUBLE_EQ(lr_at(cos, 1000, 110), 1e-4);
  for (int64_t s = 10; s < 110; ++s) {
    EXPECT_GE(lr_at(cos, s, 110), 1e-4) << s;
    EXPECT_LE(lr_at(cos, s + 1, 110), lr_at(cos, s, 110)) << s;  // monotone decay
  }
}

TEST(Schedule, NoWarmupAndWarmupEqualToTotal) {
  const auto lin = sched(ScheduleKind::Linear, 1e-3, 0);
  EXPECT_DOUBLE_EQ(lr_at(lin, 0, 4), 1e-3);  // the first update at the peak
  EXPECT_DOUBLE_EQ(lr_at(lin, 3, 4), 0.25e-3);
  const auto all_warm = sched(ScheduleKind::Cosine, 1e-3, 4);
  EXPECT_DOUBLE_EQ(lr_at(all_warm, 3, 4), 0.75e-3);
  EXPECT_NEAR(lr_at(all_warm, 4, 4), 1e-3, 1e-18);  // span clamps to 1: progress 0 → peak
  const auto one = sched(ScheduleKind::Cosine, 1e-3, 0);
  EXPECT_DOUBLE_EQ(lr_at(one, 0, 1), 1e-3);  // a one-update run uses the peak
}

TEST(Schedule, KindNamesAndBadInputs) {
  EXPECT_EQ(schedule_kind_from_name("cosine"), ScheduleKind::Cosine);
  EXPECT_EQ(schedule_kind_from_name("linear"), ScheduleKind::Linear);
  EXPECT_EQ(schedule_kind_from_name("constant"), ScheduleKind::Constant);
  EXPECT_STREQ(schedule_kind_name(ScheduleKind::Linear), "linear");
  try {
    schedule_kind_from_name("cosin");
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown kind 'cosin'"), std::string::npos);
  }
  const auto c = sched(ScheduleKind::Linear, 1e-3, 10);
  EXPECT_THROW(lr_at(c, -1, 110), Error);
  EXPECT_THROW(lr_at(c, 0, 0), Error);
  EXPECT_THROW(lr_at(sched(ScheduleKind::Linear, 1e-3, 20), 0, 10), Error);  // warmup > total
  EXPECT_THROW(lr_at(sched(ScheduleKind::Linear, 1e-3, -1), 0, 10), Error);
  EXPECT_THROW(lr_at(sched(ScheduleKind::Linear, 1e-3, 0, 2e-3), 0, 10), Error);  // min > peak
  EXPECT_THROW(lr_at(sched(ScheduleKind::Linear, 1e-3, 0, -1e-4), 0, 10), Error);
}
