// Malformed tokenizer.json / tokenizer_config.json: every id that indexes a table is checked at
// load, and each problem is an Error naming the file, the field and what is wrong. Before these
// checks a negative id wrote before the token table (ASan: heap-buffer-overflow; plain build:
// double free), duplicate ids decoded wrongly and an unknown bos_token fell back to <s>.
#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "autograd/error.h"
#include "data/hf_tokenizer.h"
#include "tmpdir.h"

namespace hone {
namespace {

using json = nlohmann::json;

// A tiny SentencePiece-style BPE: <unk> <s> </s> a b ab, with a TemplateProcessing that puts <s>
// first, as Mistral's file does.
json base_tokenizer() {
  return json::parse(R"({
    "version": "1.0",
    "added_tokens": [
      {"id": 0, "content": "<unk>", "special": true},
      {"id": 1, "content": "<s>", "special": true},
      {"id": 2, "content": "</s>", "special": true}],
    "post_processor": {
      "type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                 {"Sequence": {"id": "A", "type_id": 0}}],
      "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
    "model": {
      "type": "BPE", "unk_token": "<unk>",
      "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "a": 3, "b": 4, "ab": 5},
      "merges": ["a b"]}})");
}

json base_config() {
  return json{{"bos_token", "<s>"}, {"eos_token", "</s>"}};
}

struct Files {
  test::TempDir dir;
  std::string tok, cfg;
};

// Writes the two files (the config only when it is not null) and loads them.
void load(Files& f, const json& tok, const json& cfg) {
  f.tok = f.dir.file("tokenizer.json");
  f.cfg = f.dir.file("tokenizer_config.json");
  test::write_bytes(f.tok, tok.dump());
  if (!cfg.is_null()) test::write_bytes(f.cfg, cfg.dump());
  HfTokenizer t(f.tok);
}

// The error of loading the base files after `edit_tok` / `edit_cfg`; "" when they load.
std::string load_error(const std::function<void(json&)>& edit_tok,
                       const std::function<void(json&)>& edit_cfg = nullptr,
                       std::string* tok_path = nullptr, std::string* cfg_path = nullptr) {
  Files f;
  json tok = base_tokenizer(), cfg = base_config();
  if (edit_tok) edit_tok(tok);
  if (edit_cfg) edit_cfg(cfg);
  try {
    load(f, tok, cfg);
  } catch (const Error& e) {
    if (tok_path) *tok_path = f.tok;
    if (cfg_path) *cfg_path = f.cfg;
    return e.what();
  }
  return "";
}

#define EXPECT_HAS(s, part) EXPECT_NE((s).find(part), std::string::npos) << (s)

TEST(HfTokenizerMalformed, BaseLoadsAndEncodes) {
  Files f;
  load(f, base_tokenizer(), base_config());
  HfTokenizer t(f.tok);
  EXPECT_EQ(t.encode("ab", true, false), (std::vector<int32_t>{1, 5}));
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), 2);
  EXPECT_EQ(t.vocab_size(), 6);
}

TEST(HfTokenizerMalformed, NegativeIds) {
  std::string tok;
  std::string e = load_error([](json& j) { j["model"]["vocab"]["b"] = -1; }, nullptr, &tok);
  EXPECT_HAS(e, tok + ": model.vocab[\"b\"]: id -1 is negative");
  e = load_error([](json& j) { j["added_tokens"][1]["id"] = -5; }, nullptr, &tok);
  EXPECT_HAS(e, tok + ": added_tokens[1].id: id -5 is negative");
  // A post-processor's special token id indexes the same tables.
  e = load_error(
      [](json& j) { j["post_processor"]["special_tokens"]["<s>"]["ids"] = json::array({-1}); },
      nullptr, &tok);
  EXPECT_HAS(e, tok + ": post_processor: special token id -1 is not in the vocabulary");
}

TEST(HfTokenizerMalformed, IdsOutOfRangeOrNotIntegers) {
  std::string tok;
  // 2^31 would wrap to a negative int32; 4e9 (unsigned) too.
  std::string e = load_error([](json& j) { j["model"]["vocab"]["b"] = int64_t{1} << 31; });
  EXPECT_HAS(e, "model.vocab[\"b\"]: id 2147483648 is out of range");
  e = load_error([](json& j) { j["added_tokens"][0]["id"] = uint64_t{4000000000}; });
  EXPECT_HAS(e, "added_tokens[0].id: id 4000000000 is out of range");
  e = load_error([](json& j) { j["model"]["vocab"]["b"] = 1.5; });
  EXPECT_HAS(e, "model.vocab[\"b\"]: expected an integer id, got 1.5");
  e = load_error([](json& j) { j["added_tokens"][2]["id"] = "2"; });
  EXPECT_HAS(e, "added_tokens[2].id: expected an integer id, got \"2\"");
  e = load_error([](json& j) { j["post_processor"]["special_tokens"]["<s>"]["ids"] = {99}; }, {},
                 &tok);
  EXPECT_HAS(e, tok + ": post_processor: special token id 99 is not in the vocabulary");
  e = load_error([](json& j) { j["model"]["vocab"] = json::object(); });
  EXPECT_HAS(e, "model.vocab: is empty");
}

