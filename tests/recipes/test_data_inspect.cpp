// `hone data inspect` and the instruction-data wiring of recipes (load_data).
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>
#include <string>

#include "autograd/error.h"
#include "common.h"
#include "recipes/data_inspect.h"
#include "recipes/recipe.h"
#include "recipes/run_setup.h"
#include "tmpdir.h"

namespace fs = std::filesystem;

namespace hone {
namespace {

const std::string kModel =
    std::string(HONE_SOURCE_DIR) + "/data/samples/stories260K/stories260K.bin";
const std::string kTok = std::string(HONE_SOURCE_DIR) + "/data/samples/stories260K/tok512.bin";

std::string write_recipe(const test::TempDir& tmp, const std::string& data_section) {
  const std::string r = tmp.file("r.yaml");
  test::write_bytes(r, "model: {path: " + kModel + ", tokenizer: " + kTok + "}\n" + "data:\n" +
                           data_section + "output: {dir: out}\n");
  return r;
}

TEST(DataInspect, CountsHistogramAndMarkedExample) {
  test::TempDir tmp;
  test::write_bytes(tmp.file("d.jsonl"),
                    "{\"q\": \"Say one.\", \"a\": \"one\"}\n"
                    "not json\n"
                    "{\"q\": \"Say two.\", \"a\": \"two two\"}\n"
                    "{\"q\": \"Say three.\", \"a\": \"three three three\"}\n");
  const std::string r = write_recipe(tmp,
                                     "  train: d.jsonl\n  format: completion\n"
                                     "  fields: {prompt: q, completion: a}\n"
                                     "  on_bad_line: skip\n  seq_len: 64\n");
  std::ostringstream out;
  run_data_inspect(r, {}, out);
  const std::string s = out.str();
  EXPECT_NE(s.find("records: 3, bad lines skipped: 1"), std::string::npos) << s;
  EXPECT_NE(s.find("truncated to seq_len+1 = 65: 0"), std::string::npos) << s;
  EXPECT_NE(s.find("train: 3 examples, "), std::string::npos) << s;
  EXPECT_NE(s.find("bad line: " + tmp.file("d.jsonl") + ":2: invalid JSON"), std::string::npos)
      << s;
  EXPECT_NE(s.find("length histogram"), std::string::npos) << s;
  EXPECT_NE(s.find("|#"), std::string::npos) << s;
  // The first example: the prompt (with BOS) bracketed, the completion and EOS not.
  EXPECT_NE(s.find("[<s>Say one.] one</s>\n"), std::string::npos) << s;
  EXPECT_EQ(s.find("\033["), std::string::npos) << "no ANSI outside a terminal";

  // Token counts agree with the dataset: 3 examples, target = completion + EOS.
  auto tok = load_tokenizer(kTok);
  InstructOptions o;
  o.format = "completion";
  size_t tokens = 0, targets = 0;
  for (auto [p, c] : {std::pair{"Say one.", "one"},
                      {"Say two.", "two two"},
                      {"Say three.", "three three three"}}) {
    TokenizedExample ex = tokenize_completion(p, c, *tok, o);
    tokens += ex.tokens.size();
    targets += static_cast<size_t>(ex.n_targets());
  }
  EXPECT_NE(
      s.find(std::to_string(tokens) + " tokens, " + std::to_string(targets) + " target tokens"),
      std::string::npos)
      << s;

  // train_on all: nothing bracketed but nothing before the first token either.
  std::ostringstream all;
  run_data_inspect(r, {"data.train_on=all"}, all);
  EXPECT_NE(all.str().find("[<s>]Say one. one</s>\n"), std::string::npos) << all.str();
  // on_bad_line error stops at the line.
  try {
    std::ostringstream x;
    run_data_inspect(r, {"data.on_bad_line=error"}, x);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(tmp.file("d.jsonl") + ":2: invalid JSON", 0), 0u)
        << e.what();
  }
}

TEST(DataInspect, RenderMaskedExampleAnsi) {
  auto tok = load_tokenizer(kTok);
  InstructOptions o;
  TokenizedExample ex = tokenize_completion("Hi", "Yo", *tok, o);
  const std::string plain = render_masked_example(ex, *tok, false);
  EXPECT_EQ(plain.front(), '[');
  const std::string ansi = render_masked_example(ex, *tok, true);
  EXPECT_EQ(ansi.rfind("\033[2m", 0), 0u);
  EXPECT_NE(ansi.find("\033[0m"), std::string::npos);
}

TEST(DataLoad, InstructFormatsThroughLoadData) {
  test::TempDir tmp;
  std::string text;
  for (int i = 0; i < 20; ++i)
    text += "{\"instruction\": \"Count to " + std::to_string(i) + ".\", \"output\": \"done\"}\n";
  test::write_bytes(tmp.file("a.jsonl"), text);
  const std::string r = write_recipe(
      tmp, "  train: a.jsonl\n  format: alpaca\n  val_fraction: 0.1\n  seq_len: 256\n");
  for (bool packing : {true, false}) {
    hone::Run run;
    run.cfg = load_recipe(r, {std::string("data.packing=") + (packing ? "true" : "false")});
    load_base(run);
    load_data(run);
    SCOPED_TRACE(packing);
    EXPECT_FALSE(run.data.train.empty());
    EXPECT_FALSE(run.data.val.empty());
    if (packing) {
      EXPECT_LT(run.data.train.size(), 18u);
      EXPECT_EQ(run.data.train[0].segment_start.size(), 256u);
    } else {
      EXPECT_EQ(run.data.train.size(), 18u);
      EXPECT_EQ(run.data.val.size(), 2u);
      EXPECT_TRUE(run.data.train[0].segment_start.empty());
    }
    EXPECT_NE(run.data_id.find("format alpaca"), std::string::npos) << run.data_id;
  }
}

TEST(DataInspect, GsmRecipeOnTheSharedCorpus) {
  HONE_REQUIRE_SHARED(data, "corpora/gsm8k/train_alpaca.jsonl");
  std::ostringstream out;
  run_data_inspect(std::string(HONE_SOURCE_DIR) + "/recipes/configs/gsm8k-stories260k.yaml", {},
                   out);
  const std::string s = out.str();
  EXPECT_NE(s.find("bad lines skipped: 0"), std::string::npos) << s;
  EXPECT_NE(s.find("### Response:\n]"), std::string::npos) << s;
  std::cout << s;
}

}  // namespace
}  // namespace hone
