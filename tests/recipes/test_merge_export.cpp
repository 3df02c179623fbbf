// `hone merge` / `unmerge` / `export` drivers end to end: a merged f32 model gives the logits of
// base + adapter (every fixture, and stories260K with a trained adapter), weighted adapters add
// up, unmerge inverts merge, and bad adapters fail before any output exists.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common.h"
#include "lora/merge.h"
#include "lora/peft.h"
#include "model/io/model_files.h"
#include "model/io/safetensors.h"
#include "recipes/merge_export.h"
#include "recipes/train.h"
#include "tmpdir.h"
#include "train_helpers.h"

using namespace hone;
namespace fs = std::filesystem;

namespace {

const std::vector<int32_t> kIds = {1, 5, 9, 3, 7, 2, 11, 4, 8, 6, 10, 12};

// Logits of `model_path` (+ the PEFT adapter at `adapter`, if any) on kIds.
Tensor logits_of(const std::string& model_path, const std::string& adapter = "") {
  ModelFiles f = load_model_files(model_path);
  Transformer m(f.config, f.tensors);
  std::unique_ptr<LoraAdapters> ad;
  if (!adapter.empty()) ad = load_peft_adapter(adapter, m);
  std::vector<int32_t> ids;
  for (int32_t i : kIds) ids.push_back(i % static_cast<int32_t>(f.config.vocab_size));
  return m.forward(nullptr, ids, 1, static_cast<int64_t>(ids.size())).value().clone();
}

// max |a - b| / max |b|.
double rel_diff(const Tensor& a, const Tensor& b) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < b.numel(); ++i) {
    num = std::max(num, std::abs(a.item(i) - b.item(i)));
    den = std::max(den, std::abs(b.item(i)));
  }
  return num / den;
}

// A PEFT folder holding the fixture's lora_init.safetensors (B random, so the delta is not 0).
std::string fixture_adapter(const std::string& fixture, const std::string& dir) {
  nlohmann::json ref = nlohmann::json::parse(std::ifstream(fixture + "/ref.json"));
  ModelFiles f = load_model_files(fixture);
  Transformer m(f.config, f.tensors);
  LoraConfig c;
  c.rank = ref["lora"]["r"].get<int64_t>();
  c.alpha = ref["lora"]["lora_alpha"].get<double>();
  c.rslora = ref["lora"]["use_rslora"].get<bool>();
  c.targets = ref["lora"]["targets"].get<std::vector<std::string>>();
  LoraAdapters ad(m, c);
  load_peft_weights(ad, fixture + "/lora_init.safetensors");
  save_peft_adapter(dir, ad, fixture);
  return dir;
}

bool no_entry_starting_with(const fs::path& dir, const std::string& stem) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind(stem, 0) == 0) return false;
  return true;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

class MergeFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(MergeFixture, MergedLogitsEqualBasePlusAdapter) {
  HONE_REQUIRE_SHARED(fixture, "fixtures/models/" + GetParam());
  test::TempDir dir;
  const std::string adapter = fixture_adapter(fixture, dir.file("adapter"));
  MergeOptions o;
  o.base = fixture;
  o.adapters = {adapter};
  o.out = dir.file("merged");
  o.dtype = "f32";
  MergeSummary s = run_merge(o);
  EXPECT_GT(s.merged_tensors, 0);
  Tensor want = logits_of(fixture, adapter);
  Tensor got = logits_of(dir.file("merged"));
  const double rel = rel_diff(got, want);
  EXPECT_LE(rel, 1e-5) << GetParam();
  // The adapter changes the logits by much more than that, so the check has teeth.
  EXPECT_GT(rel_diff(logits_of(fixture), want), 1e-3) << GetParam();
  std::cout << "[merge] " << GetParam() << ": max|merged - (base+adapter)| / max|logit| = " << rel
            << "\n";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, MergeFixture,
                         ::testing::Values("tiny-llama", "tiny-llama3", "tiny-qwen2", "tiny-qwen3",
                                           "stories260K"));

