// The tinyshakespeare slices in data/samples/ that the quickstart trains on.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <sstream>
#include <string>

#include "common.h"
#include "data/text_dataset.h"
#include "data/tokenizer.h"
#include "tmpdir.h"

namespace hone {
namespace {

namespace fs = std::filesystem;

// <repo>/data/samples, found from this file's path (<repo>/tests/data/test_samples.cpp).
fs::path samples_dir() {
  return fs::path(__FILE__).parent_path().parent_path().parent_path() / "data" / "samples";
}

std::set<std::string> long_lines(const std::string& text) {
  std::set<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.size() > 20) out.insert(line);
  }
  return out;
}

TEST(Samples, TinyShakespeareSlicesExistAndAreDisjoint) {
  const fs::path dir = samples_dir() / "tinyshakespeare";
  const std::string train = test::read_bytes((dir / "train.txt").string());
  const std::string val = test::read_bytes((dir / "val.txt").string());
  ASSERT_EQ(train.size(), 199994u) << dir;  // sizes as in the folder's README.md
  ASSERT_EQ(val.size(), 19919u);
  EXPECT_TRUE(fs::exists(dir / "README.md"));
  EXPECT_EQ(train.back(), '\n');
  EXPECT_EQ(val.back(), '\n');
  EXPECT_EQ(train.find(val.substr(0, 200)), std::string::npos);
  const std::set<std::string> train_lines = long_lines(train);
  for (const std::string& line : long_lines(val)) {
    EXPECT_EQ(train_lines.count(line), 0u) << "val line also in train: " << line;
  }
}

// The README's byte ranges, checked against the original.
TEST(Samples, TinyShakespeareSlicesAreTheDocumentedRanges) {
  HONE_REQUIRE_SHARED(path, "corpora/tinyshakespeare/input.txt");
  const std::string input = test::read_bytes(path);
  const fs::path dir = samples_dir() / "tinyshakespeare";
  EXPECT_EQ(test::read_bytes((dir / "train.txt").string()), input.substr(0, 199994));
  EXPECT_EQ(test::read_bytes((dir / "val.txt").string()), input.substr(1016627, 19919));
}

// What the quickstart does: the bundled tokenizer on the bundled slices, no ../shared needed.
TEST(Samples, QuickstartDataLoadsWithTheBundledTokenizer) {
  const fs::path dir = samples_dir();
  auto tok = load_tokenizer((dir / "stories260K" / "tok512.bin").string());
  TextDataOptions opt;
  opt.train = (dir / "tinyshakespeare" / "train.txt").string();
  opt.val = (dir / "tinyshakespeare" / "val.txt").string();
  opt.seq_len = 256;
  TrainValSplit s = load_text_data(opt, *tok);
  EXPECT_GT(s.train.size(), 100u);
  EXPECT_GT(s.val.size(), 10u);
  EXPECT_GT(s.train.size(), 5 * s.val.size());
  EXPECT_EQ(s.train[0].ids[0], tok->bos_id());
  for (const auto& e : s.val) {
    ASSERT_EQ(e.ids.size(), 256u);
    for (int32_t id : e.ids) ASSERT_TRUE(id >= 0 && id < tok->vocab_size());
  }
}

}  // namespace
}  // namespace hone
