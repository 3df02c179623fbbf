// Runs that must not end in exit 0: a collapsed model, a base with non-finite weights, and a
// metrics file that cannot be written.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "autograd/error.h"
#include "hone_process.h"
#include "recipes/metrics_log.h"
#include "recipes/train_step.h"
#include "tmpdir.h"
#include "train_helpers.h"

namespace {

using hone::test::Outcome;
namespace fs = std::filesystem;

const double kLn512 = std::log(512.0);

TEST(CollapseWatch, HealthyStepsNeverTrip) {
  hone::CollapseWatch w(512);
  // Small but non-zero gradients, losses near ln(vocab) as at the start of a fresh run.
  for (int i = 0; i < 1000; ++i)
    EXPECT_EQ(w.observe(kLn512 - 1e-3 * i, 1e-12 + 1e-3 * (i % 7), 256), "") << i;
  // A step without target tokens has a zero gradient by construction: not a collapse.
  for (int i = 0; i < 10; ++i) EXPECT_EQ(w.observe(0.0, 0.0, 0), "");
}

TEST(CollapseWatch, ZeroGradientAtTheUniformLossTripsAtOnce) {
  hone::CollapseWatch w(512);
  EXPECT_EQ(w.observe(13.4, 6.2e6, 256), "");
  const std::string d = w.observe(6.2383246421813965, 0.0, 256);  // hone's float loss of ln 512
  EXPECT_NE(d.find("exactly 0 for 1 step"), std::string::npos) << d;
  EXPECT_NE(d.find("uniform distribution"), std::string::npos) << d;
  // A zero gradient at a loss far from ln(vocab) is tolerated for two steps, not three.
  hone::CollapseWatch v(512);
  EXPECT_EQ(v.observe(4.0, 0.0, 256), "");
  EXPECT_EQ(v.observe(4.0, 0.0, 256), "");
  EXPECT_EQ(v.observe(4.0, 0.5, 256), "");  // a real gradient resets the count
  EXPECT_EQ(v.observe(4.0, 0.0, 256), "");
  EXPECT_EQ(v.observe(4.0, 0.0, 256), "");
  EXPECT_NE(v.observe(4.0, 0.0, 256).find("exactly 0 for 3 steps"), std::string::npos);
}

class RunGuards : public ::testing::Test {
 protected:
  hone::test::TempDir dir;
};

// optimizer.lr 1e6 drives stories260K to the uniform prediction (loss ln 512, gradient norm 0)
// within a few steps; that run used to train on to the end and exit 0.
TEST_F(RunGuards, ACollapsedRunStopsAndSuggestsALowerLearningRate) {
  const std::string out = dir.file("run");
  const std::string recipe = hone::test::write_small_recipe(dir.file("r.yaml"), out, 12);
  const Outcome r = hone::test::run_hone("train " + recipe + " optimizer.lr=1e6");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_EQ(r.out.rfind("hone: step ", 0), 0u) << r.out;
  EXPECT_NE(r.out.find(": the run collapsed: the gradient norm has been exactly 0 for 1 step with "
                       "loss 6.23832 (= ln(vocab): the model predicts the uniform distribution)"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("try a lower optimizer.lr (now 1e+06)"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(out + "/adapter_model.safetensors"));
  // The same recipe at its own learning rate is healthy end to end.
  const Outcome ok = hone::test::run_hone("train " + recipe + " output.dir=" + dir.file("ok"));
  EXPECT_EQ(ok.status, 0) << ok.out;
}

// A copy of stories260K with a NaN in row 0 of the token embedding (the <unk> token, which no
// text uses): nothing computed from it is NaN, so only a look at the weights finds it.
std::string damaged_stories(const hone::test::TempDir& dir) {
  std::string bytes =
      hone::test::slurp(hone::test::repo_file("data/samples/stories260K/stories260K.bin"));
  const float nan = std::nanf("");
  std::memcpy(&bytes[28 + 3 * sizeof(float)], &nan, sizeof nan);  // after the 7-int header
  hone::test::write_bytes(dir.file("damaged.bin"), bytes);
  return dir.file("damaged.bin");
}

TEST_F(RunGuards, ABaseWithANanWeightIsNamedByTrainEvalAndGenerate) {
  const std::string model = damaged_stories(dir);
  const std::string tok = hone::test::repo_file("data/samples/stories260K/tok512.bin");
  const std::string recipe = hone::test::write_small_recipe(dir.file("r.yaml"), dir.file("run"), 2);
  const std::string what =
      model +
      ": tensor model.embed_tokens.weight: non-finite value (nan) at element 3 "
      "of 32768; the base model's weights are damaged";
  for (const std::string& cmd :
       {"train " + recipe + " model.path=" + model, "eval " + recipe + " model.path=" + model,
        "generate --model " + model + " --tokenizer " + tok + " --prompt Once"}) {
    const Outcome r = hone::test::run_hone(cmd);
    EXPECT_EQ(r.status, 1) << cmd << "\n" << r.out;
    EXPECT_NE(r.out.find(what), std::string::npos) << cmd << "\n" << r.out;
    EXPECT_EQ(r.out.find("optimizer.lr"), std::string::npos) << cmd << "\n" << r.out;
    EXPECT_EQ(r.out.find("Once"), std::string::npos) << cmd << "\n" << r.out;
  }
  EXPECT_FALSE(fs::exists(dir.file("run") + "/adapter_model.safetensors"));
}

// Appends metrics under a 1000-byte file-size limit (SIGXFSZ ignored, so write(2) fails with
// EFBIG as on a full device); exits 3 with the error on stderr, or 0 if nothing failed.
[[noreturn]] void append_past_the_limit(const std::string& path) {
  std::signal(SIGXFSZ, SIG_IGN);
  const rlimit lim{1000, 1000};
  setrlimit(RLIMIT_FSIZE, &lim);
  try {
    hone::MetricsLog log(path, "{\"step\":0}\n");
    for (int i = 1; i <= 100; ++i) log.add({{"step", i}, {"loss", 1.0 / i}});
    log.close();
  } catch (const hone::Error& e) {
    std::cerr << e.what() << std::endl;
    std::_Exit(3);
  }
  std::_Exit(0);
}

TEST_F(RunGuards, MetricsThatCannotBeWrittenAreAnErrorNamingTheFile) {
  // The "fast" (fork) death test style, so the child writes into this test's folder; the child
  // only opens and writes a file.
  GTEST_FLAG_SET(death_test_style, "fast");
  const std::string path = dir.file("metrics.jsonl");
  EXPECT_EXIT(append_past_the_limit(path), ::testing::ExitedWithCode(3),
              "metrics.jsonl: cannot write metrics: File too large");
  // The writes before the limit are in the file.
  const std::string text = hone::test::slurp(path);
  EXPECT_EQ(text.rfind("{\"step\":0}\n{\"loss\":1.0,\"step\":1}\n", 0), 0u) << text;
}

TEST_F(RunGuards, MetricsFileMustBeARegularFile) {
  const std::string recipe = hone::test::write_small_recipe(dir.file("r.yaml"), dir.file("run"), 2);
  ASSERT_EQ(::mkfifo(dir.file("fifo").c_str(), 0644), 0);
  const Outcome r =
      hone::test::run_hone("train " + recipe + " logging.metrics_file=" + dir.file("fifo"));
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find(dir.file("fifo") + ": exists and is not a regular file (a FIFO)"),
            std::string::npos)
      << r.out;
  EXPECT_TRUE(fs::is_fifo(fs::symlink_status(dir.file("fifo"))));
}

}  // namespace