TEST(MergeExport, TrainedStoriesAdapterMergesIntoTheLlama2cBase) {
  test::TempDir dir;
  TrainOptions t;
  t.recipe = test::write_small_recipe(dir.file("r.yaml"), dir.file("run"), 3);
  t.quiet = true;
  TrainSummary ts = run_train(t);
  ASSERT_FALSE(ts.adapter_dir.empty());
  const std::string base = test::repo_file("data/samples/stories260K/stories260K.bin");
  MergeOptions o;
  o.base = base;
  o.adapters = {ts.adapter_dir};
  o.out = dir.file("merged");
  MergeSummary s = run_merge(o);
  EXPECT_EQ(s.merged_tensors, 5 * 7);  // all-linear over 5 layers
  // Tied embeddings stay tied; the llama2.c tokenizer comes along as a tokenizer.json
  // (test_merge_tokenizer.cpp checks its ids).
  SafetensorsFile st = read_safetensors(dir.file("merged/model.safetensors"));
  EXPECT_FALSE(st.tensors.count("lm_head.weight"));
  EXPECT_TRUE(fs::exists(dir.file("merged/tokenizer.json")));
  Tensor want = logits_of(base, ts.adapter_dir);
  const double rel = rel_diff(logits_of(dir.file("merged")), want);
  EXPECT_LE(rel, 1e-5);
  EXPECT_GT(rel_diff(logits_of(base), want), 1e-4);  // training moved the model
  std::cout << "[merge] stories260K + trained adapter: " << rel << "\n";
}

TEST(MergeExport, TwoWeightedAdaptersEqualTheWeightedSum) {
  HONE_REQUIRE_SHARED(base, "fixtures/models/tiny-llama");
  test::TempDir dir;
  const std::string a1 = fixture_adapter(base, dir.file("a1"));
  // A second adapter: the same modules with other numbers (rank 2, q/v only, rsLoRA).
  {
    ModelFiles f = load_model_files(base);
    Transformer m(f.config, f.tensors);
    LoraConfig c;
    c.rank = 2;
    c.alpha = 3;
    c.rslora = true;
    c.targets = {"q_proj", "v_proj"};
    LoraAdapters ad(m, c);
    Rng r(11);
    for (int64_t i = 0; i < ad.values().numel(); ++i)
      ad.values().data<float>()[i] = static_cast<float>(r.normal() * 0.05);
    save_peft_adapter(dir.file("a2"), ad, base);
  }
  MergeOptions o;
  o.base = base;
  o.adapters = {a1 + ":0.7", dir.file("a2") + ":0.3"};
  o.out = dir.file("merged");
  run_merge(o);
  ModelFiles merged = load_model_files(dir.file("merged"));
  ModelFiles b = load_model_files(base);
  ModelConfig cfg = b.config;
  MergeAdapter m1 = read_merge_adapter(a1, 0.7, cfg),
               m2 = read_merge_adapter(dir.file("a2"), 0.3, cfg);
  int checked = 0;
  for (const auto& [name, w] : b.tensors) {
    // Reference in double: W + 0.7·s1·B1A1 + 0.3·s2·B2A2.
    std::vector<MergeTerm> terms = merge_terms_for(name, {m1, m2});
    const Tensor& got = merged.tensors.at(name);
    if (terms.empty()) {
      EXPECT_EQ(std::memcmp(got.raw(), w.raw(), w.nbytes()), 0) << name;
      continue;
    }
    const int64_t rows = w.dim(0), cols = w.dim(1);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        double ref = w.item(i * cols + j);
        for (const MergeTerm& t : terms)
          for (int64_t k = 0; k < t.a.dim(0); ++k)
            ref += t.coef * t.b.item(i * t.a.dim(0) + k) * t.a.item(k * cols + j);
        ASSERT_NEAR(got.item(i * cols + j), ref, 1e-5 * (1 + std::abs(ref))) << name;
      }
    ++checked;
  }
  EXPECT_EQ(checked, 2 * 7);  // q and v carry both adapters; the rest carry a1
  EXPECT_EQ(parse_adapter_arg("dir:0.25").weight, 0.25);
  EXPECT_EQ(parse_adapter_arg("dir:0.25").dir, "dir");
  EXPECT_EQ(parse_adapter_arg("c:/x:y").dir, "c:/x:y");  // not a number: part of the folder
  EXPECT_EQ(parse_adapter_arg("c:/x:y").weight, 1.0);
}

