// Every shipped recipe (recipes/configs/*.yaml), as written but for a 2-step run: `hone plan`'s
// predicted peak within 15% of the peak RSS of `hone train` (evaluation before training and at
// step 2, a checkpoint at step 2), measured by /usr/bin/time. The recipes read ../shared's
// corpora; a recipe whose files are absent is skipped. About 35 s on 2 cores: labelled slow.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "hone_process.h"
#include "tmpdir.h"

namespace fs = std::filesystem;

namespace {

struct Peak {
  double predicted_mib = 0, measured_mib = 0;
};

// `hone plan` and a 2-step `hone train` of `recipe`, both with its output in `dir`.
Peak plan_and_measure(const fs::path& recipe, const std::string& dir) {
  Peak p;
  const std::string args = recipe.string() + " output.dir=" + dir +
                           " training.max_steps=2 scheduler.warmup_steps=0 eval.every=2"
                           " checkpoint.every=2";
  const auto plan = hone::test::run_hone("plan " + args);
  EXPECT_EQ(plan.status, 0) << plan.out;
  std::smatch m;
  if (!std::regex_search(plan.out, m, std::regex(R"(predicted peak +([0-9.]+) (MiB|GiB))"))) {
    ADD_FAILURE() << plan.out;
    return p;
  }
  p.predicted_mib = std::stod(m[1]) * (m[2] == "GiB" ? 1024 : 1);
  const auto run =
      hone::test::run_command("/usr/bin/time -f 'maxrss %M' " + std::string(HONE_BINARY_DIR) +
                              "/hone -q train " + args + " 2>&1");
  EXPECT_EQ(run.status, 0) << run.out;
  if (!std::regex_search(run.out, m, std::regex(R"(maxrss ([0-9]+))"))) {
    ADD_FAILURE() << run.out;
    return p;
  }
  p.measured_mib = std::stod(m[1]) / 1024;
  return p;
}

TEST(PlanRecipes, EveryShippedRecipeWithin15PercentOfMeasuredPeak) {
  if (!fs::exists("/usr/bin/time")) GTEST_SKIP() << "needs /usr/bin/time (Debian package time)";
  if (!fs::exists(HONE_SHARED_DIR)) GTEST_SKIP() << "needs ../shared (the recipes' corpora)";
  std::vector<fs::path> recipes;
  for (const auto& e : fs::directory_iterator(fs::path(HONE_SOURCE_DIR) / "recipes" / "configs"))
    if (e.path().extension() == ".yaml") recipes.push_back(e.path());
  std::sort(recipes.begin(), recipes.end());
  ASSERT_GE(recipes.size(), 7u);
  hone::test::TempDir tmp;
  for (const fs::path& r : recipes) {
    const Peak p = plan_and_measure(r, tmp.file(r.stem().string()));
    if (p.measured_mib <= 0) continue;
    EXPECT_NEAR(p.predicted_mib / p.measured_mib, 1.0, 0.15)
        << r.filename() << ": predicted " << p.predicted_mib << " MiB, measured " << p.measured_mib
        << " MiB";
    std::cout << r.filename().string() << ": predicted " << p.predicted_mib << " MiB, measured "
              << p.measured_mib << " MiB\n";
  }
}

}  // namespace
