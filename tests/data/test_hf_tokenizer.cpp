// HfTokenizer against the transformers.js reference ids in ../shared/fixtures/tokenizer.
#include <gtest/gtest.h>

#include <sstream>

#include "data/hf_text.h"
#include "data/tokenizer.h"
#include "hf_test_util.h"

namespace hone {
namespace {

using test::hf_tokenizer;
using test::read_jsonl;

class HfFixture : public ::testing::TestWithParam<std::string> {};

std::string show(const std::vector<int32_t>& v) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < v.size(); ++i) os << (i ? "," : "") << v[i];
  return os.str() + "]";
}

// Every fixture text: ids, ids_with_special (= encode with add_bos and add_eos: exactly what
// the post-processor adds), decoded, and the round trip where the reference's round trip holds.
TEST_P(HfFixture, MatchesReference) {
  HONE_REQUIRE_SHARED(json_path, "tokenizers/" + GetParam() + "/tokenizer.json");
  HONE_REQUIRE_SHARED(texts_path, "fixtures/tokenizer/texts.jsonl");
  const auto texts = read_jsonl(texts_path);
  const auto expected =
      read_jsonl(test::shared_file("fixtures/tokenizer/expected_" + GetParam() + ".jsonl"));
  ASSERT_EQ(texts.size(), expected.size());
  ASSERT_GE(texts.size(), 40u);
  const HfTokenizer& tok = hf_tokenizer(GetParam());
  int roundtrips = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto text = texts[i]["text"].get<std::string>();
    const auto& e = expected[i];
    const auto ids = e["ids"].get<std::vector<int32_t>>();
    const auto with = e["ids_with_special"].get<std::vector<int32_t>>();
    const auto decoded = e["decoded"].get<std::string>();
    SCOPED_TRACE("text " + std::to_string(i) + ": " + text);
    const auto got = tok.encode(text, false, false);
    EXPECT_EQ(show(got), show(ids));
    EXPECT_EQ(show(tok.encode(text, true, true)), show(with));
    EXPECT_EQ(tok.decode(ids), decoded);
    if (decoded == text) {
      EXPECT_EQ(tok.decode(got), text);
      ++roundtrips;
    }
    // Streaming: decode_token pieces concatenate to the un-cleaned decode.
    std::string stream;
    StreamDecoder sd(tok);
    int32_t prev = -1;
    std::string joined;
    for (int32_t id : ids) {
      const std::string piece = sd.push(id);
      EXPECT_TRUE(piece.empty() || hftext::is_valid_utf8(piece));
      stream += piece;
      joined += tok.decode_token(prev, id);
      prev = id;
    }
    stream += sd.flush();
    HfDecodeOptions raw;
    raw.clean_up_spaces = false;
    // (A leading literal BOS makes the next piece "start" for decode_token, not for decode.)
    if (ids.empty() || ids[0] != tok.bos_id()) {
      EXPECT_EQ(stream, tok.decode(ids, raw));
      EXPECT_EQ(joined, tok.decode(ids, raw));
    }
  }
  EXPECT_GT(roundtrips, 30);
}

INSTANTIATE_TEST_SUITE_P(Shared, HfFixture, ::testing::Values("llama3", "qwen3", "mistral"));
}  // namespace
}  // namespace hone
