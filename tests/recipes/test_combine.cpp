// `hone combine` and `hone merge --method` end to end on stories260K with adapters of different
// ranks and target sets: a cat combination merged equals merging the adapters one after the
// other, the combined folder loads back into hone with the method's delta, merge --method equals
// merging the combined adapter, and bad flags fail with nothing written.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "autograd/rng.h"
#include "hone_process.h"
#include "lora/combine.h"
#include "lora/peft.h"
#include "model/io/model_files.h"
#include "recipes/merge_export.h"
#include "rounding.h"
#include "tmpdir.h"
#include "train_helpers.h"

using namespace hone;
namespace fs = std::filesystem;

namespace {

std::string base_path() {
  return test::repo_file("data/samples/stories260K/stories260K.bin");
}

// A PEFT adapter for stories260K with random A and B (so every delta is non-zero).
std::string make_adapter(const std::string& dir, int64_t rank, double alpha,
                         std::vector<std::string> targets, std::vector<int> layers, uint64_t seed) {
  ModelFiles f = load_model_files(base_path());
  Transformer m(f.config, f.tensors);
  LoraConfig lc;
  lc.rank = rank;
  lc.alpha = alpha;
  lc.targets = std::move(targets);
  lc.layers = std::move(layers);
  LoraAdapters ad(m, lc);
  Rng r(seed);
  for (int64_t i = 0; i < ad.values().numel(); ++i)
    ad.values().data<float>()[i] = static_cast<float>(r.normal() * 0.05);
  save_peft_adapter(dir, ad, "stories260K");
  return dir;
}

MergeSummary merge(const std::string& base, std::vector<std::string> adapters,
                   const std::string& out, const std::string& method = "",
                   const std::string& density = "", uint64_t seed = 0) {
  MergeOptions o;
  o.base = base;
  o.adapters = std::move(adapters);
  o.out = out;
  o.dtype = "f32";
  o.combine.method = method;
  o.combine.density = density;
  o.combine.seed = seed;
  return run_merge(o);
}

MergeSummary combine(std::vector<std::string> adapters, const std::string& out,
                     const std::string& method, const std::string& density = "",
                     uint64_t seed = 0) {
  CombineCmdOptions o;
  o.adapters = std::move(adapters);
  o.out = out;
  o.combine.method = method;
  o.combine.density = density;
  o.combine.seed = seed;
  return run_combine(o);
}

TEST(Combine, CatMergedEqualsMergingTheAdaptersOneAfterTheOther) {
  test::TempDir dir;
  // Rank 2 on q/v/down of every layer; rank 3 on q/o of layers 1 and 3 (another scaling too).
  const std::string a =
      make_adapter(dir.file("a"), 2, 4.0, {"q_proj", "v_proj", "down_proj"}, {}, 1);
  const std::string b = make_adapter(dir.file("b"), 3, 2.0, {"q_proj", "o_proj"}, {1, 3}, 2);
  const std::string wa = a + ":0.8", wb = b + ":-0.5";
  merge(base_path(), {wa}, dir.file("step1"));
  merge(dir.file("step1"), {wb}, dir.file("step2"));
  combine({wa, wb}, dir.file("cat"), "cat");
  const MergeSummary s = merge(base_path(), {dir.file("cat")}, dir.file("via_cat"));
  // 5 layers x (q, v, down) + 2 layers x o: 17 weights changed (v/down on layers 0, 2, 4 and o on
  // 0, 2, 4 get zero factors from the other adapter, or none).
  EXPECT_GT(s.merged_tensors, 0);

  // Bound: both results are within γ_n·S of the exact W + Σ c_i·B_i·A_i, S = |W| + Σ_i |c_i|·
  // Σ_k |b_ik|·|a_kj| (c_i = w_i·s_i): the two f32 merges one after the other add r_a + 2 and
  // r_b + 2 rounded terms (γ_a + γ_b + γ_a·γ_b ≤ γ_{a+b}), the cat merge one rounding of c_i·A_i
  // and then r_a + r_b + 2 terms. So |step2 − via_cat| ≤ γ_{2(r_a + r_b) + 7}·S.
  ModelFiles base = load_model_files(base_path());
  ModelFiles seq = load_model_files(dir.file("step2"));
  ModelFiles cat = load_model_files(dir.file("via_cat"));
  const MergeAdapter ma = read_merge_adapter(a, 0.8), mb = read_merge_adapter(b, -0.5);
  const double gamma = test::gamma_n(2 * (2 + 3) + 7);
  int changed = 0;
  for (const auto& [name, w] : base.tensors) {
    const Tensor& x = seq.tensors.at(name);
    const Tensor& y = cat.tensors.at(name);
    ASSERT_EQ(x.shape(), y.shape()) << name;
    std::vector<double> bound(static_cast<size_t>(w.numel()));
    for (int64_t i = 0; i < w.numel(); ++i) bound[i] = std::abs(w.item(i));
    const std::string module = name.substr(0, name.size() - std::string(".weight").size());
    for (const MergeAdapter* ad : {&ma, &mb}) {
      auto it = ad->modules.find(module);
      if (it == ad->modules.end()) continue;
      ++changed;
      const Tensor &fa = it->second.a, &fb = it->second.b;
      const int64_t r = fa.dim(0), cols = fa.dim(1);
      for (int64_t i = 0; i < fb.dim(0); ++i)
        for (int64_t j = 0; j < cols; ++j)
          for (int64_t k = 0; k < r; ++k)
            bound[i * cols + j] +=
                std::abs(ad->coefficient() * fb.item(i * r + k) * fa.item(k * cols + j));
    }
    test::BoundCheck check;
    for (int64_t i = 0; i < w.numel(); ++i) check.add(y.item(i), x.item(i), gamma * bound[i], i);
    EXPECT_LE(check.worst(), 1.0) << name << ": " << check.where();
  }
  EXPECT_EQ(changed, 15 + 4);  // a: 15 modules; b: 4 (q and o of layers 1, 3)
  // And the merge changed the base by far more than that bound.
  const std::string q1 = "model.layers.1.self_attn.q_proj.weight";
  double moved = 0;
  for (int64_t i = 0; i < base.tensors.at(q1).numel(); ++i)
    moved = std::max(moved, std::abs(cat.tensors.at(q1).item(i) - base.tensors.at(q1).item(i)));
  EXPECT_GT(moved, 1e-3);
}

TEST(Combine, TheCombinedFolderLoadsBackWithTheMethodsDelta) {
  test::TempDir dir;
  // Same rank (the factor methods need it), different targets and layers.
  const std::string a = make_adapter(dir.file("a"), 2, 4.0, {"q_proj", "v_proj"}, {}, 3);
  const std::string b = make_adapter(dir.file("b"), 2, 8.0, {"q_proj", "up_proj"}, {0, 2}, 4);
  const std::vector<std::string> args = {a + ":1.2", b + ":0.6"};
  ModelFiles f = load_model_files(base_path());
  for (const auto& [method, density] :
       std::vector<std::pair<std::string, std::string>>{{"cat", ""},
                                                        {"linear", ""},
                                                        {"ties", "0.5"},
                                                        {"dare_ties", "0.7"},
                                                        {"dare_linear", "0.7"},
                                                        {"magnitude_prune", "0.4"},
                                                        {"svd", ""},
                                                        {"ties_svd", "0.5"}}) {
    const std::string out = dir.file("c_" + method);
    const MergeSummary s = combine(args, out, method, density, 11);
    EXPECT_EQ(s.files,
              (std::vector<std::string>{"adapter_config.json", "adapter_model.safetensors"}));
    // The config: r = alpha (scaling 1), no rsLoRA, the union of targets and of layers (a adapts
    // every layer, so every layer).
    const nlohmann::json j = nlohmann::json::parse(std::ifstream(out + "/adapter_config.json"));
    const int64_t rank = method == "cat" ? 4 : 2;
    EXPECT_EQ(j["r"], rank) << method;
    EXPECT_EQ(j["lora_alpha"], static_cast<double>(rank)) << method;
    EXPECT_EQ(j["use_rslora"], false);
    EXPECT_EQ(j["target_modules"], (nlohmann::json{"q_proj", "v_proj", "up_proj"})) << method;
    EXPECT_TRUE(j["layers_to_transform"].is_null());
    EXPECT_EQ(j["base_model_name_or_path"], "stories260K");

    // hone loads it into the model, each module holding what combine_adapters computes.
    Transformer m(f.config, f.tensors);
    std::unique_ptr<LoraAdapters> loaded = load_peft_adapter(out, m);
    EXPECT_DOUBLE_EQ(loaded->config().scaling(), 1.0);
    CombineOptions o;
    o.method = parse_combine_method(method);
    if (!density.empty()) o.density = parse_density(density);
    o.seed = 11;
    const CombinedAdapter want = combine_adapters(
        {read_merge_adapter(a, 1.2, f.config), read_merge_adapter(b, 0.6, f.config)}, o,
        f.config.num_layers);
    ASSERT_EQ(loaded->tensors().size(), want.modules.size()) << method;
    ASSERT_EQ(loaded->tensors().size(), 5u * 3u) << method;
    for (const LoraTensor& t : loaded->tensors()) {
      const LoraFactors& w = want.modules.at(t.module);
      ASSERT_EQ(t.a.shape(), w.a.shape()) << t.module;
      ASSERT_EQ(t.b.shape(), w.b.shape()) << t.module;
      for (int64_t i = 0; i < w.a.numel(); ++i) ASSERT_EQ(t.a.value().item(i), w.a.item(i));
      for (int64_t i = 0; i < w.b.numel(); ++i) ASSERT_EQ(t.b.value().item(i), w.b.item(i));
    }

    // merge --method gives the same model as merging the combined adapter, bit for bit (the
    // DARE mask depends on the seed, module, tensor and adapter position, not on the order the
    // modules are visited in). cat merges each adapter's own term instead (the test above).
    if (method == "cat") continue;
    merge(base_path(), args, dir.file("m_" + method), method, density, 11);
    merge(base_path(), {out}, dir.file("mc_" + method));
    ModelFiles x = load_model_files(dir.file("m_" + method));
    ModelFiles y = load_model_files(dir.file("mc_" + method));
    for (const auto& [name, t] : x.tensors)
      for (int64_t i = 0; i < t.numel(); ++i)
        ASSERT_EQ(t.item(i), y.tensors.at(name).item(i)) << method << " " << name << " " << i;
  }
  // A different DARE seed gives a different adapter.
  combine(args, dir.file("seed12"), "dare_ties", "0.7", 12);
  Transformer m1(f.config, f.tensors), m2(f.config, f.tensors);
  auto l1 = load_peft_adapter(dir.file("c_dare_ties"), m1);
  auto l2 = load_peft_adapter(dir.file("seed12"), m2);
  bool differ = false;
  for (int64_t i = 0; i < l1->values().numel(); ++i)
    differ = differ || l1->values().item(i) != l2->values().item(i);
  EXPECT_TRUE(differ);
}

TEST(Combine, CatFolderDeltaIsTheWeightedSumOfTheInputs) {
  test::TempDir dir;
  const std::string a = make_adapter(dir.file("a"), 2, 4.0, {"k_proj"}, {0}, 5);
  const std::string b = make_adapter(dir.file("b"), 5, 5.0, {"k_proj"}, {0}, 6);
  combine({a + ":0.3", b + ":2"}, dir.file("c"), "cat");
  ModelFiles f = load_model_files(base_path());
  Transformer m(f.config, f.tensors);
  auto c = load_peft_adapter(dir.file("c"), m);
  ASSERT_EQ(c->tensors().size(), 1u);
  const LoraTensor& t = c->tensors()[0];
  const MergeAdapter ma = read_merge_adapter(a, 0.3), mb = read_merge_adapter(b, 2.0);
  const int64_t rows = t.b.value().dim(0), cols = t.a.value().dim(1);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      double got = 0, want = 0, mag = 0;
      for (int64_t k = 0; k < 7; ++k)
        got += t.b.value().item(i * 7 + k) * t.a.value().item(k * cols + j);
      for (const MergeAdapter* ad : {&ma, &mb}) {
        const LoraFactors& fac = ad->modules.at(t.module);
        const int64_t r = fac.a.dim(0);
        for (int64_t k = 0; k < r; ++k) {
          const double p = ad->coefficient() * fac.b.item(i * r + k) * fac.a.item(k * cols + j);
          want += p;
          mag += std::abs(p);
        }
      }
      EXPECT_NEAR(got, want, 2 * test::kUnitF32 * mag) << i << "," << j;  // c·A rounded to f32
    }
}

