// Tokenizers across formats: a GGUF's embedded vocabulary used wherever a tokenizer file is
// (`--tokenizer X.gguf`), the pre-tokenizer name a GGUF export carries (chosen from the
// tokenizer.json's split regex), and SentencePiece-style tokenizer.json files exported as
// llama.cpp's "llama" vocabulary; each checked id for id against the original tokenizer.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common.h"
#include "data/hf_tokenizer.h"
#include "data/llama2c_tokenizer.h"
#include "gguf_tokenizer_helpers.h"
#include "hone_process.h"
#include "model/io/gguf.h"
#include "recipes/model_tokenizer.h"
#include "recipes/model_tokenizer_gguf.h"
#include "tmpdir.h"
#include "train_helpers.h"

using namespace hone;
namespace fs = std::filesystem;

namespace {

using test::fixture_texts;
using test::tiny_vocab_config;
using test::write_gguf_with;

std::vector<std::string> shakespeare_lines(size_t n) {
  std::ifstream in(test::repo_file("data/samples/tinyshakespeare/train.txt"));
  std::vector<std::string> out;
  for (std::string line; out.size() < n && std::getline(in, line);) out.push_back(line);
  // Whole paragraphs too: newlines, runs of spaces.
  out.push_back("First Citizen:\nBefore we proceed any further, hear me speak.\n\n  All:  Speak.");
  return out;
}

// GPT-2's byte -> printable character table (bytes.rs / bytes_to_unicode).
std::string byte_char(int b) {
  int cp = b;
  if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
    int n = 0;
    for (int x = 0; x < b; ++x)
      if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) ++n;
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// A small byte-level BPE tokenizer.json with the given pre-tokenizer: the 256 byte characters,
// a few merges (including digit pairs, which a digit-splitting pre-tokenizer never reaches).
std::string write_byte_level_tokenizer(const std::string& dir, const nlohmann::json& pre) {
  fs::create_directories(dir);
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"\xc4\xa0", "t"}, {"h", "e"}, {"\xc4\xa0t", "he"}, {"1", "2"},
      {"12", "3"},       {"i", "n"}, {"\xc4\xa0", "a"},   {"o", "n"}};
  int id = 256;
  nlohmann::json mj = nlohmann::json::array();
  for (const auto& [a, b] : merges) {
    vocab[a + b] = id++;
    mj.push_back({a, b});
  }
  const nlohmann::json bl = {{"type", "ByteLevel"},
                             {"add_prefix_space", false},
                             {"trim_offsets", true},
                             {"use_regex", false}};
  const nlohmann::json j = {
      {"version", "1.0"},
      {"added_tokens",
       {{{"id", id}, {"content", "<|endoftext|>"}, {"special", true}, {"normalized", false}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", pre},
      {"post_processor", bl},
      {"decoder", bl},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", mj}}}};
  std::ofstream(dir + "/tokenizer.json") << j.dump();
  std::ofstream(dir + "/tokenizer_config.json")
      << R"({"eos_token": "<|endoftext|>", "add_bos_token": false})";
  return dir;
}

const nlohmann::json kGpt2Pre = {
    {"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};

}  // namespace

// ---- `--tokenizer X.gguf` ------------------------------------------------------------------

TEST(GgufTokenizerFile, Stories260KGgufGivesTheIdsOfTok512) {
  HONE_REQUIRE_SHARED(gguf, "models/stories260K/stories260K.gguf");
  const auto from_gguf = open_tokenizer(gguf);
  Llama2cTokenizer tok512(test::repo_file("data/samples/stories260K/tok512.bin"));
  ASSERT_EQ(from_gguf->vocab_size(), tok512.vocab_size());
  for (const std::string& t : shakespeare_lines(300)) {
    ASSERT_EQ(from_gguf->encode(t, true, false), tok512.encode(t, true, false)) << t;
    ASSERT_EQ(from_gguf->decode(tok512.encode(t, true, true)), t);
  }
}

TEST(GgufTokenizerFile, AcceptedByTokenizeGenerateAndExport) {
  HONE_REQUIRE_SHARED(gguf, "models/stories260K/stories260K.gguf");
  const std::string bin = test::repo_file("data/samples/stories260K/stories260K.bin");
  const std::string tok512 = test::repo_file("data/samples/stories260K/tok512.bin");
  test::TempDir dir;
  test::write_bytes(dir.file("in.txt"), "Once upon a time\nthere was a cat.\n");
  const test::Outcome want = test::run_hone("tokenize --lines --special --tokenizer " + tok512 +
                                            " < " + dir.file("in.txt"));
  const test::Outcome got =
      test::run_hone("tokenize --lines --special --tokenizer " + gguf + " < " + dir.file("in.txt"));
  ASSERT_EQ(want.status, 0) << want.out;
  EXPECT_EQ(got.status, 0) << got.out;
  EXPECT_EQ(got.out, want.out);
  EXPECT_EQ(got.out.rfind("[1,403,407,261,378,2]\n", 0), 0u) << got.out;  // README's prompt ids

  const test::Outcome g = test::run_hone("generate --model " + bin + " --tokenizer " + gguf +
                                         " --prompt 'Once upon a time' --max-new-tokens 40 "
                                         "--temperature 0");
  EXPECT_EQ(g.status, 0) << g.out;
  EXPECT_EQ(g.out,
            "Once upon a time, there was a little girl named Lily. She loved to play outside in "
            "the park. One day, she saw a big, red ball.\n");

  const test::Outcome e = test::run_hone("export --format gguf --model " + bin + " --tokenizer " +
                                         gguf + " --out " + dir.file("s.gguf"));
  ASSERT_EQ(e.status, 0) << e.out;
  const GgufTokenizerData written = read_gguf_tokenizer(dir.file("s.gguf"));
  const GgufTokenizerData original = read_gguf_tokenizer(gguf);
  EXPECT_EQ(written.tokens, original.tokens);
  EXPECT_EQ(written.scores, original.scores);
}

// A GGUF hone exported from a model with a byte-level BPE tokenizer.json (Llama 3's), given as
// --tokenizer, encodes as that tokenizer.json.
TEST(GgufTokenizerFile, Gpt2VocabularyOfAnExportedGgufAsTokenizer) {
  HONE_REQUIRE_SHARED(dir, "tokenizers/llama3");
  const ModelConfig cfg = tiny_vocab_config("llama", 128256);
  test::TempDir tmp;
  const std::string gguf =
      write_gguf_with(tmp.file("m.gguf"), cfg, gguf_tokenizer_for_model("/nonexistent", dir, cfg));
  const auto from_gguf = open_tokenizer(gguf);
  HfTokenizer original(dir + "/tokenizer.json");
  for (const std::string& t : fixture_texts())
    ASSERT_EQ(from_gguf->encode(t, true, true), original.encode(t, true, true)) << t;
  test::write_bytes(tmp.file("in.txt"), "Hello world 12345");
  const test::Outcome got =
      test::run_hone("tokenize --tokenizer " + gguf + " < " + tmp.file("in.txt"));
  EXPECT_EQ(got.status, 0) << got.out;
  EXPECT_EQ(got.out, "[9906,1917,220,4513,1774]\n");
}

TEST(GgufTokenizerFile, AGgufWithoutAVocabularyIsRefusedByName) {
  test::TempDir tmp;
  write_gguf(tmp.file("empty.gguf"), {{"general.architecture", GgufValue::str("llama")}}, {});
  test::write_bytes(tmp.file("in.txt"), "hi");
  const test::Outcome o =
      test::run_hone("tokenize --tokenizer " + tmp.file("empty.gguf") + " < " + tmp.file("in.txt"));
  EXPECT_EQ(o.status, 1);
  EXPECT_NE(o.out.find(tmp.file("empty.gguf")), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("tokenizer.ggml.model"), std::string::npos) << o.out;
  EXPECT_EQ(o.out.find("llama2.c"), std::string::npos) << o.out;
}

// ---- tokenizer.ggml.pre from the pre-tokenizer --------------------------------------------

TEST(GgufPreTokenizer, ChosenFromTheSplitRegexNotTheModelType) {
  HONE_REQUIRE_SHARED(llama3, "tokenizers/llama3");
  HONE_REQUIRE_SHARED(qwen3, "tokenizers/qwen3");
  // A Qwen3 model with the Llama 3 tokenizer: llama.cpp must split digits in threes.
  EXPECT_EQ(
      gguf_tokenizer_for_model("/nonexistent", llama3, tiny_vocab_config("qwen3", 128256)).pre,
      "llama-bpe");
  EXPECT_EQ(gguf_tokenizer_for_model("/nonexistent", qwen3, tiny_vocab_config("llama", 151936)).pre,
            "qwen2");
}

TEST(GgufPreTokenizer, Gpt2AndSmolLmStylesRoundTrip) {
  test::TempDir tmp;
  const nlohmann::json smollm = {
      {"type", "Sequence"},
      {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, kGpt2Pre}}};
  for (const auto& [name, pre] :
       {std::pair<std::string, nlohmann::json>{"gpt-2", kGpt2Pre}, {"smollm", smollm}}) {
    const std::string dir = write_byte_level_tokenizer(tmp.file(name), pre);
    const ModelConfig cfg = tiny_vocab_config("llama", 265);
    const GgufTokenizerData d = gguf_tokenizer_for_model("/nonexistent", dir, cfg);
    EXPECT_EQ(d.pre, name);
    const auto from_gguf = open_tokenizer(write_gguf_with(tmp.file(name + ".gguf"), cfg, d));
    HfTokenizer original(dir + "/tokenizer.json");
    for (const std::string& t : fixture_texts())
      ASSERT_EQ(from_gguf->encode(t, false, false), original.encode(t, false, false))
          << name << ": " << t;
    // Single digits (smollm) never reach the "12" merge; GPT-2's \p{N}+ does.
    EXPECT_EQ(original.encode("123", false, false).size(), name == "smollm" ? 3u : 1u);
  }
}

TEST(GgufPreTokenizer, AnUnknownPreTokenizerIsRefusedAndNothingWritten) {
  test::TempDir tmp;
  const nlohmann::json pre = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"},
         {"pattern", {{"Regex", "\\s+|\\w+"}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  const std::string dir = write_byte_level_tokenizer(tmp.file("odd"), pre);
  const test::Outcome o =
      test::run_hone("export --format gguf --model " +
                     test::repo_file("data/samples/stories260K/stories260K.bin") + " --tokenizer " +
                     dir + "/tokenizer.json --out " + tmp.file("o.gguf"));
  EXPECT_EQ(o.status, 1) << o.out;
  EXPECT_NE(o.out.find(dir + "/tokenizer.json: pre_tokenizer:"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("llama-bpe"), std::string::npos) << o.out;
  EXPECT_FALSE(fs::exists(tmp.file("o.gguf")));
  EXPECT_FALSE(fs::exists(tmp.file("o.gguf.tmp")));
}

// ---- SentencePiece-style tokenizer.json as a "llama" vocabulary ---------------------------

TEST(GgufSentencePieceExport, MistralTokenizerJsonBecomesALlamaVocabulary) {
  HONE_REQUIRE_SHARED(dir, "tokenizers/mistral");
  const ModelConfig cfg = tiny_vocab_config("llama", 32000);
  const GgufTokenizerData d = gguf_tokenizer_for_model("/nonexistent", dir, cfg);
  EXPECT_EQ(d.model, "llama");
  ASSERT_EQ(d.tokens.size(), 32000u);
  ASSERT_EQ(d.scores.size(), 32000u);
  EXPECT_EQ(d.tokens[22557], "\xe2\x96\x81Hello");
  EXPECT_EQ(d.token_types[22557], 1);
  EXPECT_EQ(d.token_types[0], 2);  // <unk>
  EXPECT_EQ(d.token_types[1], 3);  // <s>
  EXPECT_EQ(d.token_types[2], 3);  // </s>
  EXPECT_EQ(d.tokens[3 + 0x0A], "<0x0A>");
  EXPECT_EQ(d.token_types[3 + 0x0A], 6);  // byte
  EXPECT_EQ(d.unk_id, 0);
  EXPECT_EQ(d.bos_id, 1);
  EXPECT_EQ(d.eos_id, 2);
  EXPECT_EQ(d.add_bos, true);
  EXPECT_EQ(d.add_eos, false);

  // Read back (as llama.cpp would, merging by score), it encodes as the tokenizer.json.
  test::TempDir tmp;
  const auto from_gguf = open_tokenizer(write_gguf_with(tmp.file("m.gguf"), cfg, d));
  HfTokenizer original(dir + "/tokenizer.json");
  int n = 0;
  for (const std::string& t : fixture_texts()) {
    // SentencePiece vocabularies in GGUF are read as llama2.c's run.c reads them: literal
    // "<s>" in text is text, not the control token (HF's added-token matching).
    if (t.find("<s>") != std::string::npos || t.find("</s>") != std::string::npos) continue;
    ASSERT_EQ(from_gguf->encode(t, true, false), original.encode(t, true, false)) << t;
    ++n;
  }
  EXPECT_GT(n, 40);
  for (const std::string& t : shakespeare_lines(200))
    ASSERT_EQ(from_gguf->encode(t, true, false), original.encode(t, true, false)) << t;
}
