// HfTokenizer's contract beyond the reference ids: how add_bos/add_eos map onto each file's
// post-processor and config, special ids, load_tokenizer's dispatch, streaming decode.
#include <gtest/gtest.h>

#include <fstream>

#include "autograd/error.h"
#include "data/hf_text.h"
#include "data/tokenizer.h"
#include "hf_test_util.h"
#include "tmpdir.h"

namespace hone {
namespace {

using test::hf_tokenizer;

TEST(HfTokenizer, SpecialIdsFromConfig) {
  HONE_REQUIRE_SHARED(p, "tokenizers/llama3/tokenizer.json");
  EXPECT_EQ(hf_tokenizer("llama3").bos_id(), 128000);
  EXPECT_EQ(hf_tokenizer("llama3").eos_id(), 128001);
  EXPECT_EQ(hf_tokenizer("llama3").vocab_size(), 128256);
  EXPECT_EQ(hf_tokenizer("qwen3").bos_id(), -1);
  EXPECT_EQ(hf_tokenizer("qwen3").eos_id(), 151645);  // <|im_end|>
  EXPECT_EQ(hf_tokenizer("qwen3").pad_id(), 151643);  // <|endoftext|>
  EXPECT_EQ(hf_tokenizer("mistral").bos_id(), 1);
  EXPECT_EQ(hf_tokenizer("mistral").eos_id(), 2);
  EXPECT_TRUE(hf_tokenizer("mistral").is_special(1));
  EXPECT_FALSE(hf_tokenizer("mistral").is_special(22557));
  EXPECT_EQ(hf_tokenizer("mistral").token_to_id("\xE2\x96\x81Hello"), 22557);
}

// add_bos / add_eos add what HF's add_special_tokens=True adds: Mistral's template adds <s>
// only; the original Llama 3 file (ByteLevel post-processor) and Qwen3 add nothing.
TEST(HfTokenizer, AddBosFollowsPostProcessor) {
  HONE_REQUIRE_SHARED(p, "tokenizers/mistral/tokenizer.json");
  const auto& m = hf_tokenizer("mistral");
  EXPECT_EQ(m.encode("Hello", false, false), (std::vector<int32_t>{22557}));
  EXPECT_EQ(m.encode("Hello", true, false), (std::vector<int32_t>{1, 22557}));
  EXPECT_EQ(m.encode("Hello", true, true), (std::vector<int32_t>{1, 22557}));
  EXPECT_EQ(hf_tokenizer("llama3").encode("Hello world", true, true),
            (std::vector<int32_t>{9906, 1917}));
  EXPECT_EQ(hf_tokenizer("qwen3").encode("", true, true), (std::vector<int32_t>{}));
  // Special-token text is matched as the token, never split.
  EXPECT_EQ(hf_tokenizer("llama3").encode("<|eot_id|>", false, false),
            (std::vector<int32_t>{128009}));
}

TEST(HfTokenizer, DecodeSkipSpecialAndCleanUp) {
  HONE_REQUIRE_SHARED(p, "tokenizers/llama3/tokenizer.json");
  const auto& t = hf_tokenizer("llama3");
  const auto ids = t.encode("<|begin_of_text|>Hi there .", false, false);
  EXPECT_EQ(t.decode(ids), "<|begin_of_text|>Hi there.");  // config: clean_up_tokenization_spaces
  HfDecodeOptions o;
  o.skip_special_tokens = true;
  o.clean_up_spaces = false;
  EXPECT_EQ(t.decode(ids, o), "Hi there .");
  EXPECT_THROW(t.decode({-1}), Error);
  EXPECT_THROW(t.decode({128256}), Error);
}

// A character split over several tokens is held back until complete.
TEST(HfTokenizer, StreamDecoderNeverSplitsACharacter) {
  HONE_REQUIRE_SHARED(p, "tokenizers/mistral/tokenizer.json");
  for (const char* name : {"llama3", "mistral"}) {
    const auto& t = hf_tokenizer(name);
    const std::string text =
        "a \xF0\x9F\xA6\x80\xF0\x9F\x90\xA2 \xE3\x82\x90 z";  // crab, turtle, CJK
    const auto ids = t.encode(text, false, false);
    StreamDecoder sd(t);
    std::string out;
    int empty_pushes = 0;
    for (int32_t id : ids) {
      const std::string piece = sd.push(id);
      EXPECT_TRUE(hftext::is_valid_utf8(piece)) << name;
      empty_pushes += piece.empty();
      out += piece;
    }
    out += sd.flush();
    EXPECT_EQ(out, text) << name;
    EXPECT_GT(empty_pushes, 0) << name << ": expected at least one character split over tokens";
  }
}

TEST(HfTokenizer, RepairsInvalidUtf8Input) {
  HONE_REQUIRE_SHARED(p, "tokenizers/llama3/tokenizer.json");
  const auto& t = hf_tokenizer("llama3");
  EXPECT_EQ(t.encode("a\xFF"
                     "b",
                     false, false),
            t.encode("a\xEF\xBF\xBD"
                     "b",
                     false, false));
  EXPECT_EQ(hftext::repair_utf8("\xE2\x82"), "\xEF\xBF\xBD");
  EXPECT_EQ(hftext::complete_utf8_prefix("ab\xE2\x82"), 2u);
  EXPECT_EQ(hftext::complete_utf8_prefix("ab\xE2\x82\xAC"), 5u);
}

TEST(LoadTokenizer, DispatchesOnFileAndFolder) {
  HONE_REQUIRE_SHARED(json, "tokenizers/qwen3/tokenizer.json");
  const auto from_file = load_tokenizer(json);
  const auto from_dir = load_tokenizer(test::shared_file("tokenizers/qwen3"));
  EXPECT_EQ(from_file->encode("Hello world", false, false),
            from_dir->encode("Hello world", false, false));
  EXPECT_EQ(from_dir->eos_id(), 151645);
  test::TempDir dir;
  EXPECT_THROW(load_tokenizer(dir.path().string()), Error);
  const auto bad = dir.path() / "tokenizer.json";
  std::ofstream(bad) << "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}";
  try {
    load_tokenizer(dir.path().string());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Unigram"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace hone
