#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "autograd/error.h"
#include "common.h"
#include "data/packing.h"
#include "data/text_dataset.h"
#include "data/tokenizer.h"
#include "fake_tokenizer.h"
#include "tmpdir.h"

namespace hone {
namespace {

using test::bytes_of;
using test::ByteTokenizer;

std::vector<int32_t> iota_stream(int n) {
  std::vector<int32_t> s(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) s[static_cast<size_t>(i)] = 100 + i;
  return s;
}

std::vector<int32_t> concat(std::initializer_list<std::vector<int32_t>> parts) {
  std::vector<int32_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// ---- pack_tokens ----------------------------------------------------------------------------

TEST(PackTokens, WindowCountIsFullWindowsOfTPlusOneWithStrideT) {
  for (int n : {0, 1, 2, 4, 5, 6, 9, 10, 11, 100}) {
    auto ex = pack_tokens(iota_stream(n), 4);
    const size_t expect = n < 2 ? 0 : static_cast<size_t>((n - 1) / 4);
    EXPECT_EQ(ex.size(), expect) << "n=" << n;
  }
}

TEST(PackTokens, TargetsAreInputsShiftedByOneAndWindowsTileTheStream) {
  const auto s = iota_stream(23);
  const int64_t T = 5;
  auto ex = pack_tokens(s, T);
  ASSERT_EQ(ex.size(), 4u);  // (23 - 1) / 5
  for (size_t k = 0; k < ex.size(); ++k) {
    ASSERT_EQ(ex[k].ids.size(), 5u);
    ASSERT_EQ(ex[k].targets.size(), 5u);
    for (size_t t = 0; t < 5; ++t) {
      EXPECT_EQ(ex[k].ids[t], s[k * 5 + t]);
      EXPECT_EQ(ex[k].targets[t], s[k * 5 + t + 1]);
      if (t + 1 < 5) {
        EXPECT_EQ(ex[k].targets[t], ex[k].ids[t + 1]);
      }
    }
    // The last target of one window is the first input of the next.
    if (k + 1 < ex.size()) {
      EXPECT_EQ(ex[k].targets.back(), ex[k + 1].ids.front());
    }
    for (int32_t t : ex[k].targets) EXPECT_NE(t, kIgnoreIndex);
  }
}

TEST(PackTokens, KeepTailPadsInputsAndMasksTargets) {
  const auto s = iota_stream(13);  // 2 full windows of T=5 use 11 tokens; 2 targets remain
  auto ex = pack_tokens(s, 5, /*keep_tail=*/true, /*pad_id=*/2);
  ASSERT_EQ(ex.size(), 3u);
  EXPECT_EQ(ex[2].ids, (std::vector<int32_t>{110, 111, 2, 2, 2}));
  EXPECT_EQ(ex[2].targets,
            (std::vector<int32_t>{111, 112, kIgnoreIndex, kIgnoreIndex, kIgnoreIndex}));
  // An exact fit adds no tail.
  EXPECT_EQ(pack_tokens(iota_stream(11), 5, true).size(), 2u);
}

TEST(PackTokens, RejectsNonPositiveSeqLen) {
  EXPECT_THROW(pack_tokens(iota_stream(10), 0), Error);
  EXPECT_THROW(pack_tokens(iota_stream(10), -3), Error);
}

// ---- tokenize_documents / BOS and EOS ------------------------------------------------------

TEST(TokenizeDocuments, BosAndEosAroundEveryDocumentInOrder) {
  ByteTokenizer tok;
  std::vector<Document> docs = {{"a", "ab"}, {"e", ""}, {"b", "xyz"}};
  EXPECT_EQ(tokenize_documents(docs, tok),
            concat({{1}, bytes_of("ab"), {2}, {1}, bytes_of("xyz"), {2}}));
  EXPECT_EQ(tokenize_documents(docs, tok, true, false),
            concat({{1}, bytes_of("ab"), {1}, bytes_of("xyz")}));
  EXPECT_EQ(tokenize_documents(docs, tok, false, true),
            concat({bytes_of("ab"), {2}, bytes_of("xyz"), {2}}));
  EXPECT_EQ(tokenize_documents(docs, tok, false, false), bytes_of("abxyz"));
}

TEST(TokenizeDocuments, NeverADoubleBos) {
  ByteTokenizer doubling(/*extra_bos=*/true);
  std::vector<Document> docs = {{"a", "ab"}, {"b", "c"}};
  const auto s = tokenize_documents(docs, doubling);
  EXPECT_EQ(s, concat({{1}, bytes_of("ab"), {2}, {1}, bytes_of("c"), {2}}));
  for (size_t i = 0; i + 1 < s.size(); ++i) EXPECT_FALSE(s[i] == 1 && s[i + 1] == 1) << i;
}

TEST(PackDocuments, DocumentsSpanWindowsAndBosMarksEachStart) {
  ByteTokenizer tok;
  // Stream: [1 a b c d e f g 2 1 h i j 2] = 14 tokens; T = 4 → 3 windows.
  std::vector<Document> docs = {{"d1", "abcdefg"}, {"d2", "hij"}};
  TextDataOptions opt;
  opt.seq_len = 4;
  auto ex = pack_documents(docs, tok, opt);
  ASSERT_EQ(ex.size(), 3u);
  EXPECT_EQ(ex[0].ids, concat({{1}, bytes_of("abc")}));
  EXPECT_EQ(ex[0].targets, bytes_of("abcd"));
  // The first document continues into the second window, ends with EOS, the next starts with BOS.
  EXPECT_EQ(ex[1].ids, bytes_of("defg"));
  EXPECT_EQ(ex[1].targets, concat({bytes_of("efg"), {2}}));
  EXPECT_EQ(ex[2].ids, concat({{2, 1}, bytes_of("hi")}));
  EXPECT_EQ(ex[2].targets, concat({{1}, bytes_of("hij")}));
  // Windows do not start with an added BOS of their own: BOS appears once per document.
  int bos = 0;
  for (const auto& e : ex)
    for (int32_t id : e.ids) bos += id == 1;
  EXPECT_EQ(bos, 2);
}

// Real tokenizer: the packed windows, read back, are exactly the documents.
TEST(PackDocuments, RoundTripsThroughTheStories260KTokenizer) {
  HONE_REQUIRE_SHARED(path, "models/stories260K/tok512.bin");
  auto tok = load_tokenizer(path);
  std::vector<Document> docs = {
      {"a", "Once upon a time, there was a little girl named Lily."},
      {"b", "She loved to play outside.\nOne day — she saw a big, red ball! 123"},
      {"c", "  Two leading spaces, and a tab\there."}};
  TextDataOptions opt;
  opt.seq_len = 7;
  opt.keep_tail = true;
  auto ex = pack_documents(docs, *tok, opt);
  ASSERT_FALSE(ex.empty());
  // Rebuild the stream from the windows: first input, then every (unmasked) target.
  std::vector<int32_t> stream = {ex[0].ids[0]};
  for (const auto& e : ex)
    for (int32_t t : e.targets)
      if (t != kIgnoreIndex) stream.push_back(t);
  EXPECT_EQ(stream, tokenize_documents(docs, *tok));
  // Split the stream at BOS and decode each document.
  std::vector<std::string> texts;
  std::vector<int32_t> cur;
  for (size_t i = 0; i <= stream.size(); ++i) {
    if (i == stream.size() || (stream[i] == tok->bos_id() && i > 0)) {
      ASSERT_EQ(cur.front(), tok->bos_id());
      ASSERT_EQ(cur.back(), tok->eos_id());
      texts.push_back(tok->decode(cur));
      cur.clear();
    }
    if (i < stream.size()) cur.push_back(stream[i]);
  }
  ASSERT_EQ(texts.size(), docs.size());
  for (size_t i = 0; i < docs.size(); ++i) EXPECT_EQ(texts[i], docs[i].text);
}

// ---- split_train_val ----------------------------------------------------------------------

TEST(SplitTrainVal, DisjointCompleteAndEvenlySpaced) {
  auto ex = pack_tokens(iota_stream(201), 2);  // 100 windows, each identified by its first id
  auto split = split_train_val(ex, 0.1);
  EXPECT_EQ(split.val.size(), 10u);
  EXPECT_EQ(split.train.size(), 90u);
  std::set<int32_t> seen;
  for (const auto& e : split.train) EXPECT_TRUE(seen.insert(e.ids[0]).second);
  for (const auto& e : split.val) EXPECT_TRUE(seen.insert(e.ids[0]).second) << "overlap";
  EXPECT_EQ(seen.size(), 100u);
  // Every 10th window (9, 19, ...), in order.
  for (size_t i = 0; i < split.val.size(); ++i) {
    EXPECT_EQ(split.val[i].ids[0], 100 + 2 * static_cast<int32_t>(10 * i + 9));
  }
  EXPECT_TRUE(
      std::is_sorted(split.train.begin(), split.train.end(),
                     [](const Example& a, const Example& b) { return a.ids[0] < b.ids[0]; }));
}

TEST(SplitTrainVal, DeterministicAndBounded) {
  for (int64_t n : {2, 3, 7, 10, 37, 1000}) {
    for (double f : {0.01, 0.1, 0.25, 0.5, 0.9}) {
      auto a = val_mask(n, f);
      EXPECT_EQ(a, val_mask(n, f));
      const auto v = std::count(a.begin(), a.end(), true);
      EXPECT_GE(v, 1) << n << " " << f;
      EXPECT_LE(v, n - 1) << n << " " << f;
    }
  }
  auto none = val_mask(10, 0.0);
  EXPECT_EQ(std::count(none.begin(), none.end(), true), 0);
  EXPECT_THROW(val_mask(10, 1.0), Error);
  EXPECT_THROW(val_mask(10, -0.1), Error);
  EXPECT_THROW(val_mask(1, 0.5), Error);
}

// ---- load_text_data ------------------------------------------------------------------------

TEST(LoadTextData, ExplicitValCorpusAndFractionSplit) {
  test::TempDir tmp;
  test::write_bytes(tmp.file("train.txt"), std::string(400, 'a'));
  test::write_bytes(tmp.file("val.txt"), std::string(100, 'b'));
  ByteTokenizer tok;
  TextDataOptions opt;
  opt.train = tmp.file("train.txt");
  opt.val = tmp.file("val.txt");
  opt.seq_len = 16;
  auto s = load_text_data(opt, tok);
  EXPECT_EQ(s.train.size(), 401u / 16);  // 402 tokens with BOS and EOS
  EXPECT_EQ(s.val.size(), 101u / 16);
  for (const auto& e : s.val)
    for (int32_t id : e.ids) EXPECT_TRUE(id == 'b' + 3 || id == 1) << id;

  opt.val.clear();
  opt.val_fraction = 0.2;
  auto f1 = load_text_data(opt, tok);
  auto f2 = load_text_data(opt, tok);
  EXPECT_EQ(f1.train.size() + f1.val.size(), 401u / 16);
  EXPECT_EQ(f1.val.size(), 5u);  // round(0.2 * 25)
  ASSERT_EQ(f1.val.size(), f2.val.size());
  for (size_t i = 0; i < f1.val.size(); ++i) EXPECT_EQ(f1.val[i].ids, f2.val[i].ids);
}

TEST(LoadTextData, RejectsBadOptions) {
  test::TempDir tmp;
  test::write_bytes(tmp.file("train.txt"), "short");
  ByteTokenizer tok;
  TextDataOptions opt;
  opt.train = tmp.file("train.txt");
  opt.seq_len = 0;
  EXPECT_THROW(load_text_data(opt, tok), Error);
  opt.seq_len = 64;
  try {
    load_text_data(opt, tok);  // 7 tokens: no full window
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(opt.train), std::string::npos) << e.what();
    // The hint names a recipe key (keep_tail is none: hone rejects it as unknown).
    EXPECT_NE(std::string(e.what()).find("(lower data.seq_len)"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("keep_tail"), std::string::npos) << e.what();
  }
  opt.keep_tail = true;
  EXPECT_EQ(load_text_data(opt, tok).train.size(), 1u);
  opt.val = opt.train;  // the same file twice
  EXPECT_THROW(load_text_data(opt, tok), Error);
  opt.val_fraction = 0.1;  // and both ways of choosing val
  EXPECT_THROW(load_text_data(opt, tok), Error);
}

}  // namespace
}  // namespace hone
