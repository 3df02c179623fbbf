#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "autograd/error.h"
#include "data/text_corpus.h"
#include "tmpdir.h"

namespace hone {
namespace {

using test::TempDir;
using test::write_bytes;

std::vector<std::string> sources(const std::vector<Document>& docs) {
  std::vector<std::string> out;
  for (const auto& d : docs) out.push_back(d.source);
  return out;
}

// Throws hone::Error whose message contains `needle`.
template <class F>
void expect_error_naming(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected hone::Error mentioning " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(TextCorpus, SingleFileIsOneDocumentWhateverItsExtension) {
  TempDir tmp;
  write_bytes(tmp.file("notes.log"), "hello\n\nworld\n");
  auto docs = read_text_corpus(tmp.file("notes.log"));
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(docs[0].source, tmp.file("notes.log"));
  EXPECT_EQ(docs[0].text, "hello\n\nworld\n");
}

TEST(TextCorpus, FolderReadsTxtAndMdRecursivelySortedByPath) {
  TempDir tmp;
  std::filesystem::create_directories(tmp.path() / "b" / "deep");
  std::filesystem::create_directories(tmp.path() / "a");
  // Written out of order so a listing-order bug would show.
  write_bytes(tmp.file("b/deep/z.txt"), "bz");
  write_bytes(tmp.file("c.md"), "c");
  write_bytes(tmp.file("a/2.txt"), "a2");
  write_bytes(tmp.file("a/1.txt"), "a1");
  write_bytes(tmp.file("b/skip.json"), "{}");
  write_bytes(tmp.file("b/skip.bin"), "x");
  auto docs = read_text_corpus(tmp.path().string());
  EXPECT_EQ(sources(docs), (std::vector<std::string>{tmp.file("a/1.txt"), tmp.file("a/2.txt"),
                                                     tmp.file("b/deep/z.txt"), tmp.file("c.md")}));
  ASSERT_EQ(docs.size(), 4u);
  EXPECT_EQ(docs[0].text, "a1");
  EXPECT_EQ(docs[2].text, "bz");
}

TEST(TextCorpus, GlobMatchesInSortedOrderAndExpandsFolders) {
  TempDir tmp;
  std::filesystem::create_directories(tmp.path() / "part_b");
  write_bytes(tmp.file("part_c.txt"), "c");
  write_bytes(tmp.file("part_a.txt"), "a");
  write_bytes(tmp.file("part_b/x.md"), "bx");
  write_bytes(tmp.file("other.txt"), "no");
  auto docs = read_text_corpus(tmp.file("part_*"));
  EXPECT_EQ(sources(docs),
            (std::vector<std::string>{tmp.file("part_a.txt"), tmp.file("part_b/x.md"),
                                      tmp.file("part_c.txt")}));
  auto q = read_text_corpus(tmp.file("part_?.txt"));
  EXPECT_EQ(sources(q), (std::vector<std::string>{tmp.file("part_a.txt"), tmp.file("part_c.txt")}));
}

TEST(TextCorpus, Utf8ByteOrderMarkIsStripped) {
  TempDir tmp;
  write_bytes(tmp.file("bom.txt"), "\xEF\xBB\xBFOrigin\n");
  write_bytes(tmp.file("mid.txt"), "a\xEF\xBB\xBF");  // only a leading BOM is a mark
  auto docs = read_text_corpus(tmp.path().string());
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].text, "Origin\n");
  EXPECT_EQ(docs[1].text, "a\xEF\xBB\xBF");
}

TEST(TextCorpus, DocSeparatorSplitsFilesAndDropsEmptyPieces) {
  TempDir tmp;
  write_bytes(tmp.file("f.txt"), "\xEF\xBB\xBFone\n\n\ntwo\nlines\n\n\n\n\n\nthree\n\n\n");
  CorpusOptions opt;
  opt.doc_separator = "\n\n\n";
  auto docs = read_text_corpus(tmp.file("f.txt"), opt);
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0].text, "one");
  EXPECT_EQ(docs[1].text, "two\nlines");
  EXPECT_EQ(docs[2].text, "three");
  EXPECT_EQ(docs[0].source, tmp.file("f.txt") + "#0");
  EXPECT_EQ(docs[2].source, tmp.file("f.txt") + "#2");
}

TEST(TextCorpus, EmptyGlobIsAnErrorNamingTheSpec) {
  TempDir tmp;
  const std::string spec = tmp.file("nothing_*.txt");
  expect_error_naming([&] { read_text_corpus(spec); }, spec);
}

TEST(TextCorpus, FolderWithoutTextFilesIsAnErrorNamingIt) {
  TempDir tmp;
  write_bytes(tmp.file("data.jsonl"), "{}\n");
  expect_error_naming([&] { read_text_corpus(tmp.path().string()); }, tmp.path().string());
}

TEST(TextCorpus, MissingFileIsAnErrorNamingIt) {
  TempDir tmp;
  const std::string missing = tmp.file("missing.txt");
  expect_error_naming([&] { read_text_corpus(missing); }, missing);
}

TEST(TextCorpus, UnreadableFileIsAnErrorNamingIt) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads files whatever their mode";
  TempDir tmp;
  const std::string locked = tmp.file("locked.txt");
  write_bytes(locked, "secret");
  std::filesystem::permissions(locked, std::filesystem::perms::none);
  expect_error_naming([&] { read_text_corpus(tmp.path().string()); }, locked);
}

// Works as root too: a glob lists a dangling symlink, which then cannot be opened.
TEST(TextCorpus, DanglingLinkFromGlobIsAnErrorNamingIt) {
  TempDir tmp;
  write_bytes(tmp.file("a.txt"), "fine");
  std::filesystem::create_symlink(tmp.file("gone.txt"), tmp.file("b.txt"));
  expect_error_naming([&] { read_text_corpus(tmp.file("*.txt")); }, tmp.file("b.txt"));
}

}  // namespace
}  // namespace hone
