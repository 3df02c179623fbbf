// DoRA adapters (lora.dora): the magnitude vectors in the arena and their initialisation, the
// adapted model starting as the base, PEFT files in and out (use_dora, lora_magnitude_vector),
// merging into the base weights, and the refusals (GGUF LoRA, combine, unmerge).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "lora/combine.h"
#include "lora/gguf_lora.h"
#include "lora/merge.h"
#include "lora/peft.h"
#include "model/io/safetensors.h"
#include "model/random_weights.h"
#include "tiny_model.h"
#include "tmpdir.h"

using namespace hone;

namespace {

ModelConfig small() {
  return test::tiny_model(
      {.hidden = 32, .intermediate = 64, .layers = 2, .heads = 4, .kv_heads = 2, .vocab = 40});
}

LoraConfig dora_config() {
  LoraConfig c;
  c.rank = 3;
  c.alpha = 6;
  c.targets = {"all-linear"};
  c.dora = true;
  c.seed = 5;
  return c;
}

// Random values for every adapter parameter (m near the initial norms, so rows keep their sign).
void randomize(LoraAdapters& ad) {
  Rng r(17);
  for (const LoraTensor& t : ad.tensors()) {
    for (const Var* v : {&t.a, &t.b}) {
      float* p = const_cast<Var*>(v)->value().data<float>();
      for (int64_t i = 0; i < v->value().numel(); ++i) p[i] = static_cast<float>(r.normal() * 0.2);
    }
    float* m = const_cast<Var&>(t.m).value().data<float>();
    for (int64_t i = 0; i < t.m.value().numel(); ++i)
      m[i] = static_cast<float>(m[i] * (1 + 0.3 * r.normal()));
  }
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::abs(a.item(i) - b.item(i)));
  return m;
}

double max_abs(const Tensor& a) {
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::abs(a.item(i)));
  return m;
}

TEST(Dora, ArenaHoldsAMagnitudePerRowStartingAtTheRowNormsOfW) {
  const ModelConfig cfg = small();
  const auto weights = random_weights(cfg, 1);
  for (DType d : {DType::F32, DType::BF16, DType::Q8_0, DType::Q4_0}) {
    SCOPED_TRACE(dtype_name(d));
    Transformer model(cfg, weights, d);
    LoraAdapters ad(model, dora_config());
    int64_t expected = 0;
    for (const LoraTensor& t : ad.tensors()) {
      const int64_t out = t.b.shape()[0], in = t.a.shape()[1];
      expected += 3 * (in + out) + out;
      ASSERT_TRUE(t.m.defined()) << t.module;
      ASSERT_EQ(t.m.shape(), (Shape{out}));
      // A, B, then m, contiguous in the arena.
      EXPECT_EQ(t.m.value().data<float>(), t.b.value().data<float>() + out * 3);
      // m = ‖W_o‖ of the base as the model stores it (B is zero).
      const Tensor w = weights.at(t.module + ".weight").to(d).to(DType::F64);
      for (int64_t o = 0; o < out; ++o) {
        double sq = 0;
        for (int64_t i = 0; i < in; ++i) sq += std::pow(w.data<double>()[o * in + i], 2);
        EXPECT_NEAR(t.m.value().item(o), std::sqrt(sq), 1e-6 * std::sqrt(sq)) << t.module;
      }
    }
    EXPECT_EQ(ad.num_parameters(), expected);
  }
  // Plain LoRA has no magnitude and the arena it always had.
  Transformer model(cfg, weights);
  LoraConfig plain = dora_config();
  plain.dora = false;
  LoraAdapters ad(model, plain);
  for (const LoraTensor& t : ad.tensors()) EXPECT_FALSE(t.m.defined());
}

TEST(Dora, StartsAsTheBaseAndTrainsTheMagnitude) {
  const ModelConfig cfg = small();
  const auto weights = random_weights(cfg, 1);
  Transformer base(cfg, weights);
  Transformer model(cfg, weights);
  LoraAdapters ad(model, dora_config());
  const std::vector<int32_t> ids = {1, 5, 9, 2, 7, 3, 30, 11}, tg = {5, 9, 2, 7, 3, 30, 11, 4};
  const Tensor want = base.forward(nullptr, ids, 2, 4).value();
  const Tensor got = model.forward(nullptr, ids, 2, 4).value();
  EXPECT_LE(max_abs_diff(got, want), 1e-6 * max_abs(want));
  Tape tape;
  tape.backward(model.loss(&tape, ids, tg, 2, 4));
  for (const LoraTensor& t : ad.tensors()) EXPECT_GT(max_abs(t.m.grad()), 0.0) << t.module;
}

