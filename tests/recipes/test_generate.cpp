// The golden-text guard: llama2.c's run.c output for the real stories260K checkpoint, token for
// token, through the library and through the `hone` binary.
#include <gtest/gtest.h>

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

}  // namespace
