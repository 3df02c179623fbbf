#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/error.h"
#include "common.h"
#include "data/llama2c_tokenizer.h"
#include "data/tokenizer.h"

namespace hone {
namespace {

constexpr const char* kStoriesTok = "models/stories260K/tok512.bin";
constexpr const char* kDreamsTok = "models/aidreams260K/tok512.bin";

// run.c's encode written out literally (quadratic rescan after every merge), to check the
// heap-based encoder against. BOS/EOS are left out; they never take part in merges.
std::vector<int32_t> reference_encode(const Llama2cTokenizer& t, const std::string& text) {
  std::vector<int32_t> toks;
  if (text.empty()) return toks;
  toks.push_back(t.lookup(" "));
  std::string buf;
  for (size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) buf.clear();
    buf += text[i];
    if (i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80 &&
        buf.size() < 4) {
      continue;
    }
    int32_t id = t.lookup(buf);
    if (id >= 0) {
      toks.push_back(id);
    } else {
      for (char c : buf) toks.push_back(static_cast<unsigned char>(c) + 3);
    }
    buf.clear();
  }
  while (true) {
    float best_score = -1e10f;
    int32_t best_id = -1;
    size_t best_idx = 0;
    for (size_t i = 0; i + 1 < toks.size(); ++i) {
      int32_t id = t.lookup(t.piece(toks[i]) + t.piece(toks[i + 1]));
      if (id != -1 && t.score(id) > best_score) {
        best_score = t.score(id);
        best_id = id;
        best_idx = i;
      }
    }
    if (best_id == -1) break;
    toks[best_idx] = best_id;
    toks.erase(toks.begin() + static_cast<std::ptrdiff_t>(best_idx) + 1);
  }
  return toks;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> first_lines(const std::string& path, int n) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string line;
  while (static_cast<int>(lines.size()) < n && std::getline(in, line)) lines.push_back(line);
  return lines;
}

// A scratch file under the system temp dir, removed at scope exit.
struct TempFile {
  std::string path;
  explicit TempFile(const std::string& name, const std::string& bytes)
      : path((std::filesystem::temp_directory_path() / ("hone_test_" + name)).string()) {
    std::ofstream(path, std::ios::binary) << bytes;
  }
  ~TempFile() { std::filesystem::remove(path); }
};

std::string le_i32(int32_t v) {
  return std::string(reinterpret_cast<const char*>(&v), 4);
}
std::string le_f32(float v) {
  return std::string(reinterpret_cast<const char*>(&v), 4);
}

// Runs `fn`, expects hone::Error, and returns its message.
template <class F>
std::string error_of(F fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no hone::Error thrown";
  return "";
}

const std::vector<std::string> kRoundTripTexts = {
    "",
    "Once upon a time",
    "Hello, world!",
    " leading space",
    "trailing spaces  ",
    "runs   of    spaces",
    "tabs\tand\nnewlines\r\nCRLF",
    "digits 0123456789 and punctuation ?!;:'\"()[]{}",
    "caf\xc3\xa9 na\xc3\xafve \xe2\x80\x94 \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x99\x82",  // é ï —
                                                                                        // 世界
                                                                                        // 🙂
    "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82",  // Привет
    "x",
    " ",
};

TEST(Llama2cTokenizer, EncodesReferencePrompt) {
  HONE_REQUIRE_SHARED(path, kStoriesTok);
  Llama2cTokenizer tok(path);
  EXPECT_EQ(tok.vocab_size(), 512);
  EXPECT_EQ(tok.max_token_length(), 7);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.encode("Once upon a time", true, false),
            (std::vector<int32_t>{1, 403, 407, 261, 378}));
  EXPECT_EQ(tok.encode("Once upon a time", false, true),
            (std::vector<int32_t>{403, 407, 261, 378, 2}));
  EXPECT_EQ(tok.encode("", true, true), (std::vector<int32_t>{1, 2}));
  EXPECT_TRUE(tok.encode("", false, false).empty());
}

