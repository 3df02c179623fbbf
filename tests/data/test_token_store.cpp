// The token store and the streaming, cached tokenization of text corpora: stores round-trip and
// refuse to be trusted when stale or corrupt, the streamed ids are exactly the whole-document
// encoding (real tokenizers, documents cut into many pieces), a second run reuses the cache, and
// files that are not text are refused.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <new>
#include <string>
#include <vector>

#include "autograd/error.h"
#include "common.h"
#include "data/packing.h"
#include "data/text_check.h"
#include "data/text_dataset.h"
#include "data/text_tokens.h"
#include "data/token_store.h"
#include "data/tokenizer.h"
#include "fake_tokenizer.h"
#include "tmpdir.h"

namespace hone {
namespace {

namespace fs = std::filesystem;

fs::path samples_dir() {
  return fs::path(__FILE__).parent_path().parent_path().parent_path() / "data" / "samples";
}
std::string sample_tokenizer() {
  return (samples_dir() / "stories260K" / "tok512.bin").string();
}
std::string sample_text() {
  return (samples_dir() / "tinyshakespeare" / "train.txt").string();
}

std::vector<int32_t> all_ids(const TokenSequence& s) {
  std::vector<int32_t> out(static_cast<size_t>(s.size()));
  if (!out.empty()) s.read(0, s.size(), out.data());
  return out;
}

// What hone did before the token store: whole files in memory, each document encoded at once.
std::vector<int32_t> reference_ids(const std::string& spec, const Tokenizer& tok,
                                   const TextTokenOptions& o) {
  return tokenize_documents(read_text_corpus(spec, o.corpus), tok, o.add_bos, o.add_eos);
}

struct FileId {
  ino_t ino;
  int64_t mtime_ns;
};
FileId file_id(const std::string& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return {st.st_ino, static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// ---- the store file --------------------------------------------------------------------------

TEST(TokenStore, RoundTripsUint16AndUint32Ids) {
  test::TempDir tmp;
  for (int32_t vocab : {512, 65536, 70000}) {
    std::vector<int32_t> ids;
    for (int32_t i = 0; i < 5000; ++i) ids.push_back((i * 7919) % vocab);
    ids.push_back(vocab - 1);
    const std::string path = tmp.file("s" + std::to_string(vocab) + ".tokens");
    TokenStoreWriter w(path, "key one", vocab);
    w.append(ids.data(), 100);
    w.append(ids.data() + 100, ids.size() - 100);
    auto made = w.finish();
    EXPECT_EQ(made->width(), vocab <= 65536 ? 2 : 4);
    auto back = TokenStore::open(path, "key one");
    ASSERT_TRUE(back) << vocab;
    ASSERT_EQ(back->size(), static_cast<int64_t>(ids.size()));
    for (size_t i = 0; i < ids.size(); ++i) ASSERT_EQ((*back)[static_cast<int64_t>(i)], ids[i]);
    EXPECT_FALSE(TokenStore::open(path, "key two"));  // another key: not this store
    EXPECT_FALSE(fs::exists(w.temp_path()));          // renamed into place
  }
  TokenStoreWriter bad(tmp.file("bad.tokens"), "k", 10);
  const int32_t out_of_range = 10;
  EXPECT_THROW(bad.append(&out_of_range, 1), Error);
}

TEST(TokenStore, TruncatedFlippedOrForeignFilesAreNotTrusted) {
  test::TempDir tmp;
  const std::string path = tmp.file("a.tokens");
  std::vector<int32_t> ids(3000, 5);
  {
    TokenStoreWriter w(path, "k", 512);
    w.append(ids.data(), ids.size());
    w.finish();
  }
  const std::string good = test::read_bytes(path);
  ASSERT_TRUE(TokenStore::open(path, "k"));
  std::string flipped = good;
  flipped[good.size() - 100] ^= 0x04;  // one bit of one id
  test::write_bytes(path, flipped);
  EXPECT_FALSE(TokenStore::open(path, "k"));
  test::write_bytes(path, good.substr(0, good.size() - 2));
  EXPECT_FALSE(TokenStore::open(path, "k"));
  test::write_bytes(path, "not a token store at all, just some text of some length............");
  EXPECT_FALSE(TokenStore::open(path, "k"));
  EXPECT_FALSE(TokenStore::open(tmp.file("absent.tokens"), "k"));
}

// ---- streaming tokenization ------------------------------------------------------------------

// Documents far longer than the piece size are cut into many pieces; the ids are those of each
// document encoded whole, for llama2.c's whole-text BPE (the bundled tokenizer).
TEST(CorpusTokens, PiecesGiveTheIdsOfWholeDocuments) {
  test::TempDir tmp;
  auto tok = load_tokenizer(sample_tokenizer());
  const std::string text = test::read_bytes(sample_text());
  test::write_bytes(tmp.file("c.txt"), text.substr(0, 60000));
  for (const std::string sep : {"", "\n\n"}) {
    TextTokenOptions o;
    o.corpus.doc_separator = sep;
    o.chunk_bytes = 1000;  // dozens of cuts per document
    const auto seq = corpus_tokens(tmp.file("c.txt"), *tok, o);
    EXPECT_EQ(all_ids(*seq), reference_ids(tmp.file("c.txt"), *tok, o))
        << "separator " << sep.size();
  }
}

// The same for the Hugging Face tokenizers at hand: byte-level BPE with Llama 3's and Qwen's
// pre-tokenizer regexes, and SentencePiece-style Metaspace BPE (Mistral, Llama 2's tokenizer.bin).
TEST(CorpusTokens, PiecesGiveTheIdsOfWholeDocumentsForRealTokenizers) {
  HONE_REQUIRE_SHARED(corpus, "corpora/origin_of_species/pg1228.txt");
  test::TempDir tmp;
  test::write_bytes(tmp.file("c.txt"), test::read_bytes(corpus).substr(100000, 40000));
  int tried = 0;
  for (const char* rel : {"tokenizers/llama3", "tokenizers/qwen3", "tokenizers/mistral",
                          "tokenizers/llama2/tokenizer.bin"}) {
    const std::string path = test::shared_file(rel);
    if (path.empty()) continue;
    ++tried;
    auto tok = load_tokenizer(path);
    TextTokenOptions o;
    o.chunk_bytes = 1500;
    TextTokenStats st;
    const auto seq = corpus_tokens(tmp.file("c.txt"), *tok, o, &st);
    EXPECT_GT(st.pieces, 15) << rel << ": the document was not cut";
    EXPECT_EQ(all_ids(*seq), reference_ids(tmp.file("c.txt"), *tok, o)) << rel;
  }
  if (tried == 0) GTEST_SKIP() << "no tokenizer under ../shared/tokenizers";
}

// Several files, windows across file boundaries and the val split: the windows the store gives
// are those of pack_documents over the whole documents.
TEST(CorpusTokens, WindowsAreThoseOfTheInMemoryPath) {
  test::TempDir tmp;
  auto tok = load_tokenizer(sample_tokenizer());
  const std::string text = test::read_bytes(sample_text());
  fs::create_directories(tmp.path() / "corpus");
  test::write_bytes(tmp.file("corpus/a.txt"), text.substr(0, 20000));
  test::write_bytes(tmp.file("corpus/b.md"), "\xEF\xBB\xBF" + text.substr(50000, 9000));
  TextDataOptions o;
  o.train = tmp.file("corpus");
  o.seq_len = 64;
  o.keep_tail = true;
  o.val_fraction = 0.1;
  o.chunk_bytes = 2000;
  o.tokenizer_key = tokenizer_files_key(sample_tokenizer());
  const TrainValSplit got = load_text_data(o, *tok);
  const TrainValSplit want =
      split_train_val(pack_documents(read_text_corpus(o.train), *tok, o), o.val_fraction);
  for (auto [g, w] : {std::pair{&got.train, &want.train}, std::pair{&got.val, &want.val}}) {
    ASSERT_EQ(g->size(), w->size());
    for (size_t i = 0; i < g->size(); ++i) {
      const Example a = (*g)[i], b = (*w)[i];
      ASSERT_EQ(a.ids, b.ids) << i;
      ASSERT_EQ(a.targets, b.targets) << i;
    }
  }
}

TEST(CorpusTokens, SecondRunReusesTheCache) {
  test::TempDir tmp;
  auto tok = load_tokenizer(sample_tokenizer());
  test::write_bytes(tmp.file("c.txt"), test::read_bytes(sample_text()).substr(0, 30000));
  TextTokenOptions o;
  o.tokenizer_key = tokenizer_files_key(sample_tokenizer());
  TextTokenStats first;
  const auto a = corpus_tokens(tmp.file("c.txt"), *tok, o, &first);
  EXPECT_EQ(first.tokenized, 1);
  EXPECT_EQ(first.reused, 0);
  const std::string store = token_cache_path(tmp.file("c.txt"), o);
  ASSERT_EQ(first.stores, std::vector<std::string>{store});
  EXPECT_EQ(fs::path(store).parent_path(), tmp.path() / ".hone-cache");
  const FileId before = file_id(store);

  TextTokenStats second;
  const auto b = corpus_tokens(tmp.file("c.txt"), *tok, o, &second);
  EXPECT_EQ(second.tokenized, 0);
  EXPECT_EQ(second.reused, 1);
  const FileId after = file_id(store);
  EXPECT_EQ(before.ino, after.ino);
  EXPECT_EQ(before.mtime_ns, after.mtime_ns);
  EXPECT_EQ(all_ids(*a), all_ids(*b));
  EXPECT_EQ(cached_store_bytes(tmp.file("c.txt"), o), first.mapped_bytes);

  // Another tokenizer (or option) is another store, not a reuse of this one.
  TextTokenOptions other = o;
  other.add_eos = false;
  EXPECT_NE(token_cache_path(tmp.file("c.txt"), other), store);
}

TEST(CorpusTokens, ChangedCorpusIsTokenizedAgain) {
  test::TempDir tmp;
  auto tok = load_tokenizer(sample_tokenizer());
  const std::string text = test::read_bytes(sample_text());
  test::write_bytes(tmp.file("c.txt"), text.substr(0, 20000));
  TextTokenOptions o;
  o.tokenizer_key = tokenizer_files_key(sample_tokenizer());
  corpus_tokens(tmp.file("c.txt"), *tok, o);
  // Same size, new content (one letter changed): the content hash tells.
  std::string edited = text.substr(0, 20000);
  edited[10000] = edited[10000] == 'a' ? 'b' : 'a';
  test::write_bytes(tmp.file("c.txt"), edited);
  TextTokenStats st;
  const auto seq = corpus_tokens(tmp.file("c.txt"), *tok, o, &st);
  EXPECT_EQ(st.tokenized, 1);
  EXPECT_EQ(st.reused, 0);
  EXPECT_EQ(all_ids(*seq), reference_ids(tmp.file("c.txt"), *tok, o));
  EXPECT_EQ(cached_store_bytes(tmp.file("c.txt"), o),
            static_cast<int64_t>(fs::file_size(token_cache_path(tmp.file("c.txt"), o))));
}

TEST(CorpusTokens, CorruptCacheIsRebuiltNotTrusted) {
  test::TempDir tmp;
  auto tok = load_tokenizer(sample_tokenizer());
  test::write_bytes(tmp.file("c.txt"), test::read_bytes(sample_text()).substr(0, 20000));
  TextTokenOptions o;
  o.tokenizer_key = tokenizer_files_key(sample_tokenizer());
  const auto want = all_ids(*corpus_tokens(tmp.file("c.txt"), *tok, o));
  const std::string store = token_cache_path(tmp.file("c.txt"), o);
  std::string bytes = test::read_bytes(store);
  bytes[bytes.size() / 2] ^= 0x01;
  test::write_bytes(store, bytes);
  TextTokenStats st;
  EXPECT_EQ(all_ids(*corpus_tokens(tmp.file("c.txt"), *tok, o, &st)), want);
  EXPECT_EQ(st.tokenized, 1);
  test::write_bytes(store, bytes.substr(0, 100));  // truncated
  TextTokenStats st2;
  EXPECT_EQ(all_ids(*corpus_tokens(tmp.file("c.txt"), *tok, o, &st2)), want);
  EXPECT_EQ(st2.tokenized, 1);
  EXPECT_EQ(st2.reused, 0);
}

// The corpus folder cannot take a .hone-cache folder (here a file is in the way, which stops
// root too): the store goes to the fallback folder, and is reused from there.
TEST(CorpusTokens, UnwritableCorpusFolderFallsBack) {
  test::TempDir tmp;
  auto tok = load_tokenizer(sample_tokenizer());
  fs::create_directories(tmp.path() / "corpus");
  test::write_bytes(tmp.file("corpus/c.txt"), test::read_bytes(sample_text()).substr(0, 9000));
  test::write_bytes(tmp.file("corpus/.hone-cache"), "in the way");
  TextTokenOptions o;
  o.tokenizer_key = tokenizer_files_key(sample_tokenizer());
  o.fallback_cache_dir = tmp.file("fallback");
  fs::create_directories(o.fallback_cache_dir);
  TextTokenStats st;
  corpus_tokens(tmp.file("corpus/c.txt"), *tok, o, &st);
  ASSERT_EQ(st.stores.size(), 1u);
  EXPECT_EQ(st.stores[0], token_cache_path(tmp.file("corpus/c.txt"), o, /*fallback=*/true));
  EXPECT_EQ(fs::path(st.stores[0]).parent_path(), fs::path(o.fallback_cache_dir));
  TextTokenStats again;
  corpus_tokens(tmp.file("corpus/c.txt"), *tok, o, &again);
  EXPECT_EQ(again.reused, 1);
}

// A corpus folder without write bits (a read-only data set) gets no .hone-cache, even when the
// process is root and could write there: the store goes to the fallback folder.
TEST(CorpusTokens, CorpusFolderWithoutWriteBitsIsLeftAlone) {
  test::TempDir tmp;
  auto tok = load_tokenizer(sample_tokenizer());
  fs::create_directories(tmp.path() / "corpus");
  test::write_bytes(tmp.file("corpus/c.txt"), test::read_bytes(sample_text()).substr(0, 9000));
  fs::permissions(tmp.path() / "corpus", fs::perms::owner_read | fs::perms::owner_exec);
  TextTokenOptions o;
  o.tokenizer_key = tokenizer_files_key(sample_tokenizer());
  o.fallback_cache_dir = tmp.file("fallback");
  fs::create_directories(o.fallback_cache_dir);
  TextTokenStats st;
  corpus_tokens(tmp.file("corpus/c.txt"), *tok, o, &st);
  fs::permissions(tmp.path() / "corpus", fs::perms::owner_all);
  ASSERT_EQ(st.stores.size(), 1u);
  EXPECT_EQ(fs::path(st.stores[0]).parent_path(), fs::path(o.fallback_cache_dir));
  EXPECT_FALSE(fs::exists(tmp.path() / "corpus/.hone-cache"));
}

// Without a tokenizer key nothing is cached: the store is an unlinked temporary file.
TEST(CorpusTokens, NoKeyLeavesNoFiles) {
  test::TempDir tmp;
  test::ByteTokenizer tok;
  test::write_bytes(tmp.file("c.txt"), "some text");
  TextTokenStats st;
  const auto seq = corpus_tokens(tmp.file("c.txt"), tok, {}, &st);
  EXPECT_EQ(all_ids(*seq).size(), 11u);
  EXPECT_EQ(st.stores, std::vector<std::string>{""});
  EXPECT_FALSE(fs::exists(tmp.path() / ".hone-cache"));
}

// Running out of memory while tokenizing is an error naming the file, not "std::bad_alloc".
class StarvedTokenizer final : public Tokenizer {
 public:
  std::vector<int32_t> encode(const std::string& text, bool, bool) const override {
    if (text.size() > 1) throw std::bad_alloc();
    return {3};
  }
  std::string decode_token(int32_t, int32_t) const override { return ""; }
  std::string decode(const std::vector<int32_t>&) const override { return ""; }
  int32_t bos_id() const override { return 1; }
  int32_t eos_id() const override { return 2; }
  int32_t vocab_size() const override { return 4; }
};

TEST(CorpusTokens, OutOfMemoryNamesTheFile) {
  test::TempDir tmp;
  test::write_bytes(tmp.file("big.txt"), "a document");
  StarvedTokenizer tok;
  const std::string msg = error_of([&] { corpus_tokens(tmp.file("big.txt"), tok, {}); });
  EXPECT_NE(msg.find(tmp.file("big.txt")), std::string::npos) << msg;
  EXPECT_NE(msg.find("out of memory"), std::string::npos) << msg;
}

// ---- not text --------------------------------------------------------------------------------

TEST(TextCheck, BinaryFilesAreRefusedNamingTheFileAndCounts) {
  test::TempDir tmp;
  test::ByteTokenizer tok;
  std::vector<std::string> binaries = {"/bin/ls"};
  const std::string st = test::shared_file("fixtures/models/tiny-llama3/model.safetensors");
  if (!st.empty()) binaries.push_back(st);
  for (const std::string& src : binaries) {
    if (!fs::exists(src)) continue;
    const std::string f = tmp.file(fs::path(src).filename().string() + ".txt");
    fs::copy_file(src, f, fs::copy_options::overwrite_existing);
    TextDataOptions o;
    o.train = f;
    o.seq_len = 8;
    const std::string msg = error_of([&] { load_text_data(o, tok); });
    EXPECT_NE(msg.find(f), std::string::npos) << msg;
    EXPECT_NE(msg.find("not a text file"), std::string::npos) << msg;
    EXPECT_NE(msg.find("NUL bytes"), std::string::npos) << msg;
    EXPECT_FALSE(fs::exists(tmp.path() / ".hone-cache"));  // refused before any tokenizing
  }
}

TEST(TextCheck, InvalidUtf8IsCountedWarnedOrRefused) {
  test::TempDir tmp;
  test::ByteTokenizer tok;
  std::string text;
  for (int i = 0; i < 200; ++i)
    text += "Plain line of text with \xC3\xA9 accents.\n";  // 7400 chars
  std::string few = text;
  few[100] = '\xFF';                 // a byte that is never UTF-8
  few.insert(500, "\xE2\x82");       // a truncated 3-byte sequence: one invalid sequence
  few.insert(1000, "\xED\xA0\x80");  // a surrogate: three invalid bytes
  test::write_bytes(tmp.file("few.txt"), few);
  TextTokenStats st;
  corpus_tokens(tmp.file("few.txt"), tok, {}, &st);
  ASSERT_EQ(st.warnings.size(), 1u);
  EXPECT_NE(st.warnings[0].find(tmp.file("few.txt")), std::string::npos) << st.warnings[0];
  EXPECT_NE(st.warnings[0].find("5 invalid UTF-8 sequences"), std::string::npos) << st.warnings[0];

  std::string latin1;  // ISO-8859-1 text: é as the lone byte 0xE9, 1 in 12 characters
  for (int i = 0; i < 300; ++i) latin1 += "caf\xE9 au lait\n";
  test::write_bytes(tmp.file("latin1.txt"), latin1);
  const std::string msg = error_of([&] { corpus_tokens(tmp.file("latin1.txt"), tok, {}); });
  EXPECT_NE(msg.find(tmp.file("latin1.txt")), std::string::npos) << msg;
  EXPECT_NE(msg.find("300 invalid UTF-8 sequences"), std::string::npos) << msg;

  TextTokenStats clean;
  test::write_bytes(tmp.file("clean.txt"), text);
  corpus_tokens(tmp.file("clean.txt"), tok, {}, &clean);
  EXPECT_TRUE(clean.warnings.empty());
}

// Sequences split between two reads count as the whole file would.
TEST(TextCheck, CountsDoNotDependOnHowTheBytesArrive) {
  const std::string s = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xFFz\xE2\x82 \xC3";
  TextCheck whole;
  whole.feed(s);
  whole.finish();
  EXPECT_EQ(whole.chars(), 6);    // a é € 😀 z and the space
  EXPECT_EQ(whole.invalid(), 3);  // 0xFF, the cut-short E2 82, the final lone C3
  for (size_t cut = 0; cut <= s.size(); ++cut) {
    TextCheck parts;
    parts.feed(s.substr(0, cut));
    parts.feed(s.substr(cut));
    parts.finish();
    EXPECT_EQ(parts.chars(), whole.chars()) << cut;
    EXPECT_EQ(parts.invalid(), whole.invalid()) << cut;
  }
}

}  // namespace
}  // namespace hone
