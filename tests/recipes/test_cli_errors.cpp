// Bad input through the real binary: one clear line naming the file and the problem, exit 1,
// never a crash (a crash would exit by signal, not 1).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "common.h"
#include "hone_process.h"
#include "tmpdir.h"

namespace {

using hone::test::Outcome;

void expect_one_line_error(const Outcome& o, const std::string& must_contain) {
  EXPECT_EQ(o.status, 1) << o.out;
  EXPECT_EQ(std::count(o.out.begin(), o.out.end(), '\n'), 1) << o.out;
  EXPECT_EQ(o.out.rfind("hone: ", 0), 0u) << o.out;
  EXPECT_NE(o.out.find(must_contain), std::string::npos) << o.out;
}

// A copy of a fixture model folder we can damage.
std::string copy_fixture(const hone::test::TempDir& dir, const std::string& src) {
  for (const char* f : {"config.json", "model.safetensors"})
    std::filesystem::copy_file(src + "/" + f, dir.file(f));
  return dir.path().string();
}

TEST(CliErrors, TruncatedSafetensors) {
  HONE_REQUIRE_SHARED(src, "fixtures/models/tiny-llama");
  hone::test::TempDir dir;
  std::string model = copy_fixture(dir, src);
  std::string bytes = hone::test::slurp(dir.file("model.safetensors"));
  hone::test::write_bytes(dir.file("model.safetensors"), bytes.substr(0, bytes.size() / 2));
  expect_one_line_error(hone::test::run_hone("inspect " + model), dir.file("model.safetensors"));
}

TEST(CliErrors, MalformedSafetensorsHeader) {
  HONE_REQUIRE_SHARED(src, "fixtures/models/tiny-llama");
  hone::test::TempDir dir;
  std::string model = copy_fixture(dir, src);
  std::string bytes = hone::test::slurp(dir.file("model.safetensors"));
  bytes[8] = '[';  // the JSON header must be an object
  hone::test::write_bytes(dir.file("model.safetensors"), bytes);
  expect_one_line_error(hone::test::run_hone("inspect " + model), "model.safetensors");
}

TEST(CliErrors, ConfigWithInconsistentHeads) {
  HONE_REQUIRE_SHARED(src, "fixtures/models/tiny-llama");
  hone::test::TempDir dir;
  std::string model = copy_fixture(dir, src);
  std::string cfg = hone::test::slurp(dir.file("config.json"));
  auto at = cfg.find("\"num_attention_heads\": 4");
  ASSERT_NE(at, std::string::npos);
  cfg.replace(at, 24, "\"num_attention_heads\": 7");
  hone::test::write_bytes(dir.file("config.json"), cfg);
  Outcome o = hone::test::run_hone("inspect " + model);
  expect_one_line_error(o, "config.json");
  EXPECT_NE(o.out.find("num_attention_heads"), std::string::npos) << o.out;
}

TEST(CliErrors, ConfigWithMissingField) {
  HONE_REQUIRE_SHARED(src, "fixtures/models/tiny-llama");
  hone::test::TempDir dir;
  std::string model = copy_fixture(dir, src);
  std::string cfg = hone::test::slurp(dir.file("config.json"));
  auto at = cfg.find("\"hidden_size\": 64,");
  ASSERT_NE(at, std::string::npos);
  cfg.erase(at, 18);
  hone::test::write_bytes(dir.file("config.json"), cfg);
  Outcome o = hone::test::run_hone("generate --model " + model + " --tokenizer x --prompt hi");
  expect_one_line_error(o, "config.json");
  EXPECT_NE(o.out.find("hidden_size"), std::string::npos) << o.out;
}

TEST(CliErrors, TruncatedLlama2cCheckpoint) {
  HONE_REQUIRE_SHARED(src, "models/stories260K/stories260K.bin");
  hone::test::TempDir dir;
  std::string bytes = hone::test::slurp(src);
  hone::test::write_bytes(dir.file("cut.bin"), bytes.substr(0, 100000));
  expect_one_line_error(hone::test::run_hone("inspect " + dir.file("cut.bin")),
                        dir.file("cut.bin"));
}

TEST(CliErrors, MissingFiles) {
  expect_one_line_error(hone::test::run_hone("inspect /nonexistent/dir"), "/nonexistent/dir");
  HONE_REQUIRE_SHARED(model, "models/stories260K/stories260K.bin");
  expect_one_line_error(hone::test::run_hone("generate --model " + model +
                                             " --tokenizer /nonexistent/tok.bin --prompt hi"),
                        "/nonexistent/tok.bin");
}

TEST(CliErrors, TokenizerOfTheWrongModel) {
  HONE_REQUIRE_SHARED(model, "models/stories260K/stories260K.bin");
  HONE_REQUIRE_SHARED(tok, "tokenizers/llama2/tokenizer.bin");
  expect_one_line_error(
      hone::test::run_hone("generate --model " + model + " --tokenizer " + tok + " --prompt hi"),
      "does not match");
}

std::string repo_file(const std::string& rel) {
  return std::string(HONE_SOURCE_DIR) + "/" + rel;
}
const std::string kModel = repo_file("data/samples/stories260K/stories260K.bin");
const std::string kTok = repo_file("data/samples/stories260K/tok512.bin");

// Runs hone with stdout sent to `stdout_to` (stdin from `stdin_from`); stderr is captured.
Outcome run_hone_stdout_to(const std::string& args, const std::string& stdout_to,
                           const std::string& stdin_from = "/dev/null") {
  return hone::test::run_hone(args, "< " + stdin_from + " 2>&1 >" + stdout_to);
}

// `hone tokenize > file` on a full disk exited 0 with the output cut: every command that prints
// to stdout must fail with the OS reason when stdout cannot be written (here /dev/full).
TEST(CliErrors, EveryCommandFailsWhenStdoutIsFull) {
  hone::test::TempDir dir;
  // 200 KB of text: more than any stdio buffer, as in the report (output cut at 100 KiB).
  std::string text;
  while (text.size() < 200000) text += "Once upon a time there was a little dog.\n";
  hone::test::write_bytes(dir.file("in.txt"), text);
  hone::test::write_bytes(dir.file("ids.json"), "[403, 407, 261, 378]\n[1, 2]\n");
  const std::string recipe = dir.file("r.yaml");
  std::ofstream(recipe) << "model:\n  path: " << kModel << "\n  tokenizer: " << kTok
                        << "\ndata:\n  train: " << dir.file("in.txt")
                        << "\n  seq_len: 32\n  val_fraction: 0.1\ntraining:\n  max_steps: 1\n"
                        << "output:\n  dir: " << dir.file("out") << "\n";
  struct Case {
    std::string args, in;
  };
  const Case cases[] = {
      {"tokenize --tokenizer " + kTok, dir.file("in.txt")},
      {"tokenize --lines --tokenizer " + kTok, dir.file("in.txt")},
      {"detokenize --tokenizer " + kTok, dir.file("ids.json")},
      {"inspect " + kModel, "/dev/null"},
      {"info", "/dev/null"},
      {"plan " + recipe, "/dev/null"},
      {"data inspect " + recipe, "/dev/null"},
      {"eval " + recipe, "/dev/null"},
      {"generate --model " + kModel + " --tokenizer " + kTok + " --prompt Once --max-new-tokens 5",
       "/dev/null"},
      {"--help", "/dev/null"},
  };
  for (const Case& c : cases) {
    // The same command with a working stdout succeeds: the failure below is stdout's alone.
    const Outcome ok = run_hone_stdout_to(c.args, "/dev/null", c.in);
    EXPECT_EQ(ok.status, 0) << c.args << "\n" << ok.out;
    const Outcome o = run_hone_stdout_to(c.args, "/dev/full", c.in);
    EXPECT_EQ(o.status, 1) << c.args << "\n" << o.out;
    EXPECT_NE(o.out.find("hone: stdout: write failed: No space left on device"), std::string::npos)
        << c.args << "\n"
        << o.out;
  }
}

// CLI11 exits 104-109 on usage errors; hone's README promises 1 for every error, 0 for --help.
TEST(CliErrors, UsageErrorsExitOneWithOneLine) {
  const std::string gen = "generate --model " + kModel + " --tokenizer " + kTok;
  const std::pair<std::string, std::string> cases[] = {
      {"", "subcommand is required"},
      {"frobnicate", "unknown command 'frobnicate'"},
      {"inspect", "path is required"},
      {"generate --prompt hi", "--model is required"},
      {gen + " --prompt hi --top-k many", "many"},
      {gen + " --prompt hi --bogus", "--bogus"},
      {"train", "recipe is required"},
      {"tokenize", "--tokenizer is required"},
      {"data", "subcommand is required"},
      {"inspect a b", "b"},
  };
  for (const auto& [args, what] : cases) {
    const Outcome o = hone::test::run_hone(args);
    expect_one_line_error(o, what);
    EXPECT_NE(o.out.find("--help"), std::string::npos) << args << "\n" << o.out;
  }
  for (const char* help : {"--help", "generate --help", "data inspect --help"}) {
    const Outcome o = hone::test::run_hone(help);
    EXPECT_EQ(o.status, 0) << help << "\n" << o.out;
    EXPECT_NE(o.out.find("Usage"), std::string::npos) << help << "\n" << o.out;
  }
}

// Sampling options are checked before anything is printed: the prompt used to come out first.
TEST(CliErrors, BadGenerateOptionsFailBeforeAnyOutput) {
  const std::string gen =
      "generate --model " + kModel + " --tokenizer " + kTok + " --prompt 'Once upon a time'";
  const std::pair<std::string, std::string> cases[] = {
      {"--temperature nan", "--temperature: must be a finite number >= 0, 0 for greedy (got nan)"},
      {"--temperature inf", "--temperature: must be a finite number >= 0, 0 for greedy (got inf)"},
      {"--temperature -0.5", "(got -0.5)"},
      {"--top-k -1", "--top-k: must be >= 0, 0 for off (got -1)"},
      {"--top-p 2", "--top-p: must be in (0, 1], 1 for off (got 2)"},
      {"--top-p 0", "--top-p: must be in (0, 1], 1 for off (got 0)"},
      {"--top-p nan", "(got nan)"},
      {"--max-new-tokens -3", "--max-new-tokens: must be >= 0 (got -3)"},
      {"--dtype q2", "--dtype"},
  };
  for (const auto& [opt, what] : cases) {
    const Outcome o = hone::test::run_hone(gen + " " + opt);
    expect_one_line_error(o, what);
    EXPECT_EQ(o.out.find("Once"), std::string::npos) << opt << "\n" << o.out;
  }
}

// `export --force` to /dev/full once renamed a regular file over the device node. Nothing that
// is not a regular file is replaced (a FIFO and a symlink stand in for a device here: making a
// device node needs root); the refusal names the path and comes before the model is read.
TEST(CliErrors, ForceNeverReplacesSomethingThatIsNotARegularFile) {
  hone::test::TempDir dir;
  namespace fs = std::filesystem;
  const std::string fifo = dir.file("fifo"), link = dir.file("link"), target = dir.file("target");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  hone::test::write_bytes(target, "keep me");
  fs::create_symlink(target, link);
  const std::string folder = dir.file("folder");
  fs::create_directories(folder + "/real");
  hone::test::write_bytes(folder + "/real/keep.txt", "keep");
  const std::string folder_link = dir.file("folder_link");
  fs::create_directory_symlink(folder + "/real", folder_link);
  const std::string model = "--model " + kModel + " --tokenizer " + kTok;
  const std::pair<std::string, std::string> cases[] = {
      {"export " + model + " --format gguf --force --out " + fifo, fifo},
      {"export " + model + " --format gguf --force --out " + link, link},
      {"export " + model + " --format hf --force --out " + fifo, fifo},
      {"export " + model + " --format hf --force --out " + folder_link, folder_link},
      {"merge --base " + kModel + " --adapter " + dir.file("none") + " --force --out " + fifo,
       fifo},
      {"unmerge --base " + kModel + " --adapter " + dir.file("none") + " --force --out " +
           folder_link,
       folder_link},
  };
  for (const auto& [args, path] : cases) {
    const Outcome o = hone::test::run_hone(args);
    expect_one_line_error(o, path + ": exists and is not a");
    EXPECT_NE(o.out.find("refusing to replace it"), std::string::npos) << args << "\n" << o.out;
  }
  EXPECT_TRUE(fs::is_fifo(fs::symlink_status(fifo)));
  EXPECT_TRUE(fs::is_symlink(fs::symlink_status(link)));
  EXPECT_EQ(hone::test::slurp(target), "keep me");
  EXPECT_TRUE(fs::is_symlink(fs::symlink_status(folder_link)));
  EXPECT_EQ(hone::test::slurp(folder + "/real/keep.txt"), "keep");
  // The device itself, without --force (so that even a regression cannot replace it, as root):
  // the refusal says what it is rather than suggesting --force.
  struct stat st;
  ASSERT_EQ(::stat("/dev/full", &st), 0);
  ASSERT_TRUE(S_ISCHR(st.st_mode));
  expect_one_line_error(hone::test::run_hone("export " + model + " --format gguf --out /dev/full"),
                        "/dev/full: exists and is not a regular file (a character device)");
  ASSERT_EQ(::stat("/dev/full", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
}

}  // namespace
