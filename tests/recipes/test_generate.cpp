// The golden-text guard: llama2.c's run.c output for the real stories260K checkpoint, token for
// token, through the library and through the `hone` binary.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/error.h"
#include "common.h"
#include "hone_process.h"
#include "recipes/generate.h"

using namespace hone;

namespace {

const std::vector<int32_t> kGoldenIds = {432, 383, 286, 261, 376, 298, 315, 421, 395, 317,
                                         426, 338, 401, 396, 267, 337, 410, 408, 419, 292,
                                         411, 322, 265, 282, 295, 433, 426, 385, 328, 432,
                                         358, 394, 261, 370, 432, 352, 266, 268, 388, 426};
// ../shared/fixtures/README.md quotes this text followed by " She", which is a 41st token
// (id 338): the 40 golden ids decode to exactly the text below.
const char* kGoldenText =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
    "park. One day, she saw a big, red ball.";

TEST(Generate, Stories260KGreedyMatchesLlama2c) {
  HONE_REQUIRE_SHARED(model, "models/stories260K/stories260K.bin");
  HONE_REQUIRE_SHARED(tok, "models/stories260K/tok512.bin");
  GenerateOptions o;
  o.model = model;
  o.tokenizer = tok;
  o.prompt = "Once upon a time";
  o.max_new_tokens = 40;
  o.temperature = 0;
  GenerateResult r = run_generate(o);
  EXPECT_EQ(r.prompt_ids, (std::vector<int32_t>{1, 403, 407, 261, 378}));
  EXPECT_EQ(r.new_ids, kGoldenIds);
  EXPECT_EQ(r.text, kGoldenText);
}

TEST(Generate, SamplingIsSeeded) {
  HONE_REQUIRE_SHARED(model, "models/stories260K/stories260K.bin");
  HONE_REQUIRE_SHARED(tok, "models/stories260K/tok512.bin");
  GenerateOptions o;
  o.model = model;
  o.tokenizer = tok;
  o.prompt = "The dog";
  o.max_new_tokens = 30;
  o.temperature = 1.0;
  o.top_p = 0.9;
  o.seed = 7;
  GenerateResult a = run_generate(o), b = run_generate(o);
  EXPECT_EQ(a.new_ids, b.new_ids);
  o.seed = 8;
  GenerateResult c = run_generate(o);
  EXPECT_NE(a.new_ids, c.new_ids);
}

TEST(Cli, GeneratePrintsTheGoldenText) {
  HONE_REQUIRE_SHARED(model, "models/stories260K/stories260K.bin");
  HONE_REQUIRE_SHARED(tok, "models/stories260K/tok512.bin");
  test::Outcome r = test::run_hone("generate --model " + model + " --tokenizer " + tok +
                                   " --prompt 'Once upon a time' --max-new-tokens 40 "
                                   "--temperature 0");
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, std::string(kGoldenText) + "\n");
}

TEST(Cli, MissingModelIsOneClearLine) {
  test::Outcome r =
      test::run_hone("generate --model /nonexistent/model.bin --tokenizer /x --prompt hi");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("/nonexistent/model.bin"), std::string::npos) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
}

// 31 sentences: 498 prompt tokens (with BOS) of stories260K's 512-token context, which greedy
// decoding continues without ending the story.
std::string long_prompt() {
  std::string p;
  for (int i = 0; i < 31; ++i) p += "Lily went to the park and played with her ball. ";
  return p;
}

std::string repo_file(const std::string& rel) {
  return std::string(HONE_SOURCE_DIR) + "/" + rel;
}

// Generation used to stop silently when the context was full.
TEST(Generate, SaysWhenItStopsAtTheContextLength) {
  GenerateOptions o;
  o.model = repo_file("data/samples/stories260K/stories260K.bin");
  o.tokenizer = repo_file("data/samples/stories260K/tok512.bin");
  o.prompt = long_prompt();
  o.max_new_tokens = 100;
  o.temperature = 0;
  GenerateResult r = run_generate(o);
  ASSERT_EQ(r.prompt_ids.size(), 498u);
  // The last token sampled sees the full 512 positions; it is not fed back.
  EXPECT_EQ(r.new_ids.size(), 512u - 498u + 1u);
  EXPECT_TRUE(r.stopped_at_context);
  EXPECT_EQ(r.context, 512);
  // Stopping at --max-new-tokens, or at the end of a story, is not "stopped at the context".
  o.max_new_tokens = 10;
  EXPECT_FALSE(run_generate(o).stopped_at_context);
  o.max_new_tokens = 15;
  EXPECT_FALSE(run_generate(o).stopped_at_context);
  o.prompt = "Once upon a time";
  o.max_new_tokens = 600;
  r = run_generate(o);
  EXPECT_LT(r.new_ids.size(), 500u);  // the story ends (BOS) well before the context is full
  EXPECT_FALSE(r.stopped_at_context);

  const test::Outcome cli =
      test::run_hone("generate --model " + o.model + " --tokenizer " + o.tokenizer + " --prompt '" +
                         long_prompt() + "' --max-new-tokens 100 --temperature 0",
                     "2>&1 >/dev/null");
  EXPECT_EQ(cli.status, 0) << cli.out;
  EXPECT_EQ(cli.out,
            "hone: generation stopped at the model's context length of 512 tokens (15 of "
            "--max-new-tokens 100 generated)\n");
}

TEST(Generate, OptionsAreCheckedBeforeTheModelIsRead) {
  GenerateOptions o;
  o.model = "/nonexistent/model.bin";  // never opened: the options fail first
  o.prompt = "hi";
  auto message = [&]() -> std::string {
    try {
      check_generate_options(o);
      run_generate(o);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  o.temperature = std::nan("");
  EXPECT_EQ(message(), "--temperature: must be a finite number >= 0, 0 for greedy (got nan)");
  o.temperature = 1e300;  // finite as a double, infinite as the float sampling runs in
  EXPECT_EQ(message(), "--temperature: must be a finite number >= 0, 0 for greedy (got 1e+300)");
  o.temperature = 0.7;
  o.top_k = -1;
  EXPECT_EQ(message(), "--top-k: must be >= 0, 0 for off (got -1)");
  o.top_k = 40;
  o.top_p = 1.5;
  EXPECT_EQ(message(), "--top-p: must be in (0, 1], 1 for off (got 1.5)");
  o.top_p = 1e-60;  // positive, but 0 as a float
  EXPECT_EQ(message(), "--top-p: must be in (0, 1], 1 for off (got 1e-60)");
  o.top_p = 0.9;
  o.max_new_tokens = -1;
  EXPECT_EQ(message(), "--max-new-tokens: must be >= 0 (got -1)");
  o.max_new_tokens = 5;
  EXPECT_NE(message().find("/nonexistent/model.bin"), std::string::npos);
}

}  // namespace
