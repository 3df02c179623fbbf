// bf16 products cost no accuracy a user would notice (issue 17): each domain recipe trained with
// training.compute_dtype=bf16 ends within 0.5% of the f32 run's held-out loss, with the same
// seed, data and steps. Two trainings of about a minute each per recipe: labelled slow.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "autograd/error.h"
#include "autograd/kernels/compute_choice.h"
#include "common.h"
#include "tmpdir.h"
#include "train_helpers.h"

namespace {

double final_val_loss(const std::string& config, const std::string& dtype,
                      const hone::test::TempDir& dir) {
  const std::string out = dir.file(dtype);
  hone::test::Outcome r =
      hone::test::run_hone("-q train " + hone::test::repo_file(config) + " output.dir=" + out +
                           " checkpoint.dir=" + out + "/ck training.compute_dtype=" + dtype);
  EXPECT_EQ(r.status, 0) << r.out;
  std::istringstream lines(hone::test::slurp(out + "/metrics.jsonl"));
  std::string line;
  double last = -1;
  while (std::getline(lines, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("val_loss")) last = j["val_loss"].get<double>();
  }
  return last;
}

void expect_same_quality(const std::string& config, const std::string& corpus) {
  HONE_REQUIRE_SHARED(data, corpus);
  try {
    hone::kernels::choose_compute("bf16", hone::kernels::cpu_kind());
  } catch (const hone::Error& e) {
    GTEST_SKIP() << "bf16 products cannot run here: " << e.what();
  }
  hone::test::TempDir dir;
  const double f32 = final_val_loss(config, "f32", dir);
  const double bf16 = final_val_loss(config, "bf16", dir);
  ASSERT_GT(f32, 0);
  ASSERT_GT(bf16, 0);
  const double rel = std::abs(bf16 - f32) / f32;
  std::cout << config << ": held-out loss f32 " << f32 << ", bf16 " << bf16 << " (" << 100.0 * rel
            << "% apart)\n";
  EXPECT_LE(rel, 0.005);
}

TEST(Bf16Quality, ShakespeareHeldOutLossWithinHalfAPercentOfF32) {
  expect_same_quality("recipes/configs/domain-shakespeare.yaml",
                      "corpora/tinyshakespeare/input.txt");
}

TEST(Bf16Quality, DarwinHeldOutLossWithinHalfAPercentOfF32) {
  expect_same_quality("recipes/configs/domain-darwin.yaml", "corpora/origin_of_species/pg1228.txt");
}

}  // namespace