TEST(Llama2cTokenizer, DecodesGoldenContinuation) {
  HONE_REQUIRE_SHARED(path, kStoriesTok);
  Llama2cTokenizer tok(path);
  const std::vector<int32_t> prompt = {1, 403, 407, 261, 378};
  const std::vector<int32_t> next = {432, 383, 286, 261, 376, 298, 315, 421, 395, 317,
                                     426, 338, 401, 396, 267, 337, 410, 408, 419, 292,
                                     411, 322, 265, 282, 295, 433, 426, 385, 328, 432,
                                     358, 394, 261, 370, 432, 352, 266, 268, 388, 426};
  // The fixture README's text runs one token past its 40 ids: it ends in " She" (id 338), the
  // 41st greedy token. Decode the 40 ids, then check the golden text with that token appended.
  const std::string golden =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
      "park. One day, she saw a big, red ball. She";
  const std::string continuation = golden.substr(std::string("Once upon a time").size());
  const std::string forty =
      continuation.substr(0, continuation.size() - std::string(" She").size());
  EXPECT_EQ(tok.decode(next), forty);

  std::vector<int32_t> all = prompt;
  all.insert(all.end(), next.begin(), next.end());
  EXPECT_EQ(tok.decode(all), "Once upon a time" + forty);
  all.push_back(338);
  EXPECT_EQ(tok.decode(all), golden);

  // Streaming the way run.c prints: each token decoded against the one before it.
  std::string streamed;
  for (size_t i = 1; i < all.size(); ++i) streamed += tok.decode_token(all[i - 1], all[i]);
  EXPECT_EQ(streamed, golden);
}

TEST(Llama2cTokenizer, DecodeTokenFollowsRunC) {
  HONE_REQUIRE_SHARED(path, kStoriesTok);
  Llama2cTokenizer tok(path);
  EXPECT_EQ(tok.decode_token(1, 403), "Once");    // leading space stripped after BOS
  EXPECT_EQ(tok.decode_token(-1, 403), " Once");  // kept elsewhere
  EXPECT_EQ(tok.decode_token(403, 407), " upon");
  EXPECT_EQ(tok.decode_token(-1, 3 + 0x41), "A");  // <0x41>
  EXPECT_EQ(tok.decode_token(-1, 3 + 0xE4), std::string(1, '\xE4'));
  EXPECT_NE(error_of([&] { tok.decode_token(-1, 512); }).find("512"), std::string::npos);
  EXPECT_NE(error_of([&] { tok.decode({5, -1}); }).find("-1"), std::string::npos);
}

TEST(Llama2cTokenizer, ByteFallbackForUnknownCodepoints) {
  HONE_REQUIRE_SHARED(path, kStoriesTok);
  Llama2cTokenizer tok(path);
  // "世" (E4 B8 96) is not in a 512-token vocabulary: three byte tokens after the dummy " ".
  EXPECT_EQ(tok.encode("\xe4\xb8\x96", false, false),
            (std::vector<int32_t>{tok.lookup(" "), 3 + 0xE4, 3 + 0xB8, 3 + 0x96}));
}

TEST(Llama2cTokenizer, RoundTripsAndMatchesRunCReference) {
  HONE_REQUIRE_SHARED(path, kStoriesTok);
  HONE_REQUIRE_SHARED(corpus, "corpora/tinyshakespeare/input.txt");
  Llama2cTokenizer tok(path);
  std::vector<std::string> texts = kRoundTripTexts;
  for (const auto& line : first_lines(corpus, 40)) texts.push_back(line);
  texts.push_back(read_file(corpus).substr(0, 3000));  // many lines as one document
  for (const auto& text : texts) {
    SCOPED_TRACE(text);
    auto ids = tok.encode(text, false, false);
    EXPECT_EQ(ids, reference_encode(tok, text));
    EXPECT_EQ(tok.decode(ids), text);
    EXPECT_EQ(tok.decode(tok.encode(text, true, true)), text);
  }
}

TEST(Llama2cTokenizer, SecondVocabularyRoundTrips) {
  HONE_REQUIRE_SHARED(stories, kStoriesTok);
  HONE_REQUIRE_SHARED(path, kDreamsTok);
  Llama2cTokenizer tok(path);
  Llama2cTokenizer other(stories);
  EXPECT_EQ(tok.vocab_size(), 512);
  EXPECT_EQ(tok.max_token_length(), 10);
  for (const auto& text : kRoundTripTexts) {
    SCOPED_TRACE(text);
    auto ids = tok.encode(text, true, false);
    EXPECT_EQ(tok.decode(ids), text);
    EXPECT_EQ(std::vector<int32_t>(ids.begin() + 1, ids.end()), reference_encode(tok, text));
  }
  // Different vocabularies give different ids for the same prompt.
  EXPECT_NE(tok.encode("I dreamed of a gentle hum", true, false),
            other.encode("I dreamed of a gentle hum", true, false));
}

