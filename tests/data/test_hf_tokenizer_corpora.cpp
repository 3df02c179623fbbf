// HfTokenizer on every line of ../shared/corpora against digests of the transformers.js
// reference ids (tests/data/expected/corpora_<tok>.json, made by make_expected.mjs there: per
// block of 256 texts, the id count and a 64-bit FNV-1a hash). On a mismatch the first differing
// block is named; `node make_expected.mjs ../shared <tok> --dump <corpus> <block>` prints its ids.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "hf_test_util.h"

namespace hone {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  for (size_t nl; (nl = s.find('\n', pos)) != std::string::npos; pos = nl + 1)
    out.push_back(s.substr(pos, nl - pos));
  out.push_back(s.substr(pos));  // as JavaScript's split("\n"): the tail, even if empty
  return out;
}

std::vector<std::string> corpus_texts(const std::string& name) {
  if (name == "gsm8k") {
    std::vector<std::string> out;
    for (const auto& r : test::read_jsonl(test::shared_file("corpora/gsm8k/train.jsonl"))) {
      out.push_back(r["question"].get<std::string>());
      out.push_back(r["answer"].get<std::string>());
    }
    return out;
  }
  const std::string file = name == "tinyshakespeare" ? "corpora/tinyshakespeare/input.txt"
                                                     : "corpora/origin_of_species/pg1228.txt";
  return split_lines(slurp(test::shared_file(file)));
}

uint64_t fnv(uint64_t h, uint32_t v) {
  for (int k = 0; k < 4; ++k) {
    h ^= (v >> (8 * k)) & 0xFF;
    h *= 0x100000001b3ULL;
  }
  return h;
}

class HfCorpus : public ::testing::TestWithParam<std::string> {};

TEST_P(HfCorpus, EveryLineMatchesReference) {
  HONE_REQUIRE_SHARED(json_path, "tokenizers/" + GetParam() + "/tokenizer.json");
  HONE_REQUIRE_SHARED(corpora, "corpora/gsm8k/train.jsonl");
  const auto expected = nlohmann::json::parse(
      slurp(std::string(HONE_SOURCE_DIR) + "/tests/data/expected/corpora_" + GetParam() + ".json"));
  const size_t block = expected["block"].get<size_t>();
  const HfTokenizer& tok = test::hf_tokenizer(GetParam());
  ASSERT_EQ(expected["corpora"].size(), 3u);
  for (const auto& [name, exp] : expected["corpora"].items()) {
    const auto texts = corpus_texts(name);
    ASSERT_EQ(texts.size(), exp["texts"].get<size_t>()) << name;
    const auto& blocks = exp["blocks"];
    ASSERT_EQ(blocks.size(), (texts.size() + block - 1) / block) << name;
    for (size_t b = 0; b < blocks.size(); ++b) {
      uint64_t h = 0xcbf29ce484222325ULL;
      size_t n = 0;
      for (size_t i = b * block; i < std::min(texts.size(), (b + 1) * block); ++i) {
        const auto ids = tok.encode(texts[i], false, false);
        for (int32_t id : ids) h = fnv(h, static_cast<uint32_t>(id));
        n += ids.size();
        h = fnv(h, 0xFFFFFFFFu);
      }
      char hex[17];
      std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(h));
      if (n != blocks[b][0].get<size_t>() || hex != blocks[b][1].get<std::string>()) {
        ADD_FAILURE() << GetParam() << " " << name << ": block " << b << " (texts " << b * block
                      << "..) differs: " << n << " ids vs reference " << blocks[b][0];
        break;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shared, HfCorpus, ::testing::Values("llama3", "qwen3", "mistral"));

}  // namespace
}  // namespace hone
