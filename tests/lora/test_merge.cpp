// LoRA merge arithmetic (f32 accumulation, one rounding), several weighted adapters, unmerge as
// the inverse, and the checks that an adapter fits its base.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "autograd/rng.h"
#include "lora/merge.h"
#include "lora/peft.h"
#include "model/io/safetensors.h"
#include "model/random_weights.h"
#include "rounding.h"
#include "tiny_model.h"
#include "tmpdir.h"

using namespace hone;

namespace {

Tensor random_tensor(Shape shape, uint64_t seed, double scale = 1.0) {
  Rng r(seed);
  Tensor t = Tensor::empty(DType::F32, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data<float>()[i] = static_cast<float>(r.normal() * scale);
  return t;
}

// W + Σ coef·B·A in double.
std::vector<double> reference(const Tensor& w, const std::vector<MergeTerm>& terms) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  std::vector<double> out(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows * cols; ++i) out[i] = w.item(i);
  for (const MergeTerm& t : terms) {
    const int64_t r = t.a.dim(0);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        double s = 0;
        for (int64_t k = 0; k < r; ++k) s += t.b.item(i * r + k) * t.a.item(k * cols + j);
        out[i * cols + j] += t.coef * s;
      }
  }
  return out;
}

// The bound on the f32 merge, in any order the gemm kernel sums in: acc = W, then acc += coef·B·A
// (beta = 1) per term: W plus Σ r_t products per element, so within γ_{Σ(r_t+2)}·(|W| + Σ|coef|·
// Σ_k|b_ik||a_kj|) of the exact W + Σ coef·B·A.
std::vector<double> merge_bound(const Tensor& w, const std::vector<MergeTerm>& terms) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  std::vector<double> s(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows * cols; ++i) s[i] = std::abs(w.item(i));
  double n = 0;
  for (const MergeTerm& t : terms) {
    const int64_t r = t.a.dim(0);
    n += static_cast<double>(r + 2);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j)
        for (int64_t k = 0; k < r; ++k)
          s[i * cols + j] += std::abs(t.coef * t.b.item(i * r + k) * t.a.item(k * cols + j));
  }
  for (double& v : s) v *= test::gamma_n(n);
  return s;
}

TEST(Merge, F32MatchesADoubleReference) {
  // Odd sizes so no kernel path is favoured.
  Tensor w = random_tensor({7, 13}, 1), a = random_tensor({3, 13}, 2), b = random_tensor({7, 3}, 3);
  std::vector<MergeTerm> terms = {{2.5, a, b}};
  Tensor m = merge_weight(w, terms, DType::F32);
  ASSERT_EQ(m.dtype(), DType::F32);
  ASSERT_EQ(m.shape(), w.shape());
  std::vector<double> ref = reference(w, terms), bound = merge_bound(w, terms);
  for (int64_t i = 0; i < m.numel(); ++i) EXPECT_NEAR(m.item(i), ref[i], bound[i]) << i;
  // The input is not modified (merge writes into its own buffer).
  EXPECT_EQ(w.item(0), random_tensor({7, 13}, 1).item(0));
}

TEST(Merge, Bf16AndF16AreRoundedOnceFromTheF32Sum) {
  Tensor w = random_tensor({9, 5}, 4).to(DType::BF16);
  Tensor a = random_tensor({2, 5}, 5, 0.1), b = random_tensor({9, 2}, 6, 0.1);
  std::vector<MergeTerm> terms = {{1.0, a, b}};
  Tensor f32 = merge_weight(w, terms, DType::F32);
  for (DType d : {DType::BF16, DType::F16}) {
    Tensor m = merge_weight(w, terms, d);
    ASSERT_EQ(m.dtype(), d);
    Tensor once = f32.to(d);
    EXPECT_EQ(std::memcmp(m.raw(), once.raw(), m.nbytes()), 0) << dtype_name(d);
  }
  // No terms: a plain conversion (or the same tensor when the dtype matches).
  Tensor same = merge_weight(w, {}, DType::BF16);
  EXPECT_EQ(same.raw(), w.raw());
}