TEST(MergeExport, UnmergeInvertsMergeWithinRounding) {
  HONE_REQUIRE_SHARED(base, "fixtures/models/tiny-qwen2");
  test::TempDir dir;
  const std::string adapter = fixture_adapter(base, dir.file("adapter"));
  ModelFiles b = load_model_files(base);
  for (const char* dtype : {"f32", "bf16"}) {
    const std::string merged = dir.file(std::string("merged-") + dtype);
    const std::string back = dir.file(std::string("back-") + dtype);
    MergeOptions o;
    o.base = base;
    o.adapters = {adapter};
    o.out = merged;
    o.dtype = dtype;
    run_merge(o);
    o.base = merged;
    o.out = back;
    run_unmerge(o);
    ModelFiles m = load_model_files(merged), u = load_model_files(back);
    // Each rounding (merge, then unmerge) is off by at most half a spacing, and the spacing is at
    // most 2^-23 (f32) or 2^-7 (bf16) of the magnitude: so |W'' - W| <= 2·ulp·max(|W'|, |W|) with
    // ulp = 2^-24 (f32) or 2^-8 (bf16); the bf16 reference is W rounded to bf16.
    const double ulp = std::string(dtype) == "f32" ? std::ldexp(1.0, -24) : std::ldexp(1.0, -8);
    double worst = 0;
    for (const auto& [name, w] : b.tensors) {
      const Tensor& got = u.tensors.at(name);
      const Tensor& mid = m.tensors.at(name);
      ASSERT_EQ(got.dtype(), std::string(dtype) == "f32" ? DType::F32 : DType::BF16);
      for (int64_t i = 0; i < w.numel(); ++i) {
        const double base_v = std::string(dtype) == "f32"
                                  ? w.item(i)
                                  : bf16_to_f32(f32_to_bf16(static_cast<float>(w.item(i))));
        const double mag = std::max(std::abs(mid.item(i)), std::abs(base_v));
        const double err = std::abs(got.item(i) - base_v);
        worst = std::max(worst, err / (mag * ulp + 1e-30));
        ASSERT_LE(err, 2 * mag * ulp * (1 + 1e-3) + 1e-30) << name << " [" << i << "] " << dtype;
      }
    }
    std::cout << "[unmerge] " << dtype << ": worst error " << worst << " ulps of max(|W'|, |W|)\n";
  }
}

TEST(MergeExport, ExportRoundTripsBitwiseSingleAndSharded) {
  HONE_REQUIRE_SHARED(base, "fixtures/models/tiny-qwen3");
  test::TempDir dir;
  ModelFiles b = load_model_files(base);
  for (const char* shard : {"", "100KB"}) {
    ExportOptions o;
    o.model = base;
    o.out = dir.file(std::string("out") + shard);
    o.max_shard_size = shard;
    MergeSummary s = run_export(o);
    EXPECT_EQ(s.merged_tensors, 0);
    ModelFiles e = load_model_files(o.out);
    EXPECT_EQ(e.config.model_type, "qwen3");
    EXPECT_EQ(e.tensors.size(), b.tensors.size());
    for (const auto& [name, t] : b.tensors) {
      ASSERT_EQ(e.tensors.at(name).shape(), t.shape()) << name;
      EXPECT_EQ(std::memcmp(e.tensors.at(name).raw(), t.raw(), t.nbytes()), 0) << name;
    }
    const bool sharded = std::string(shard).size() > 0;
    EXPECT_EQ(fs::exists(o.out + "/model.safetensors.index.json"), sharded);
    if (sharded) {
      nlohmann::json index =
          nlohmann::json::parse(std::ifstream(o.out + "/model.safetensors.index.json"));
      EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), s.data_bytes);
      std::set<std::string> files;
      for (const auto& [k, v] : index["weight_map"].items()) files.insert(v);
      EXPECT_GT(files.size(), 2u);
    }
  }
  ExportOptions g;
  g.model = base;
  g.out = dir.file("gguf");
  g.format = "onnx";
  EXPECT_NE(error_of([&] { run_export(g); }).find("--format"), std::string::npos);
  EXPECT_FALSE(fs::exists(g.out));
  // GGUF needs a tokenizer to embed; this base folder has none: refused, nothing written.
  g.format = "gguf";
  EXPECT_NE(error_of([&] { run_export(g); }).find("no tokenizer"), std::string::npos);
  EXPECT_FALSE(fs::exists(g.out));
}