TEST(Llama2cTokenizer, Llama2VocabularyKnownIds) {
  HONE_REQUIRE_SHARED(path, "tokenizers/llama2/tokenizer.bin");
  HONE_REQUIRE_SHARED(corpus, "corpora/tinyshakespeare/input.txt");
  Llama2cTokenizer tok(path);
  EXPECT_EQ(tok.vocab_size(), 32000);
  EXPECT_EQ(tok.encode("Hello world", true, false), (std::vector<int32_t>{1, 15043, 3186}));
  const std::string text = read_file(corpus).substr(0, 2000);
  auto ids = tok.encode(text, false, false);
  EXPECT_EQ(ids, reference_encode(tok, text));
  EXPECT_EQ(tok.decode(ids), text);
}

TEST(Llama2cTokenizer, LoadTokenizerDetectsFormat) {
  HONE_REQUIRE_SHARED(path, kStoriesTok);
  std::unique_ptr<Tokenizer> tok = load_tokenizer(path);
  ASSERT_NE(dynamic_cast<Llama2cTokenizer*>(tok.get()), nullptr);
  EXPECT_EQ(tok->vocab_size(), 512);
  EXPECT_EQ(tok->encode("Once upon a time", true, false),
            (std::vector<int32_t>{1, 403, 407, 261, 378}));

  TempFile json("tokenizer.json", "{\"model\": {}}");
  EXPECT_NE(error_of([&] { load_tokenizer(json.path); }).find(json.path), std::string::npos);
  TempFile junk("junk.bin", "\xff\xff\xff\xff garbage");
  EXPECT_NE(error_of([&] { load_tokenizer(junk.path); }).find("unrecognised"), std::string::npos);
}

TEST(Llama2cTokenizer, ErrorsNameTheFileAndProblem) {
  const std::string missing = "/nonexistent/dir/tok512.bin";
  std::string msg = error_of([&] { Llama2cTokenizer t(missing); });
  EXPECT_NE(msg.find(missing), std::string::npos) << msg;
  msg = error_of([&] { load_tokenizer(missing); });
  EXPECT_NE(msg.find(missing), std::string::npos) << msg;

  // max_token_length 4, one good token "ab", then a token cut off inside its bytes.
  const std::string good = le_i32(4) + le_f32(-1.f) + le_i32(2) + "ab";
  {
    TempFile f("trunc.bin", good + le_f32(0.f) + le_i32(3) + "x");
    msg = error_of([&] { Llama2cTokenizer t(f.path); });
    EXPECT_NE(msg.find(f.path), std::string::npos) << msg;
    EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
    EXPECT_NE(msg.find("token 1"), std::string::npos) << msg;
  }
  {
    TempFile f("trunc_len.bin", good + le_f32(0.f) + "\x01\x00");
    msg = error_of([&] { Llama2cTokenizer t(f.path); });
    EXPECT_NE(msg.find("truncated at offset 18"), std::string::npos) << msg;
  }
  {
    TempFile f("badlen.bin", good + le_f32(0.f) + le_i32(99) + "xyz");
    msg = error_of([&] { Llama2cTokenizer t(f.path); });
    EXPECT_NE(msg.find(f.path), std::string::npos) << msg;
    EXPECT_NE(msg.find("length 99"), std::string::npos) << msg;
  }
  {
    TempFile f("badmax.bin", le_i32(-3) + le_f32(0.f) + le_i32(1) + "a");
    msg = error_of([&] { Llama2cTokenizer t(f.path); });
    EXPECT_NE(msg.find("max_token_length -3"), std::string::npos) << msg;
  }
  {
    TempFile f("empty.bin", "");
    msg = error_of([&] { Llama2cTokenizer t(f.path); });
    EXPECT_NE(msg.find("truncated at offset 0"), std::string::npos) << msg;
  }
}

TEST(Llama2cTokenizer, TruncatedRealFileAndExplicitVocabSize) {
  HONE_REQUIRE_SHARED(path, kStoriesTok);
  const std::string bytes = read_file(path);
  TempFile cut("tok512_cut.bin", bytes.substr(0, 1000));
  std::string msg = error_of([&] { Llama2cTokenizer t(cut.path); });
  EXPECT_NE(msg.find(cut.path), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;

  EXPECT_EQ(Llama2cTokenizer(path, 512).vocab_size(), 512);
  msg = error_of([&] { Llama2cTokenizer t(path, 513); });
  EXPECT_NE(msg.find("token 512"), std::string::npos) << msg;
  msg = error_of([&] { Llama2cTokenizer t(path, 500); });
  EXPECT_NE(msg.find("trailing bytes"), std::string::npos) << msg;
}

}  // namespace
}  // namespace hone
