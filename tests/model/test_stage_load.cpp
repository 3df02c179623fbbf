// Pipeline stages: a LayerRange loads only the stage's tensors from safetensors, GGUF and
// llama2.c files (the others may be missing or damaged), bitwise as the whole model's load has
// them, and the stage's Transformer holds only those (quantized at load like the whole model).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <set>
#include <tuple>

#include "common.h"
#include "model/io/finite_weights.h"
#include "model/io/gguf_model.h"
#include "model/io/model_files.h"
#include "model/io/safetensors.h"
#include "model/random_weights.h"
#include "model/transformer.h"
#include "tmpdir.h"

namespace hone {
namespace {

using test::TempDir;
namespace fs = std::filesystem;

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// The names a stage of `c` holding `r` must get.
std::set<std::string> stage_names(const ModelConfig& c, LayerRange r) {
  std::set<std::string> out;
  for (const auto& [name, shape] : expected_tensor_shapes(c, r)) out.insert(name);
  return out;
}

std::set<std::string> names_of(const std::map<std::string, Tensor>& m) {
  std::set<std::string> out;
  for (const auto& [name, t] : m) out.insert(name);
  return out;
}

TEST(LayerRange, ResolvesAndRejects) {
  EXPECT_EQ(LayerRange{}.resolved(5).last, 5);
  EXPECT_EQ((LayerRange{2, -1}.resolved(5).first), 2);
  EXPECT_TRUE((LayerRange{0, 0}.resolved(5).holds_embedding()));
  EXPECT_TRUE((LayerRange{5, 5}.resolved(5).holds_head(5)));
  for (LayerRange bad : {LayerRange{-1, 2}, LayerRange{3, 2}, LayerRange{0, 6}, LayerRange{6, -1}})
    EXPECT_NE(error_of([&] { bad.resolved(5); }).find("must satisfy 0 <= first <= last <= 5"),
              std::string::npos)
        << bad.str();
}

TEST(LayerRange, EvenPipelineSplit) {
  auto split = [](int64_t layers, int stages) {
    std::string out;
    for (int k = 0; k < stages; ++k) out += pipeline_stage_layers(layers, stages, k).str();
    return out;
  };
  EXPECT_EQ(split(5, 1), "[0, 5)");
  EXPECT_EQ(split(5, 2), "[0, 3)[3, 5)");
  EXPECT_EQ(split(5, 3), "[0, 2)[2, 4)[4, 5)");
  EXPECT_EQ(split(80, 3), "[0, 27)[27, 54)[54, 80)");
  EXPECT_EQ(split(4, 4), "[0, 1)[1, 2)[2, 3)[3, 4)");
  EXPECT_NE(error_of([] {
              pipeline_stage_layers(2, 3, 0);
            }).find("pipeline of 3 stages: must be between 1 and the model's 2 layers"),
            std::string::npos);
  EXPECT_NE(error_of([] { pipeline_stage_layers(4, 2, 2); }).find("stage 2 of 2 does not exist"),
            std::string::npos);
}

TEST(LayerRange, TensorsAStageHolds) {
  ModelConfig c;
  c.num_layers = 12;
  c.tie_word_embeddings = false;
  const LayerRange mid = LayerRange{3, 11}.resolved(12);
  EXPECT_TRUE(range_holds_tensor(mid, c, "model.layers.3.mlp.up_proj.weight"));
  EXPECT_TRUE(range_holds_tensor(mid, c, "model.layers.10.self_attn.q_proj.bias"));
  EXPECT_FALSE(range_holds_tensor(mid, c, "model.layers.1.mlp.up_proj.weight"));
  EXPECT_FALSE(range_holds_tensor(mid, c, "model.layers.11.mlp.up_proj.weight"));
  EXPECT_FALSE(range_holds_tensor(mid, c, "model.layers.110.mlp.up_proj.weight"));
  EXPECT_FALSE(range_holds_tensor(mid, c, "model.embed_tokens.weight"));
  EXPECT_FALSE(range_holds_tensor(mid, c, "model.norm.weight"));
  const LayerRange last = LayerRange{11, 12}.resolved(12);
  EXPECT_TRUE(range_holds_tensor(last, c, "lm_head.weight"));
  EXPECT_TRUE(range_holds_tensor(last, c, "model.norm.weight"));
  EXPECT_FALSE(range_holds_tensor(last, c, "model.embed_tokens.weight"));
  c.tie_word_embeddings = true;  // the last stage's head is the embedding matrix
  EXPECT_TRUE(range_holds_tensor(last, c, "model.embed_tokens.weight"));
  EXPECT_FALSE(range_holds_tensor(mid, c, "model.embed_tokens.weight"));
}

// Every stage of every fixture: exactly the stage's tensors, bitwise those of the whole load.
TEST(StageLoad, FixtureStagesHoldTheirTensorsBitwise) {
  for (const char* name : {"tiny-llama", "tiny-qwen2", "tiny-qwen3", "stories260K"}) {
    SCOPED_TRACE(name);
    HONE_REQUIRE_SHARED(dir, std::string("fixtures/models/") + name);
    ModelFiles full = load_model_files(dir);
    const int n = static_cast<int>(full.config.num_layers);
    for (LayerRange r : {LayerRange{0, 1}, LayerRange{1, -1}, LayerRange{0, 0}, LayerRange{n, n},
                         LayerRange{1, n - 1}}) {
      SCOPED_TRACE(r.str());
      ModelFiles stage = load_model_files(dir, r);
      const LayerRange rr = r.resolved(n);
      EXPECT_EQ(names_of(stage.tensors), stage_names(full.config, rr));
      for (const auto& [tn, t] : stage.tensors) EXPECT_TRUE(same_bytes(t, full.tensors.at(tn)));
      if (full.config.tie_word_embeddings) {
        EXPECT_EQ(stage.tensors.count("model.embed_tokens.weight"),
                  rr.first == 0 || rr.last == n ? 1u : 0u);
      }
    }
  }
}

// A GGUF model (llama arch: q/k permuted at load; Q8_0: dequantized at load) and the llama2.c
// checkpoint: a stage gets the whole load's tensors for its layers and no others.
TEST(StageLoad, GgufAndLlama2cStages) {
  HONE_REQUIRE_SHARED(dir, "fixtures/models/tiny-llama");
  HONE_REQUIRE_SHARED(bin, "models/stories260K/stories260K.bin");
  TempDir tmp;
  ModelFiles hf = load_model_files(dir);
  const std::string gguf = tmp.file("m.gguf");
  write_gguf_model(gguf, hf.config, hf.tensors, GgmlType::Q8_0, nullptr);
  for (const std::string& path : {gguf, bin}) {
    SCOPED_TRACE(path);
    ModelFiles full = load_model_files(path);
    const int n = static_cast<int>(full.config.num_layers);
    for (LayerRange r : {LayerRange{0, 1}, LayerRange{1, n}, LayerRange{n - 1, n}}) {
      ModelFiles stage = load_model_files(path, r);
      EXPECT_EQ(names_of(stage.tensors), stage_names(full.config, r.resolved(n))) << r.str();
      for (const auto& [tn, t] : stage.tensors)
        EXPECT_TRUE(same_bytes(t, full.tensors.at(tn))) << tn;
    }
  }
}

// Writes the tiny-llama fixture into `dir` with `edit` applied to its tensor map.
void write_edited(const std::string& src, const TempDir& dir,
                  const std::function<void(std::map<std::string, Tensor>&)>& edit) {
  fs::copy_file(src + "/config.json", dir.file("config.json"));
  SafetensorsFile f = read_safetensors(src + "/model.safetensors");
  std::map<std::string, Tensor> ts;
  for (const auto& [n, t] : f.tensors) ts[n] = t.clone();
  edit(ts);
  write_safetensors(dir.file("model.safetensors"), ts);
}

// A layer-1 tensor is absent: the stage holding layer 0 loads and builds, the whole model and
// the stage holding layer 1 fail naming it.
TEST(StageLoad, AnotherLayersMissingTensorIsNotNeeded) {
  HONE_REQUIRE_SHARED(src, "fixtures/models/tiny-llama");
  TempDir dir;
  const std::string gone = "model.layers.1.self_attn.k_proj.weight";
  write_edited(src, dir, [&](auto& ts) { ts.erase(gone); });
  const std::string path = dir.path().string();
  ModelFiles stage = load_model_files(path, {0, 1});
  EXPECT_NO_THROW(check_finite_weights(stage.tensors, stage.source));
  Transformer m(stage.config, stage.tensors, DType::F32, {0, 1});
  EXPECT_EQ(m.blocks().size(), 1u);
  for (LayerRange r : {LayerRange{}, LayerRange{1, 2}})
    EXPECT_NE(
        error_of([&] { load_model_files(path, r); }).find(path + ": tensor " + gone + ": missing"),
        std::string::npos)
        << r.str();
}

// A sharded checkpoint whose second shard (layer 1 and the head) is gone: the stage holding
// layer 0 never opens it; the whole model names the missing shard.
TEST(StageLoad, AShardOfOtherLayersIsNotOpened) {
  HONE_REQUIRE_SHARED(src, "fixtures/models/tiny-llama");
  TempDir dir;
  fs::copy_file(src + "/config.json", dir.file("config.json"));
  SafetensorsFile f = read_safetensors(src + "/model.safetensors");
  std::map<std::string, Tensor> one, two;
  std::string map;
  for (const auto& [n, t] : f.tensors) {
    const bool first = n.rfind("model.layers.0.", 0) == 0 || n == "model.embed_tokens.weight";
    (first ? one : two)[n] = t;
    map += std::string(map.empty() ? "" : ", ") + "\"" + n + "\": \"" +
           (first ? "a.safetensors" : "b.safetensors") + "\"";
  }
  write_safetensors(dir.file("a.safetensors"), one);
  test::write_bytes(dir.file("model.safetensors.index.json"), "{\"weight_map\": {" + map + "}}");
  const std::string path = dir.path().string();
  ModelFiles stage = load_model_files(path, {0, 1});
  EXPECT_EQ(names_of(stage.tensors), names_of(one));
  EXPECT_EQ(stage.files.size(), 3u);  // config, index, a.safetensors
  EXPECT_NE(error_of([&] { load_model_files(path); }).find("b.safetensors: no such file"),
            std::string::npos);
}

// A NaN in layer 1 (safetensors) or in the last layer of the llama2.c checkpoint: the finite
// check of a stage that does not hold it passes, the whole model's names it.
TEST(StageLoad, AnotherLayersNonFiniteWeightIsNotChecked) {
  HONE_REQUIRE_SHARED(src, "fixtures/models/tiny-llama");
  HONE_REQUIRE_SHARED(bin, "models/stories260K/stories260K.bin");
  TempDir dir;
  const std::string bad = "model.layers.1.mlp.down_proj.weight";
  write_edited(src, dir, [&](auto& ts) { ts.at(bad).template data<float>()[5] = std::nanf(""); });

  // stories260K.bin: dim 64, hidden 172, 5 layers, kv_dim 32, vocab 512; the up (w3) arrays
  // come after embedding, attention norms, wq, wk, wv, wo, ffn norms, w1 and w2.
  const int64_t dim = 64, hid = 172, L = 5, kv = 32, vocab = 512;
  const int64_t up4 = vocab * dim + L * dim + L * dim * dim + 2 * L * kv * dim + L * dim * dim +
                      L * dim + 2 * L * hid * dim + 4 * hid * dim;
  std::string bytes = test::read_bytes(bin);
  const float nan = std::nanf("");
  std::memcpy(&bytes[28 + 4 * (up4 + 3)], &nan, 4);
  test::write_bytes(dir.file("bad.bin"), bytes);

  for (const auto& [path, name, stage] :
       {std::tuple{dir.path().string(), bad, LayerRange{0, 1}},
        std::tuple{dir.file("bad.bin"), std::string("model.layers.4.mlp.up_proj.weight"),
                   LayerRange{0, 4}}}) {
    SCOPED_TRACE(path);
    ModelFiles part = load_model_files(path, stage);
    EXPECT_NO_THROW(check_finite_weights(part.tensors, part.source));
    ModelFiles whole = load_model_files(path);
    EXPECT_NE(error_of([&] {
                check_finite_weights(whole.tensors, whole.source);
              }).find(path + ": tensor " + name + ": non-finite value (nan)"),
              std::string::npos);
  }
}

// A stage's model: only its blocks, embedding and head as the range says, each weight quantized
// at load bitwise as the whole model's; the whole-model entry points refuse a partial stage.
TEST(StageModel, HoldsItsPartsQuantizedAsTheWholeModel) {
  for (const char* name : {"tiny-llama", "tiny-qwen2"}) {
    SCOPED_TRACE(name);
    HONE_REQUIRE_SHARED(dir, std::string("fixtures/models/") + name);
    ModelFiles files = load_model_files(dir);
    for (DType dt : {DType::Q4_0, DType::Q8_0, DType::BF16}) {
      Transformer whole(files.config, files.tensors, dt);
      for (LayerRange r : {LayerRange{0, 1}, LayerRange{1, 2}}) {
        ModelFiles part = load_model_files(dir, r);
        Transformer stage(part.config, part.tensors, dt, r);
        ASSERT_EQ(stage.blocks().size(), 1u);
        const Block& b = stage.blocks()[0];
        const Block& w = whole.blocks()[r.first];
        EXPECT_TRUE(same_bytes(b.q_proj->weight().value(), w.q_proj->weight().value()));
        EXPECT_TRUE(same_bytes(b.down_proj->weight().value(), w.down_proj->weight().value()));
        EXPECT_TRUE(same_bytes(b.input_norm.value(), w.input_norm.value()));
        auto ln = stage.linears();
        ASSERT_EQ(ln.size(), 7u);
        EXPECT_EQ(ln[0].name, "model.layers." + std::to_string(r.first) + ".self_attn.q_proj");
        EXPECT_EQ(ln[0].layer, r.first);
      }
      // The stages' base parameters add up to the whole model's; a tied matrix is held twice,
      // as the first stage's embedding and the last stage's head.
      ModelFiles p0 = load_model_files(dir, {0, 1}), p1 = load_model_files(dir, {1, 2});
      Transformer s0(p0.config, p0.tensors, dt, {0, 1}), s1(p1.config, p1.tensors, dt, {1, 2});
      const ModelConfig& c = files.config;
      EXPECT_EQ(
          s0.num_parameters() + s1.num_parameters(),
          whole.num_parameters() + (c.tie_word_embeddings ? c.vocab_size * c.hidden_size : 0));
    }
    ModelFiles mid = load_model_files(dir, {1, 1});
    Transformer none(mid.config, mid.tensors, DType::F32, {1, 1});
    const std::vector<int32_t> ids = {1, 2, 3};
    EXPECT_NE(error_of([&] { none.embed(nullptr, ids, 1, 3); }).find("not the token embedding"),
              std::string::npos);
    EXPECT_NE(error_of([&] {
                none.loss(nullptr, ids, ids, 1, 3);
              }).find("holds layers [1, 1) of 2, not the final norm and LM head"),
              std::string::npos);
    EXPECT_NE(error_of([&] { none.make_cache(8); }).find("not the whole model"), std::string::npos);
  }
}

}  // namespace
}  // namespace hone