TEST(MergeExport, ShardedBf16BaseKeepsItsDtypeAndTokenizerFiles) {
  HONE_REQUIRE_SHARED(fixture, "fixtures/models/tiny-llama");
  test::TempDir dir;
  // A sharded bf16 HF base with tokenizer files beside it.
  ExportOptions e;
  e.model = fixture;
  e.out = dir.file("base");
  e.dtype = "bf16";
  e.max_shard_size = "50KB";
  run_export(e);
  test::write_bytes(dir.file("base/tokenizer.json"), "{\"version\": \"1.0\"}");
  test::write_bytes(dir.file("base/special_tokens_map.json"), "{}");
  const std::string adapter = fixture_adapter(fixture, dir.file("adapter"));
  MergeOptions o;
  o.base = dir.file("base");
  o.adapters = {adapter};
  o.out = dir.file("merged");  // no --dtype: the base's bf16
  MergeSummary s = run_merge(o);
  EXPECT_TRUE(std::count(s.files.begin(), s.files.end(), "tokenizer.json"));
  EXPECT_TRUE(std::count(s.files.begin(), s.files.end(), "special_tokens_map.json"));
  EXPECT_EQ(test::read_bytes(dir.file("merged/tokenizer.json")), "{\"version\": \"1.0\"}");
  ModelFiles base = load_model_files(dir.file("base")), merged = load_model_files(o.out);
  EXPECT_EQ(merged.config.torch_dtype, "bfloat16");
  MergeAdapter ad = read_merge_adapter(adapter, 1.0, base.config);
  for (const auto& [name, w] : base.tensors) {
    ASSERT_EQ(w.dtype(), DType::BF16) << name;
    // Rounded once: bf16 W widened to f32, plus s·B·A in f32, then one rounding to bf16.
    Tensor want = merge_weight(w, merge_terms_for(name, {ad}), DType::BF16);
    const Tensor& got = merged.tensors.at(name);
    ASSERT_EQ(got.dtype(), DType::BF16) << name;
    EXPECT_EQ(std::memcmp(got.raw(), want.raw(), want.nbytes()), 0) << name;
  }
}

TEST(MergeExport, AdapterThatDoesNotFitLeavesNoOutput) {
  HONE_REQUIRE_SHARED(llama, "fixtures/models/tiny-llama");
  HONE_REQUIRE_SHARED(stories, "fixtures/models/stories260K");
  test::TempDir dir;
  // tiny-llama's adapter (hidden 64, ff 96) against stories260K (hidden 64, ff 172, 5 layers).
  const std::string adapter = fixture_adapter(llama, dir.file("adapter"));
  MergeOptions o;
  o.base = stories;
  o.adapters = {adapter};
  o.out = dir.file("merged");
  std::string e = error_of([&] { run_merge(o); });
  EXPECT_NE(e.find("adapter_model.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("mlp."), std::string::npos) << e;
  EXPECT_NE(e.find("172"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(o.out));
  EXPECT_TRUE(no_entry_starting_with(dir.path(), "merged"));

  // use_dora without magnitude vectors, and unknown modules: refused, nothing written.
  nlohmann::json cfg = nlohmann::json::parse(std::ifstream(adapter + "/adapter_config.json"));
  cfg["use_dora"] = true;
  std::ofstream(adapter + "/adapter_config.json") << cfg.dump();
  o.base = llama;
  e = error_of([&] { run_merge(o); });
  EXPECT_NE(e.find("use_dora"), std::string::npos) << e;
  cfg["use_dora"] = false;
  cfg["target_modules"] = {"q_proj", "embed_tokens"};
  std::ofstream(adapter + "/adapter_config.json") << cfg.dump();
  e = error_of([&] { run_merge(o); });
  EXPECT_NE(e.find("embed_tokens"), std::string::npos) << e;
  EXPECT_TRUE(no_entry_starting_with(dir.path(), "merged"));

  // Bad options are caught before anything is read or written.
  o.adapters = {};
  EXPECT_NE(error_of([&] { run_merge(o); }).find("--adapter"), std::string::npos);
  ExportOptions x;
  x.model = llama;
  x.out = dir.file("merged");
  x.dtype = "f64";
  EXPECT_NE(error_of([&] { run_export(x); }).find("--dtype"), std::string::npos);
  x.dtype = "";
  x.max_shard_size = "lots";
  EXPECT_NE(error_of([&] { run_export(x); }).find("--max-shard-size"), std::string::npos);
  EXPECT_TRUE(no_entry_starting_with(dir.path(), "merged"));
}

TEST(MergeExport, ExistingOutputNeedsForce) {
  HONE_REQUIRE_SHARED(base, "fixtures/models/tiny-llama");
  test::TempDir dir;
  fs::create_directories(dir.file("out"));
  test::write_bytes(dir.file("out/notes.txt"), "keep");
  ExportOptions o;
  o.model = base;
  o.out = dir.file("out");
  EXPECT_NE(error_of([&] { run_export(o); }).find("--force"), std::string::npos);
  EXPECT_EQ(test::read_bytes(dir.file("out/notes.txt")), "keep");
  o.force = true;
  MergeSummary s = run_export(o);
  EXPECT_EQ(s.files, (std::vector<std::string>{"config.json", "generation_config.json",
                                               "model.safetensors"}));
}

}  // namespace