TEST(HfTokenizerMalformed, DuplicateIds) {
  std::string tok;
  std::string e = load_error([](json& j) { j["model"]["vocab"]["b"] = 3; }, nullptr, &tok);
  EXPECT_HAS(e, tok + ": model.vocab: tokens \"a\" and \"b\" both have id 3");
  e = load_error([](json& j) { j["added_tokens"][2]["id"] = 4; });  // </s> onto "b"
  EXPECT_HAS(e, "added_tokens[2] (\"</s>\", id 4): id already belongs to \"b\"");
  e = load_error([](json& j) {  // a new added token on the id of <s>
    j["added_tokens"].push_back({{"id", 1}, {"content", "<x>"}, {"special", true}});
  });
  EXPECT_HAS(e, "added_tokens[3] (\"<x>\", id 1): id already belongs to \"<s>\"");
  e = load_error([](json& j) {  // the same added token under two ids
    j["added_tokens"].push_back({{"id", 6}, {"content", "<s>"}, {"special", true}});
  });
  EXPECT_HAS(e, "added_tokens[3] (\"<s>\", id 6): the token already has id 1");
  e = load_error([](json& j) { j["added_tokens"][0]["content"] = ""; });
  EXPECT_HAS(e, "added_tokens[0].content: is empty");
}

TEST(HfTokenizerMalformed, HarmlessRepeatsAndGapsLoad) {
  // An added token listed twice identically, and ids with a gap (a padded vocabulary).
  EXPECT_EQ(load_error([](json& j) {
              j["added_tokens"].push_back(j["added_tokens"][1]);
              j["added_tokens"].push_back({{"id", 9}, {"content", "<pad>"}, {"special", true}});
            }),
            "");
  Files f;
  json tok = base_tokenizer();
  tok["added_tokens"].push_back({{"id", 9}, {"content", "<pad>"}, {"special", true}});
  load(f, tok, base_config());
  HfTokenizer t(f.tok);
  EXPECT_EQ(t.vocab_size(), 10);
  EXPECT_EQ(t.token_to_id("<pad>"), 9);
}

TEST(HfTokenizerMalformed, MergesAndUnkMustNameVocabTokens) {
  std::string tok;
  std::string e = load_error([](json& j) { j["model"]["merges"].push_back("a zz"); }, {}, &tok);
  EXPECT_HAS(e, tok + ": merge \"a zz\" uses a token missing from the vocab");
  e = load_error([](json& j) { j["model"]["merges"].push_back("b a"); });  // "ba" is not a token
  EXPECT_HAS(e, "merge \"b a\" uses a token missing from the vocab");
  e = load_error([](json& j) { j["model"]["unk_token"] = "<unknown>"; });
  EXPECT_HAS(e, "model.unk_token: \"<unknown>\" is not in model.vocab");
}

TEST(HfTokenizerMalformed, SpecialTokensOfTheConfigMustBeInTheVocabulary) {
  std::string tok, cfg;
  // Used to fall back to the post-processor's <s> silently.
  std::string e = load_error(
      nullptr, [](json& c) { c["bos_token"] = "<|begin|>"; }, &tok, &cfg);
  EXPECT_HAS(e, cfg + ": bos_token: \"<|begin|>\" is not in the vocabulary of " + tok);
  e = load_error(
      nullptr,
      [](json& c) {
        c["eos_token"] = {{"__type", "AddedToken"}, {"content", "<e>"}};
      },
      &tok, &cfg);
  EXPECT_HAS(e, cfg + ": eos_token: \"<e>\" is not in the vocabulary of " + tok);
  e = load_error(
      nullptr, [](json& c) { c["pad_token"] = 7; }, &tok, &cfg);
  EXPECT_HAS(e, cfg +
                    ": pad_token: expected a token (a string or an object with \"content\") or "
                    "null, got 7");
  e = load_error(
      nullptr, [](json& c) { c["add_bos_token"] = "yes"; }, &tok, &cfg);
  EXPECT_HAS(e, cfg + ": add_bos_token: expected true or false, got \"yes\"");
  e = load_error(
      nullptr, [](json& c) { c = json::array(); }, &tok, &cfg);
  EXPECT_HAS(e, cfg + ": expected a JSON object");
  // The AddedToken form and null load.
  EXPECT_EQ(load_error(nullptr,
                       [](json& c) {
                         c["bos_token"] = {{"content", "<s>"}};
                         c["pad_token"] = nullptr;
                       }),
            "");
}

TEST(HfTokenizerMalformed, DeepNestingIsRefused) {
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  test::TempDir dir;
  test::write_bytes(dir.file("tokenizer.json"), "{\"model\": " + deep + "}");
  try {
    HfTokenizer t(dir.file("tokenizer.json"));
    FAIL() << "loaded";
  } catch (const Error& e) {
    EXPECT_HAS(std::string(e.what()),
               dir.file("tokenizer.json") + ": JSON nested deeper than 512 levels");
  }
  test::write_bytes(dir.file("tokenizer.json"), base_tokenizer().dump());
  test::write_bytes(dir.file("tokenizer_config.json"), "{\"bos_token\": " + deep + "}");
  try {
    HfTokenizer t(dir.file("tokenizer.json"));
    FAIL() << "loaded";
  } catch (const Error& e) {
    EXPECT_HAS(std::string(e.what()),
               dir.file("tokenizer_config.json") + ": JSON nested deeper than 512 levels");
  }
}

}  // namespace
}  // namespace hone
