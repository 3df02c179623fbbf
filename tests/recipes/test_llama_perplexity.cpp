// `hone eval --protocol llama-perplexity` reproduces llama.cpp's llama-perplexity: on stories260K
// (the GGUF llama.cpp's CI uses, and the same weights as llama2.c's .bin with tok512.bin) and the
// first 20,000 bytes of tinyshakespeare at -c 128, llama.cpp prints "Final estimate: PPL =
// 97.0476" (f32 KV cache); hone prints the same to that precision. Bad input: clear errors.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>

#include "common.h"
#include "hone_process.h"
#include "recipes/llama_perplexity.h"
#include "recipes/recipe.h"
#include "recipes/run_setup.h"
#include "tmpdir.h"
#include "train_helpers.h"

using namespace hone;

namespace {

const std::string kRecipe = std::string(HONE_SOURCE_DIR) + "/recipes/configs/quickstart.yaml";

std::string first_bytes(const std::string& path, size_t n) {
  std::ifstream in(path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), {});
  return s.substr(0, n);
}

TEST(LlamaPerplexity, ReproducesLlamaCppOnStories260K) {
  HONE_REQUIRE_SHARED(corpus, "corpora/tinyshakespeare/input.txt");
  HONE_REQUIRE_SHARED(gguf, "models/stories260K/stories260K.gguf");
  test::TempDir tmp;
  const std::string text = tmp.file("ts20k.txt");
  test::write_bytes(text, first_bytes(corpus, 20000));
  // The llama2.c .bin with tok512.bin (the recipe's), and the GGUF with its embedded vocabulary.
  for (const std::string& model : {std::string(), "model.path=" + gguf + " model.tokenizer="}) {
    auto r = test::run_hone("eval " + kRecipe + " " + model +
                            " --protocol llama-perplexity --ctx 128 --text " + text);
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_NE(r.out.find("PPL = 97.0476 +/- "), std::string::npos) << model << "\n" << r.out;
    // 20,000 bytes give 12,3xx ids: 96 chunks of 128, 63 scored in each.
    EXPECT_NE(r.out.find("(96 chunks of 128 tokens, 6048 scored, base model)"), std::string::npos)
        << r.out;
  }
}

// The protocol's parts, each of which moves the figure: the BOS in front of every chunk, the
// second half alone scored, whole chunks only (--chunks caps them).
TEST(LlamaPerplexity, ChunksAreScoredOnTheirSecondHalfAfterBos) {
  test::TempDir tmp;
  const std::string text = tmp.file("t.txt");
  test::write_bytes(text,
                    first_bytes(test::repo_file("data/samples/tinyshakespeare/train.txt"), 8000));
  hone::Run run;
  run.cfg = load_recipe(kRecipe, {});
  load_base(run);
  const std::string s = first_bytes(text, 8000);
  const LlamaPerplexity all = llama_perplexity(*run.model, nullptr, *run.tokenizer, s, 64, 0, 8);
  EXPECT_EQ(all.chunks, all.tokens / 64);
  EXPECT_EQ(all.scored, all.chunks * 31);
  const LlamaPerplexity two = llama_perplexity(*run.model, nullptr, *run.tokenizer, s, 64, 2, 8);
  EXPECT_EQ(two.chunks, 2);
  // Batching chunks together changes nothing (each chunk runs from position 0 on its own).
  const LlamaPerplexity one_by_one =
      llama_perplexity(*run.model, nullptr, *run.tokenizer, s, 64, 0, 1);
  EXPECT_NEAR(one_by_one.perplexity, all.perplexity, 1e-9 * all.perplexity);

  // By hand for the first chunk: BOS, then ids 1..63 of the text; positions 32..62 scored.
  const std::vector<int32_t> ids = run.tokenizer->encode(s, true, false);
  ASSERT_EQ(ids[0], run.tokenizer->bos_id());
  std::vector<int32_t> chunk(ids.begin() + 64, ids.begin() + 128);  // the second chunk
  chunk[0] = run.tokenizer->bos_id();
  const Tensor logits = run.model->forward(nullptr, chunk, 1, 64).value().to(DType::F64);
  double nll = 0;
  for (int64_t j = 32; j < 63; ++j) {
    const double* l = logits.data<double>() + j * 512;
    double mx = l[0], sum = 0;
    for (int v = 1; v < 512; ++v) mx = std::max(mx, l[v]);
    for (int v = 0; v < 512; ++v) sum += std::exp(l[v] - mx);
    nll += mx + std::log(sum) - l[chunk[static_cast<size_t>(j + 1)]];
  }
  const LlamaPerplexity first = llama_perplexity(*run.model, nullptr, *run.tokenizer, s, 64, 1, 8);
  // (first chunk alone) and (first two chunks) give the second chunk's NLL by difference.
  EXPECT_NEAR(two.mean_nll * 62 - first.mean_nll * 31, nll, 1e-6);
}

TEST(LlamaPerplexity, BadInputIsRefusedClearly) {
  test::TempDir tmp;
  const std::string shorter = tmp.file("short.txt");
  test::write_bytes(shorter, "To be, or not to be.\n");
  auto r = test::run_hone("eval " + kRecipe + " --protocol llama-perplexity --ctx 128 --text " +
                          shorter);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("short.txt: the text gives"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("at least 2 * ctx = 256"), std::string::npos) << r.out;
  r = test::run_hone("eval " + kRecipe + " --protocol llama-perplexity --ctx 4096");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("--ctx: 4096 exceeds the model's context of 512"), std::string::npos)
      << r.out;
  r = test::run_hone("eval " + kRecipe + " --protocol llama-perplexity --text " +
                     tmp.file("absent.txt"));
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("absent.txt: cannot read"), std::string::npos) << r.out;
  r = test::run_hone("eval " + kRecipe + " --ctx 128");  // held-out protocol: no chunks
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("go with --protocol llama-perplexity"), std::string::npos) << r.out;
  r = test::run_hone("eval " + kRecipe + " --protocol perplexity");
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("llama-perplexity"), std::string::npos) << r.out;
}

}  // namespace
