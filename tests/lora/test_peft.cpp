#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lora/peft.h"
#include "model/io/safetensors.h"
#include "model/random_weights.h"
#include "tiny_model.h"
#include "tmpdir.h"

using namespace hone;

namespace {

ModelConfig small_config() {
  return test::tiny_model({.hidden = 16,
                           .intermediate = 24,
                           .heads = 2,
                           .kv_heads = 1,
                           .vocab = 20,
                           .max_positions = 2048});
}

void randomise(LoraAdapters& ad, uint64_t seed) {
  Rng r(seed);
  float* v = ad.values().data<float>();
  for (int64_t i = 0; i < ad.values().numel(); ++i) v[i] = static_cast<float>(r.normal() * 0.1);
}

TEST(Peft, SaveThenLoadGivesTheSameModel) {
  test::TempDir dir;
  ModelConfig cfg = small_config();
  auto w = random_weights(cfg, 1);
  Transformer a(cfg, w), b(cfg, w);
  LoraConfig lc;
  lc.rank = 3;
  lc.alpha = 5;
  lc.rslora = true;
  lc.targets = {"v_proj", "q_proj", "down_proj"};
  lc.layers = {1};
  LoraAdapters ad(a, lc);
  randomise(ad, 2);
  save_peft_adapter(dir.file("adapter"), ad, "my/base");

  nlohmann::json j = nlohmann::json::parse(std::ifstream(dir.file("adapter/adapter_config.json")));
  EXPECT_EQ(j["peft_type"], "LORA");
  EXPECT_EQ(j["task_type"], "CAUSAL_LM");
  EXPECT_EQ(j["r"], 3);
  EXPECT_EQ(j["lora_alpha"], 5.0);
  EXPECT_EQ(j["use_rslora"], true);
  EXPECT_EQ(j["use_dora"], false);
  EXPECT_EQ(j["bias"], "none");
  EXPECT_EQ(j["base_model_name_or_path"], "my/base");
  EXPECT_EQ(j["layers_to_transform"], nlohmann::json::array({1}));
  SafetensorsFile f = read_safetensors(dir.file("adapter/adapter_model.safetensors"));
  ASSERT_EQ(f.tensors.size(), 6u);
  EXPECT_EQ(f.tensors.at("base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight").shape(),
            (Shape{3, 16}));
  EXPECT_EQ(f.tensors.at("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight").shape(),
            (Shape{16, 3}));
  EXPECT_FALSE(std::filesystem::exists(dir.file("adapter/adapter_config.json.tmp")));

  auto loaded = load_peft_adapter(dir.file("adapter"), b);
  EXPECT_DOUBLE_EQ(loaded->config().scaling(), ad.config().scaling());
  std::vector<int32_t> ids = {1, 2, 3, 4, 5, 6};
  ad.set_training(false);
  Tensor la = a.forward(nullptr, ids, 1, 6).value(), lb = b.forward(nullptr, ids, 1, 6).value();
  for (int64_t i = 0; i < la.numel(); ++i) ASSERT_EQ(la.item(i), lb.item(i));
}

TEST(Peft, RefusesWhatItCannotApply) {
  test::TempDir dir;
  ModelConfig cfg = small_config();
  Transformer m(cfg, random_weights(cfg, 3));
  LoraConfig lc;
  LoraAdapters ad(m, lc);
  save_peft_adapter(dir.path().string(), ad, "base");
  auto edit = [&](const std::string& key, const nlohmann::json& value) {
    nlohmann::json j = nlohmann::json::parse(std::ifstream(dir.file("adapter_config.json")));
    j[key] = value;
    std::ofstream(dir.file("adapter_config.json")) << j.dump();
  };
  auto expect_error = [&](const std::string& needle) {
    Transformer fresh(cfg, random_weights(cfg, 3));
    try {
      load_peft_adapter(dir.path().string(), fresh);
      ADD_FAILURE() << "no error for " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("adapter_config.json"), std::string::npos);
    }
  };
  // use_dora loads (DoRA is supported), but then every module needs its magnitude vector.
  edit("use_dora", true);
  {
    Transformer fresh(cfg, random_weights(cfg, 3));
    try {
      load_peft_adapter(dir.path().string(), fresh);
      ADD_FAILURE() << "no error for a DoRA config without magnitudes";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("lora_magnitude_vector"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("adapter_model.safetensors"), std::string::npos);
    }
  }
  edit("use_dora", false);
  edit("target_modules", nlohmann::json::array({"q_proj", "lm_head"}));
  expect_error("lm_head");
  edit("target_modules", nlohmann::json::array({"q_proj", "v_proj"}));
  edit("r", 0);
  expect_error("rank");
  // Numbers that are not integers in range are errors naming the field (converting 2.9e46 to an
  // integer was undefined behaviour, found by the fuzzer).
  edit("r", 2.8888888e46);
  expect_error("r: expected an integer");
  edit("r", 4.5);
  expect_error("r: expected an integer");
  edit("r", 8);
  edit("layers_to_transform", nlohmann::json::array({0, 1e12}));
  expect_error("layers_to_transform: expected an integer");
  edit("layers_to_transform", -1);
  expect_error("layers_to_transform: expected an integer");
  edit("layers_to_transform", nullptr);
  // 200,000 nested arrays: refused at 512 levels rather than overflowing the stack.
  std::ofstream(dir.file("adapter_config.json"))
      << "{\"target_modules\": " << std::string(200000, '[') << std::string(200000, ']') << "}";
  expect_error(dir.file("adapter_config.json") + ": JSON nested deeper than 512 levels");
}

TEST(Peft, WeightsMustMatchTheModel) {
  test::TempDir dir;
  ModelConfig cfg = small_config();
  Transformer m(cfg, random_weights(cfg, 4));
  LoraConfig lc;
  lc.targets = {"q_proj"};
  LoraAdapters ad(m, lc);
  save_peft_adapter(dir.path().string(), ad, "base");
  // The same adapter file against adapters that expect more modules: a named missing tensor.
  Transformer m2(cfg, random_weights(cfg, 4));
  lc.targets = {"q_proj", "k_proj"};
  LoraAdapters ad2(m2, lc);
  try {
    load_peft_weights(ad2, dir.file("adapter_model.safetensors"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing tensor"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("k_proj"), std::string::npos) << e.what();
  }
  // And against fewer modules: the extra tensor is named.
  Transformer m3(cfg, random_weights(cfg, 4));
  lc.targets = {"q_proj"};
  lc.layers = {0};
  LoraAdapters ad3(m3, lc);
  EXPECT_THROW(load_peft_weights(ad3, dir.file("adapter_model.safetensors")), Error);
}

}  // namespace
