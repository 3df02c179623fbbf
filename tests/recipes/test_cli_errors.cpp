// Bad input through the real binary: one clear line naming the file and the problem, exit 1,
// never a crash (a crash would exit by signal, not 1).
#include <gtest/gtest.h>

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

}  // namespace
