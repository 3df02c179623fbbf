// The paths a new user walks through the real binary: a misspelt command, --version, -q.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "autograd/error.h"
#include "common.h"
#include "hone_process.h"
#include "recipes/recipe.h"
#include "tmpdir.h"
#include "train_helpers.h"

namespace {

using hone::test::Outcome;

Outcome run_shell(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {-1, ""};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), out};
}

// A misspelt command is named with the nearest one and exits 1, hone's status for every error.
TEST(CliPaths, UnknownCommandSuggestsTheNearest) {
  const std::pair<std::string, std::string> cases[] = {
      {"trian", "hone: unknown command 'trian' (did you mean 'train'?)\n"},
      {"genrate --model x", "hone: unknown command 'genrate' (did you mean 'generate'?)\n"},
      {"data inspct r.yaml",
       "hone: unknown command 'data inspct' (did you mean 'data inspect'?)\n"},
      {"frobnicate", "hone: unknown command 'frobnicate' (see --help)\n"},
  };
  for (const auto& [args, message] : cases) {
    const Outcome o = hone::test::run_hone(args);
    EXPECT_EQ(o.status, 1) << args;
    EXPECT_EQ(o.out, message) << args;
  }
}

// "hone 0.1.0" (CMake's project version) and, built from a git checkout, its commit.
TEST(CliPaths, VersionPrintsProjectVersionAndCommit) {
  const std::string cmake = hone::test::slurp(std::string(HONE_SOURCE_DIR) + "/CMakeLists.txt");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(cmake, m, std::regex(R"(project\(hone VERSION ([0-9.]+))")));
  const std::string version = m[1];
  const Outcome o = hone::test::run_hone("--version", "2>/dev/null");
  EXPECT_EQ(o.status, 0) << o.out;
  const bool checkout = std::filesystem::exists(std::string(HONE_SOURCE_DIR) + "/.git");
  const std::string commit = checkout ? R"( \(git [0-9a-f]{7,}\))" : "";
  EXPECT_TRUE(std::regex_match(o.out, std::regex("hone " + version + commit + "\n"))) << o.out;
}

// `hone -q train` printed nothing at all. Quiet drops the banner, the resolved recipe and the
// progress, never the result: the held-out loss before and after, the final loss, the adapter.
TEST(CliPaths, QuietTrainStillPrintsTheResult) {
  hone::test::TempDir dir;
  const std::string out = dir.file("out");
  const std::string recipe = hone::test::write_small_recipe(dir.file("r.yaml"), out, 2);
  const Outcome o = hone::test::run_hone("train " + recipe);  // run_hone passes -q
  ASSERT_EQ(o.status, 0) << o.out;
  EXPECT_EQ(o.out.find("resolved recipe"), std::string::npos) << o.out;
  EXPECT_EQ(o.out.find("OpenBLAS"), std::string::npos) << o.out;
  EXPECT_EQ(o.out.find("step 1/2"), std::string::npos) << o.out;  // no progress lines
  EXPECT_TRUE(std::regex_search(o.out, std::regex(R"(hone: step 0 val loss [0-9.]+)"))) << o.out;
  EXPECT_TRUE(std::regex_search(o.out, std::regex(R"(hone: step 2 loss [0-9.]+\n)"))) << o.out;
  EXPECT_TRUE(std::regex_search(o.out, std::regex(R"(hone: step 2 val loss [0-9.]+)"))) << o.out;
  EXPECT_NE(o.out.find("hone: adapter written to " + out + "\n"), std::string::npos) << o.out;
}

// The reference recipe's own example (`training.max_steps=10`, its header) was refused: its
// warmup_steps of 30 exceeded the run. The warmup is clamped to the run, with a note: the lr
// rises over all 10 steps (step 10's update uses lr * 9/10). Small shapes keep the test fast.
TEST(CliPaths, ReferenceRecipeShortExampleClampsTheWarmup) {
  hone::test::TempDir dir;
  const std::string recipe = hone::test::repo_file("recipes/configs/stories260k-shakespeare.yaml");
  ASSERT_NE(hone::test::slurp(recipe).find("training.max_steps=10 optimizer.lr=1e-3"),
            std::string::npos);
  const std::string out = dir.file("run");
  const Outcome o = hone::test::run_hone(
      "train " + recipe + " training.max_steps=10 optimizer.lr=1e-3 output.dir=" + out +
      " data.seq_len=32 training.batch_size=2 lora.rank=2 eval.max_batches=1 training.threads=2");
  ASSERT_EQ(o.status, 0) << o.out;
  EXPECT_NE(o.out.find("hone: note: scheduler.warmup_steps 30 is longer than the run's 10 steps; "
                       "warming up over all 10\n"),
            std::string::npos)
      << o.out;
  std::istringstream metrics(hone::test::slurp(out + "/metrics.jsonl"));
  double last_lr = -1;
  for (std::string line; std::getline(metrics, line);) {
    const auto row = nlohmann::json::parse(line);
    if (row.contains("lr") && row["step"] == 10) last_lr = row["lr"].get<double>();
  }
  EXPECT_NEAR(last_lr, 1e-3 * 9 / 10, 1e-12);
  EXPECT_TRUE(std::filesystem::exists(out + "/adapter_model.safetensors"));
}