namespace hone {

// A stage's random weights (benchmarks of shapes without a checkpoint) are the whole model's
// tensors of that stage, drawn alone: the same values, bit for bit, in every storage.
TEST(StageLoad, RandomWeightsOfAStageAreTheWholeModelsShare) {
  ModelConfig c;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_layers = 3;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.vocab_size = 128;
  c.max_position_embeddings = 64;
  for (DType d : {DType::F32, DType::Q4_0}) {
    const auto whole = random_weights(c, 5, d);
    for (const LayerRange r : {LayerRange{0, 1}, LayerRange{1, 2}, LayerRange{2, 3}}) {
      const auto part = random_weights(c, 5, d, range_filter(r, c));
      size_t held = 0;
      for (const auto& [name, t] : whole) {
        if (!range_holds_tensor(r, c, name)) {
          EXPECT_FALSE(part.count(name)) << name;
          continue;
        }
        ++held;
        ASSERT_TRUE(part.count(name)) << name;
        const Tensor& p = part.at(name);
        ASSERT_EQ(p.nbytes(), t.nbytes()) << name;
        EXPECT_EQ(std::memcmp(p.raw(), t.raw(), t.nbytes()), 0) << name << " " << r.str();
      }
      EXPECT_EQ(part.size(), held);
      EXPECT_LT(part.size(), whole.size());
    }
  }
}

}  // namespace hone