TEST(Merge, WeightedAdaptersAddUp) {
  Tensor w = random_tensor({6, 10}, 7);
  Tensor a1 = random_tensor({4, 10}, 8), b1 = random_tensor({6, 4}, 9);
  Tensor a2 = random_tensor({2, 10}, 10), b2 = random_tensor({6, 2}, 11);
  std::vector<MergeTerm> both = {{0.7 * 2.0, a1, b1}, {0.3 * 4.0, a2, b2}};
  Tensor m = merge_weight(w, both, DType::F32);
  // Equal to merging one after the other, and to the double reference.
  Tensor step = merge_weight(merge_weight(w, {both[0]}, DType::F32), {both[1]}, DType::F32);
  std::vector<double> ref = reference(w, both), bound = merge_bound(w, both);
  for (int64_t i = 0; i < m.numel(); ++i) {
    EXPECT_NEAR(m.item(i), ref[i], bound[i]);
    EXPECT_NEAR(m.item(i), step.item(i), 2 * bound[i]);  // two f32 results, each within bound
  }
}

TEST(Merge, UnmergeIsTheInverseWithinRounding) {
  Tensor w = random_tensor({8, 12}, 12, 0.05);
  Tensor a = random_tensor({4, 12}, 13, 0.1), b = random_tensor({8, 4}, 14, 0.1);
  // f32: merge is within merge_bound(W) of W + 2·B·A, unmerge within merge_bound(M) of
  // M − 2·B·A, so U is within their sum of W.
  Tensor m = merge_weight(w, {{2.0, a, b}}, DType::F32);
  Tensor u = merge_weight(m, {{-2.0, a, b}}, DType::F32);
  const std::vector<double> bw = merge_bound(w, {{2.0, a, b}}), bm = merge_bound(m, {{-2.0, a, b}});
  for (int64_t i = 0; i < w.numel(); ++i) EXPECT_NEAR(u.item(i), w.item(i), bw[i] + bm[i]) << i;
  // bf16: two roundings to bf16 (8 significant bits): within one bf16 ulp of the larger magnitude.
  Tensor wb = w.to(DType::BF16);
  Tensor mb = merge_weight(wb, {{2.0, a, b}}, DType::BF16);
  Tensor ub = merge_weight(mb, {{-2.0, a, b}}, DType::BF16);
  for (int64_t i = 0; i < w.numel(); ++i) {
    const double mag = std::max(std::abs(mb.item(i)), std::abs(wb.item(i)));
    EXPECT_NEAR(ub.item(i), wb.item(i), mag * std::ldexp(1.0, -8) + 1e-12) << i;
  }
}

TEST(Merge, FactorsThatDoNotFitAreRefused) {
  Tensor w = random_tensor({6, 10}, 1);
  EXPECT_THROW(
      merge_weight(w, {{1.0, random_tensor({2, 9}, 2), random_tensor({6, 2}, 3)}}, DType::F32),
      Error);
  EXPECT_THROW(merge_weight(w, {}, DType::F64), Error);
  EXPECT_THROW(parse_output_dtype("fp32"), Error);
  EXPECT_EQ(parse_output_dtype("bf16"), DType::BF16);
}

ModelConfig small_config(int64_t hidden = 16, int64_t layers = 2) {
  ModelConfig c = test::tiny_model({.hidden = hidden,
                                    .intermediate = 24,
                                    .layers = layers,
                                    .heads = 2,
                                    .kv_heads = 1,
                                    .vocab = 20});
  c.max_position_embeddings = 2048;  // ModelConfig's default, which these tests were built with
  return c;
}