TEST(Dora, PeftFilesRoundTrip) {
  test::TempDir dir;
  const ModelConfig cfg = small();
  const auto weights = random_weights(cfg, 1);
  Transformer a(cfg, weights), b(cfg, weights);
  LoraAdapters ad(a, dora_config());
  randomize(ad);
  save_peft_adapter(dir.file("adapter"), ad, "base");

  const nlohmann::json j =
      nlohmann::json::parse(std::ifstream(dir.file("adapter/adapter_config.json")));
  EXPECT_EQ(j["use_dora"], true);
  SafetensorsFile f = read_safetensors(dir.file("adapter/adapter_model.safetensors"));
  // PEFT's key: no ".weight" after lora_magnitude_vector.
  const std::string key = "base_model.model.model.layers.1.mlp.down_proj.lora_magnitude_vector";
  ASSERT_TRUE(f.tensors.count(key));
  EXPECT_EQ(f.tensors.at(key).shape(), (Shape{32}));
  EXPECT_EQ(f.tensors.size(), 3 * ad.tensors().size());
  f = SafetensorsFile();

  auto loaded = load_peft_adapter(dir.file("adapter"), b);
  EXPECT_TRUE(loaded->config().dora);
  ad.set_training(false);
  const std::vector<int32_t> ids = {1, 2, 3, 4, 5, 6};
  const Tensor la = a.forward(nullptr, ids, 1, 6).value(),
               lb = b.forward(nullptr, ids, 1, 6).value();
  EXPECT_EQ(std::memcmp(la.raw(), lb.raw(), la.nbytes()), 0);
  // And the adapter really changes the model.
  Transformer plain(cfg, weights);
  EXPECT_GT(max_abs_diff(plain.forward(nullptr, ids, 1, 6).value(), la), 1e-3);

  // A magnitude in a file whose config does not say use_dora matches nothing.
  nlohmann::json c = j;
  c["use_dora"] = false;
  std::ofstream(dir.file("adapter/adapter_config.json")) << c.dump();
  Transformer fresh(cfg, weights);
  const std::string e = error_of([&] { load_peft_adapter(dir.file("adapter"), fresh); });
  EXPECT_NE(e.find("lora_magnitude_vector"), std::string::npos) << e;
}

// The merged weights W' = m / ‖W + s·B·A‖ ⊙ (W + s·B·A) give the adapted model's logits.
TEST(Dora, MergedModelEqualsTheAdaptedModel) {
  test::TempDir dir;
  const ModelConfig cfg = small();
  const auto weights = random_weights(cfg, 1);
  Transformer a(cfg, weights);
  LoraAdapters ad(a, dora_config());
  randomize(ad);
  ad.set_training(false);
  save_peft_adapter(dir.file("adapter"), ad, "base");
  const std::vector<MergeAdapter> adapters = {read_merge_adapter(dir.file("adapter"), 1.0, cfg)};
  std::map<std::string, Tensor> merged;
  int64_t touched = 0;
  for (const auto& [name, w] : weights) {
    const std::vector<MergeTerm> terms = merge_terms_for(name, adapters);
    touched += !terms.empty();
    merged[name] = merge_weight(w, terms, DType::F32);
  }
  EXPECT_EQ(touched, 14);
  Transformer m(cfg, merged);
  const std::vector<int32_t> ids = {3, 1, 4, 1, 5, 9, 2, 6};
  const Tensor want = a.forward(nullptr, ids, 1, 8).value();
  const Tensor got = m.forward(nullptr, ids, 1, 8).value();
  EXPECT_LE(max_abs_diff(got, want), 1e-5 * max_abs(want));

  // merge_weight on one matrix against the definition, in f64.
  const LoraTensor& t = ad.tensors()[0];
  const Tensor w = weights.at(t.module + ".weight");
  const double s = ad.config().scaling();
  const Tensor mw = merge_weight(w, merge_terms_for(t.module + ".weight", adapters), DType::F32);
  const int64_t out = w.dim(0), in = w.dim(1);
  for (int64_t o = 0; o < out; ++o) {
    std::vector<double> v(static_cast<size_t>(in));
    double sq = 0;
    for (int64_t i = 0; i < in; ++i) {
      double e = w.item(o * in + i);
      for (int64_t k = 0; k < 3; ++k)
        e += s * t.b.value().item(o * 3 + k) * t.a.value().item(k * in + i);
      v[size_t(i)] = e;
      sq += e * e;
    }
    for (int64_t i = 0; i < in; ++i)
      EXPECT_NEAR(mw.item(o * in + i), t.m.value().item(o) / std::sqrt(sq) * v[size_t(i)], 1e-6);
  }

  // Unmerge cannot recover W from the direction alone: refused.
  std::string e = error_of([&] { merge_terms_for(t.module + ".weight", adapters, -1.0); });
  EXPECT_NE(e.find("cannot unmerge a DoRA adapter"), std::string::npos) << e;
}

TEST(Dora, GgufLoraAndCombiningAreRefused) {
  test::TempDir dir;
  const ModelConfig cfg = small();
  Transformer a(cfg, random_weights(cfg, 1));
  LoraAdapters ad(a, dora_config());
  std::string e = error_of([&] { write_gguf_lora(dir.file("x.gguf"), ad, cfg); });
  EXPECT_NE(e.find("cannot express DoRA"), std::string::npos) << e;
  EXPECT_NE(e.find("--format gguf"), std::string::npos) << e;
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.gguf")));

  save_peft_adapter(dir.file("d"), ad, "base");
  LoraConfig plain = dora_config();
  plain.dora = false;
  Transformer b(cfg, random_weights(cfg, 1));
  LoraAdapters pl(b, plain);
  save_peft_adapter(dir.file("p"), pl, "base");
  const std::vector<MergeAdapter> both = {read_merge_adapter(dir.file("p"), 1.0, cfg),
                                          read_merge_adapter(dir.file("d"), 1.0, cfg)};
  CombineOptions ties;
  ties.method = CombineMethod::kTies;
  ties.density = 0.5;
  e = error_of([&] { combined_rank(both, ties); });
  EXPECT_NE(e.find("DoRA"), std::string::npos) << e;
  EXPECT_NE(e.find(dir.file("d")), std::string::npos) << e;
  // Merging one after the other (cat) is fine; a combined adapter file is not.
  EXPECT_EQ(combined_rank(both, CombineOptions{}), 6);
  e = error_of([&] { combine_adapters(both, CombineOptions{}, cfg.num_layers); });
  EXPECT_NE(e.find("cannot be combined"), std::string::npos) << e;
}

}  // namespace
