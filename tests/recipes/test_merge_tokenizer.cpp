// `hone merge` / `hone export --format hf` from bases without Hugging Face tokenizer files (a
// llama2.c .bin with its tok512.bin, a GGUF with its embedded vocabulary): the output folder
// gets a tokenizer.json giving the same ids, `hone generate` runs on it, and it is created with
// a folder's usual mode.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "common.h"
#include "data/hf_tokenizer.h"
#include "data/llama2c_tokenizer.h"
#include "hone_process.h"
#include "lora/peft.h"
#include "model/io/model_files.h"
#include "tmpdir.h"
#include "train_helpers.h"

using namespace hone;
namespace fs = std::filesystem;

namespace {

const char* kGolden =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
    "park. One day, she saw a big, red ball.\n";

std::string stories_bin() {
  return test::repo_file("data/samples/stories260K/stories260K.bin");
}

// The folder's tokenizer.json encodes (and decodes) tinyshakespeare as tok512.bin does.
void expect_tok512_ids(const std::string& folder) {
  ASSERT_TRUE(fs::exists(folder + "/tokenizer.json"));
  ASSERT_TRUE(fs::exists(folder + "/tokenizer_config.json"));
  HfTokenizer hf(folder + "/tokenizer.json");
  Llama2cTokenizer tok512(test::repo_file("data/samples/stories260K/tok512.bin"));
  EXPECT_EQ(hf.bos_id(), 1);
  EXPECT_EQ(hf.eos_id(), 2);
  std::ifstream in(test::repo_file("data/samples/tinyshakespeare/train.txt"));
  std::string line, para;
  for (int i = 0; i < 400 && std::getline(in, line); ++i) {
    ASSERT_EQ(hf.encode(line, true, false), tok512.encode(line, true, false)) << line;
    ASSERT_EQ(hf.encode(line, false, false), tok512.encode(line, false, false)) << line;
    ASSERT_EQ(hf.decode(tok512.encode(line, false, false)), line);
    para += line + "\n";
  }
  EXPECT_EQ(hf.encode(para, true, false), tok512.encode(para, true, false));
}

mode_t folder_mode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0);
  return st.st_mode & 0777;
}

mode_t usual_folder_mode() {
  const mode_t mask = ::umask(0);
  ::umask(mask);
  return 0777 & ~mask;
}

}  // namespace

TEST(MergeTokenizer, Llama2cBaseGetsATokenizerJsonWithItsIds) {
  test::TempDir dir;
  // A fresh adapter (B = 0) merges to the base's own weights: generate must give the golden text.
  ModelFiles f = load_model_files(stories_bin());
  Transformer m(f.config, f.tensors);
  LoraConfig c;
  c.rank = 2;
  c.alpha = 4;
  c.targets = {"q_proj"};
  LoraAdapters ad(m, c);
  save_peft_adapter(dir.file("adapter"), ad, stories_bin());
  const std::string out = dir.file("merged");
  const test::Outcome o = test::run_hone("merge --base " + stories_bin() + " --adapter " +
                                         dir.file("adapter") + " --out " + out);
  ASSERT_EQ(o.status, 0) << o.out;
  expect_tok512_ids(out);
  EXPECT_EQ(folder_mode(out), usual_folder_mode());
  const test::Outcome g = test::run_hone("generate --model " + out +
                                         " --prompt 'Once upon a time' --max-new-tokens 40 "
                                         "--temperature 0");
  EXPECT_EQ(g.status, 0) << g.out;
  EXPECT_EQ(g.out, kGolden);
}

TEST(MergeTokenizer, GgufBaseGetsItsEmbeddedVocabulary) {
  HONE_REQUIRE_SHARED(gguf, "models/stories260K/stories260K.gguf");
  test::TempDir dir;
  const std::string out = dir.file("hf");
  const test::Outcome o = test::run_hone("export --format hf --model " + gguf + " --out " + out);
  ASSERT_EQ(o.status, 0) << o.out;
  expect_tok512_ids(out);
  EXPECT_EQ(folder_mode(out), usual_folder_mode());
  const test::Outcome g = test::run_hone("generate --model " + out +
                                         " --prompt 'Once upon a time' --max-new-tokens 40 "
                                         "--temperature 0");
  EXPECT_EQ(g.status, 0) << g.out;
  EXPECT_EQ(g.out, kGolden);
}
