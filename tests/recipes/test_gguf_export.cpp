// `hone export --format gguf`: the tokenizer metadata it embeds, checked against llama.cpp's own
// stories260K.gguf, and a GGUF round trip through the CLI that generates the golden text.
#include <gtest/gtest.h>

#include "common.h"
#include "data/hf_tokenizer.h"
#include "gguf_tokenizer_helpers.h"
#include "hone_process.h"
#include "model/io/gguf.h"
#include "recipes/model_tokenizer.h"
#include "tmpdir.h"
#include "train_helpers.h"

using namespace hone;

TEST(GgufExport, Llama2cVocabularyMatchesLlamaCppsStories260K) {
  HONE_REQUIRE_SHARED(ref, "models/stories260K/stories260K.gguf");
  const std::string bin = test::repo_file("data/samples/stories260K/stories260K.bin");
  const std::string tok = test::repo_file("data/samples/stories260K/tok512.bin");
  ModelConfig cfg;
  GgufTokenizerData ours = gguf_tokenizer_for_model(bin, tok, cfg);
  GgufTokenizerData want = read_gguf_tokenizer(ref);
  EXPECT_EQ(ours.model, want.model);
  EXPECT_EQ(ours.tokens, want.tokens);
  EXPECT_EQ(ours.scores, want.scores);
  EXPECT_EQ(ours.token_types, want.token_types);
  EXPECT_EQ(ours.bos_id, want.bos_id);
  EXPECT_EQ(ours.eos_id, want.eos_id);
  EXPECT_EQ(ours.unk_id, want.unk_id);
}

TEST(GgufExport, ByteLevelBpeBecomesAGpt2Vocabulary) {
  HONE_REQUIRE_SHARED(dir, "tokenizers/llama3");
  ModelConfig cfg;
  cfg.model_type = "llama";
  cfg.vocab_size = 128256;
  GgufTokenizerData d = gguf_tokenizer_for_model("/nonexistent/model", dir, cfg);
  HfTokenizer hf(dir + "/tokenizer.json");
  EXPECT_EQ(d.model, "gpt2");
  EXPECT_EQ(d.pre, "llama-bpe");
  ASSERT_EQ(d.tokens.size(), 128256u);
  EXPECT_EQ(d.tokens[9906], "Hello");
  EXPECT_EQ(d.tokens[128000], "<|begin_of_text|>");
  EXPECT_EQ(d.token_types[128000], 3);  // control
  EXPECT_EQ(d.token_types[9906], 1);
  EXPECT_EQ(d.bos_id, hf.bos_id());
  EXPECT_EQ(d.eos_id, hf.eos_id());
  EXPECT_GT(d.merges.size(), 200000u);
  EXPECT_EQ(d.merges[0].find(' ') != std::string::npos, true);
  EXPECT_NE(d.chat_template.find("start_header_id"), std::string::npos);
}

TEST(GgufExport, ExportedGgufCarriesItsTokenizerAndGeneratesTheGoldenText) {
  test::TempDir dir;
  const std::string gguf = dir.file("s.gguf");
  test::Outcome e =
      test::run_hone("export --format gguf --model " +
                     test::repo_file("data/samples/stories260K/stories260K.bin") + " --tokenizer " +
                     test::repo_file("data/samples/stories260K/tok512.bin") + " --out " + gguf);
  ASSERT_EQ(e.status, 0) << e.out;
  EXPECT_NO_THROW(read_gguf(gguf));  // the strict reader accepts it
  test::Outcome g = test::run_hone("generate --model " + gguf +
                                   " --prompt 'Once upon a time' --max-new-tokens 40 "
                                   "--temperature 0");
  EXPECT_EQ(g.status, 0) << g.out;
  EXPECT_EQ(g.out,
            "Once upon a time, there was a little girl named Lily. She loved to play outside in "
            "the park. One day, she saw a big, red ball.\n");
  // An existing output is not overwritten without --force.
  test::Outcome again = test::run_hone("export --format gguf --model " +
                                       test::repo_file("data/samples/stories260K/stories260K.bin") +
                                       " --out " + gguf);
  EXPECT_EQ(again.status, 1);
  EXPECT_NE(again.out.find("--force"), std::string::npos) << again.out;
}

// A GGUF whose vocabulary is byte-level BPE ("gpt2", as llama.cpp stores Llama 3 and Qwen) loads
// as a tokenizer that encodes every fixture text exactly as the original tokenizer.json does.
class GgufGpt2Tokenizer : public ::testing::TestWithParam<const char*> {};

TEST_P(GgufGpt2Tokenizer, EncodesLikeTheOriginal) {
  const std::string name = GetParam();
  HONE_REQUIRE_SHARED(dir, "tokenizers/" + name);
  HONE_REQUIRE_SHARED(texts, "fixtures/tokenizer/texts.jsonl");
  const ModelConfig cfg = test::tiny_vocab_config(name == "qwen3" ? "qwen3" : "llama",
                                                  name == "qwen3" ? 151936 : 128256);
  test::TempDir tmp;
  const std::string gguf = test::write_gguf_with(
      tmp.file("m.gguf"), cfg, gguf_tokenizer_for_model("/nonexistent", dir, cfg));
  auto from_gguf = tokenizer_for_model(gguf, "");
  HfTokenizer original(dir + "/tokenizer.json");
  int n = 0;
  for (const std::string& text : test::fixture_texts()) {
    ASSERT_EQ(from_gguf->encode(text, false, false), original.encode(text, false, false)) << text;
    ++n;
  }
  EXPECT_GT(n, 40);
  EXPECT_EQ(from_gguf->bos_id(), original.bos_id());
  EXPECT_EQ(from_gguf->eos_id(), original.eos_id());
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, GgufGpt2Tokenizer, ::testing::Values("llama3", "qwen3"));