// A PEFT folder for a model of `cfg`, with non-zero B.
std::string write_adapter(const std::string& dir, const ModelConfig& cfg, LoraConfig lc) {
  Transformer m(cfg, random_weights(cfg, 1));
  LoraAdapters ad(m, lc);
  Rng r(3);
  for (int64_t i = 0; i < ad.values().numel(); ++i)
    ad.values().data<float>()[i] = static_cast<float>(r.normal() * 0.1);
  save_peft_adapter(dir, ad, "base");
  return dir;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(MergeAdapter, ReadsAPeftFolderThatFits) {
  test::TempDir dir;
  ModelConfig cfg = small_config();
  LoraConfig lc;
  lc.rank = 3;
  lc.alpha = 6;
  lc.targets = {"q_proj", "down_proj"};
  write_adapter(dir.file("a"), cfg, lc);
  MergeAdapter ad = read_merge_adapter(dir.file("a"), 0.5, cfg);
  EXPECT_EQ(ad.modules.size(), 4u);  // 2 layers x 2 kinds
  EXPECT_DOUBLE_EQ(ad.coefficient(), 0.5 * 2.0);
  const LoraFactors& f = ad.modules.at("model.layers.1.mlp.down_proj");
  EXPECT_EQ(f.a.shape(), (Shape{3, 24}));
  EXPECT_EQ(f.b.shape(), (Shape{16, 3}));
  EXPECT_EQ(merge_terms_for("model.layers.1.mlp.down_proj.weight", {ad}).size(), 1u);
  EXPECT_TRUE(merge_terms_for("model.layers.1.mlp.up_proj.weight", {ad}).empty());
  EXPECT_TRUE(merge_terms_for("model.norm.weight", {ad}).empty());
}

TEST(MergeAdapter, ShapesThatDoNotFitTheBaseNameFileModuleAndShapes) {
  test::TempDir dir;
  LoraConfig lc;
  lc.targets = {"q_proj"};
  write_adapter(dir.file("a"), small_config(16), lc);
  std::string e = error_of([&] { read_merge_adapter(dir.file("a"), 1.0, small_config(32)); });
  EXPECT_NE(e.find("adapter_model.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("self_attn.q_proj"), std::string::npos) << e;
  EXPECT_NE(e.find("[8, 16]"), std::string::npos) << e;  // the file's lora_A
  EXPECT_NE(e.find("[8, 32]"), std::string::npos) << e;  // what the base needs
}

TEST(MergeAdapter, UnknownModulesDoraAndMissingFactorsAreRefused) {
  test::TempDir dir;
  LoraConfig lc;
  lc.targets = {"v_proj"};
  write_adapter(dir.file("deep"), small_config(16, 3), lc);
  std::string e = error_of([&] { read_merge_adapter(dir.file("deep"), 1.0, small_config(16, 2)); });
  EXPECT_NE(e.find("model.layers.2.self_attn.v_proj"), std::string::npos) << e;
  EXPECT_NE(e.find("does not exist"), std::string::npos) << e;

  write_adapter(dir.file("dora"), small_config(), lc);
  {
    nlohmann::json j = nlohmann::json::parse(std::ifstream(dir.file("dora/adapter_config.json")));
    j["use_dora"] = true;
    std::ofstream(dir.file("dora/adapter_config.json")) << j.dump();
  }
  // use_dora without magnitude vectors.
  e = error_of([&] { read_merge_adapter(dir.file("dora"), 1.0, small_config()); });
  EXPECT_NE(e.find("use_dora"), std::string::npos) << e;
  EXPECT_NE(e.find("lora_magnitude_vector"), std::string::npos) << e;

  // A tensor naming a module the config does not target.
  write_adapter(dir.file("stray"), small_config(), lc);
  {
    SafetensorsFile f = read_safetensors(dir.file("stray/adapter_model.safetensors"));
    std::map<std::string, Tensor> ts;
    for (auto& [k, v] : f.tensors) ts[k] = v.clone();
    ts["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"] =
        Tensor::zeros(DType::F32, {8, 16});
    ts["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"] =
        Tensor::zeros(DType::F32, {16, 8});
    f = SafetensorsFile();
    write_safetensors(dir.file("stray/adapter_model.safetensors"), ts);
  }
  e = error_of([&] { read_merge_adapter(dir.file("stray"), 1.0, small_config()); });
  EXPECT_NE(e.find("target_modules"), std::string::npos) << e;

  // lora_A without its lora_B.
  write_adapter(dir.file("half"), small_config(), lc);
  {
    SafetensorsFile f = read_safetensors(dir.file("half/adapter_model.safetensors"));
    std::map<std::string, Tensor> ts;
    for (auto& [k, v] : f.tensors)
      if (k.find("layers.1.self_attn.v_proj.lora_B") == std::string::npos) ts[k] = v.clone();
    f = SafetensorsFile();
    write_safetensors(dir.file("half/adapter_model.safetensors"), ts);
  }
  e = error_of([&] { read_merge_adapter(dir.file("half"), 1.0, small_config()); });
  EXPECT_NE(e.find("model.layers.1.self_attn.v_proj"), std::string::npos) << e;
  EXPECT_NE(e.find("lora_B"), std::string::npos) << e;

  e = error_of([&] { read_merge_adapter(dir.file("missing"), 1.0, small_config()); });
  EXPECT_NE(e.find("adapter_config.json"), std::string::npos) << e;
}

}  // namespace