// GGUF models work in generate and inspect, and a GGUF's own tokenizer is the default one: the
// help says so.
TEST(CliPaths, HelpTextsMentionGguf) {
  auto help_line = [](const std::string& args, const std::string& option) {
    const Outcome o = hone::test::run_hone(args + " --help");
    EXPECT_EQ(o.status, 0) << o.out;
    // CLI11 wraps nothing: an option's help is on its line.
    const size_t at = o.out.find("  " + option);
    if (at == std::string::npos) return std::string("(no " + option + " in " + args + " --help)");
    return o.out.substr(at, o.out.find('\n', at) - at);
  };
  EXPECT_NE(help_line("generate", "--model").find(".gguf"), std::string::npos);
  EXPECT_NE(help_line("generate", "--tokenizer").find(".gguf"), std::string::npos);
  EXPECT_NE(help_line("inspect", "path").find(".gguf"), std::string::npos);
  EXPECT_NE(help_line("export", "--tokenizer").find(".gguf"), std::string::npos);
}

// The reference recipe documents every model.dtype the parser takes, and what val_fraction holds
// out for each kind of data (windows of text, records of JSONL).
TEST(CliPaths, ReferenceRecipeDocumentsDtypesAndValFraction) {
  const std::string recipe = hone::test::repo_file("recipes/configs/stories260k-shakespeare.yaml");
  const std::string text = hone::test::slurp(recipe);
  EXPECT_NE(text.find("f32 | bf16 | f16 | q8_0 | q4_0"), std::string::npos);
  for (const char* dtype : {"f32", "bf16", "f16", "q8_0", "q4_0"})
    EXPECT_NO_THROW(hone::load_recipe(recipe, {std::string("model.dtype=") + dtype})) << dtype;
  EXPECT_THROW(hone::load_recipe(recipe, {"model.dtype=q2_k"}), hone::Error);
  const size_t at = text.find("  val_fraction:");
  ASSERT_NE(at, std::string::npos);
  const size_t from = text.rfind("  val:", at);  // the comment runs from data.val to the key
  ASSERT_NE(from, std::string::npos);
  const std::string comment = text.substr(from, at - from);
  EXPECT_NE(comment.find("evenly spaced"), std::string::npos) << comment;
  EXPECT_NE(comment.find("packed window of\n  # seq_len tokens for text"), std::string::npos)
      << comment;
  EXPECT_NE(comment.find("a record for the JSONL formats"), std::string::npos) << comment;
  EXPECT_EQ(comment.find("documents"), std::string::npos) << comment;
}

// `make install PREFIX=DIR` is `cmake --install build --prefix DIR`: DIR/bin/hone, which runs.
TEST(CliPaths, InstallPutsHoneInPrefixBin) {
  hone::test::TempDir dir;
  const std::string prefix = dir.file("prefix");
  const std::string build = HONE_BINARY_DIR;
  const Outcome installed = run_shell("cmake --install " + build + " --prefix " + prefix + " 2>&1");
  ASSERT_EQ(installed.status, 0) << installed.out;
  const std::string hone = prefix + "/bin/hone";
  ASSERT_TRUE(std::filesystem::exists(hone)) << installed.out;
  const Outcome ours = run_shell(hone + " --version");
  EXPECT_EQ(ours.status, 0);
  EXPECT_EQ(ours.out, run_shell(build + "/hone --version").out);
  // The Makefile passes PREFIX through (dry run: nothing is built or installed).
  const Outcome make = run_shell("make -n -C " + std::string(HONE_SOURCE_DIR) +
                                 " install BUILD=" + build + " PREFIX=/opt/x 2>&1");
  EXPECT_EQ(make.status, 0) << make.out;
  EXPECT_NE(make.out.find("cmake --install " + build + " --prefix \"/opt/x\""), std::string::npos)
      << make.out;
}

// `make quickstart` builds the hone binary alone (what it runs), not every test and benchmark,
// and without make's "Entering directory" lines.
TEST(CliPaths, QuickstartBuildsOnlyHone) {
  const std::string build = HONE_BINARY_DIR;
  const Outcome make = run_shell("make -n -C " + std::string(HONE_SOURCE_DIR) +
                                 " quickstart BUILD=" + build + " 2>&1");
  EXPECT_EQ(make.status, 0) << make.out;
  size_t builds = 0;
  for (size_t at = make.out.find("cmake --build"); at != std::string::npos;
       at = make.out.find("cmake --build", at + 1)) {
    ++builds;
    const std::string line = make.out.substr(at, make.out.find('\n', at) - at);
    EXPECT_NE(line.find("--target hone"), std::string::npos) << line;
    EXPECT_NE(line.find("--no-print-directory"), std::string::npos) << line;
  }
  EXPECT_EQ(builds, 1u) << make.out;
  EXPECT_NE(make.out.find("scripts/quickstart.sh"), std::string::npos) << make.out;
}

// `hone -q eval` prints its one result line and nothing about the data it read.
TEST(CliPaths, QuietEvalPrintsOnlyTheResult) {
  hone::test::TempDir dir;
  const std::string recipe = hone::test::write_small_recipe(dir.file("r.yaml"), dir.file("out"), 1);
  const Outcome quiet =
      run_shell(std::string(HONE_BINARY_DIR) + "/hone -q eval " + recipe + " 2>&1");
  ASSERT_EQ(quiet.status, 0) << quiet.out;
  EXPECT_EQ(quiet.out.rfind("val loss ", 0), 0u) << quiet.out;
  EXPECT_EQ(quiet.out.find("hone: data:"), std::string::npos) << quiet.out;
  const Outcome loud = run_shell(std::string(HONE_BINARY_DIR) + "/hone eval " + recipe + " 2>&1");
  EXPECT_NE(loud.out.find("hone: data:"), std::string::npos) << loud.out;
}

}  // namespace