TEST(Combine, BadFlagsAndIncompatibleAdaptersExit1WithNothingWritten) {
  test::TempDir dir;
  const std::string a = make_adapter(dir.file("a"), 2, 4.0, {"q_proj"}, {}, 7);
  const std::string b = make_adapter(dir.file("b"), 3, 4.0, {"q_proj"}, {}, 8);
  const std::string out = dir.file("out");
  struct Case {
    std::string args, expect;
  };
  const std::string ab = " --adapter " + a + " --adapter " + b;
  for (const Case& c : std::vector<Case>{
           {"combine" + ab + " --method tie --out " + out, "--method: unknown method \"tie\""},
           {"combine" + ab + " --out " + out, "--method: required"},
           {"combine" + ab + " --method ties --density 1.5 --out " + out, "--density"},
           {"combine" + ab + " --method ties --out " + out, "--density: method ties needs"},
           {"combine" + ab + " --method cat --density 0.5 --out " + out, "prunes nothing"},
           {"combine" + ab + " --method linear --out " + out, "same rank"},
           {"combine" + ab + " --method svd --majority-sign most --out " + out, "--majority-sign"},
           {"combine --adapter " + a + " --adapter " + dir.file("nope") + " --method cat --out " +
                out,
            "adapter_config.json"},
           {"merge --base " + base_path() + ab + " --method dare_ties --out " + out,
            "--density: method dare_ties needs"},
           {"merge --base " + base_path() + ab + " --method ties --density 0.5 --out " + out,
            "same rank"},
       }) {
    const test::Outcome r = test::run_hone(c.args);
    EXPECT_EQ(r.status, 1) << c.args << "\n" << r.out;
    EXPECT_NE(r.out.find(c.expect), std::string::npos) << c.args << "\n" << r.out;
    EXPECT_FALSE(fs::exists(out)) << c.args;
    for (const auto& e : fs::directory_iterator(dir.path()))
      EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << c.args;
  }
  // And the CLI writes a combination that works.
  const test::Outcome ok = test::run_hone(
      "combine" + ab + " --method dare_ties_svd --density 0.5 --seed 3 --out " + out);
  EXPECT_EQ(ok.status, 0) << ok.out;
  EXPECT_TRUE(fs::exists(out + "/adapter_model.safetensors"));
}

}  // namespace
