// load_model_files: every fixture folder, the dispatch on path kinds, and shape/missing errors.
#include <gtest/gtest.h>

#include <filesystem>

#include "common.h"
#include "model/io/model_files.h"
#include "model/io/safetensors.h"
#include "tmpdir.h"

namespace hone {
namespace {

using test::TempDir;
namespace fs = std::filesystem;

class FixtureModels : public ::testing::TestWithParam<const char*> {};

TEST_P(FixtureModels, LoadsFolderAndFileWithAllExpectedTensors) {
  const std::string name = GetParam();
  HONE_REQUIRE_SHARED(dir, "fixtures/models/" + name);
  ModelFiles m = load_model_files(dir);
  EXPECT_EQ(m.format, "safetensors");
  EXPECT_EQ(m.source, dir);
  auto want = expected_tensor_shapes(m.config);
  int64_t params = 0;
  for (const auto& [n, shape] : want) {
    ASSERT_TRUE(m.tensors.count(n)) << n;
    EXPECT_EQ(m.tensors.at(n).shape(), shape) << n;
    params += m.tensors.at(n).numel();
  }
  EXPECT_EQ(params, m.config.num_parameters());
  ASSERT_EQ(m.files.size(), 2u);
  EXPECT_EQ(fs::path(m.files[0]).filename(), "config.json");

  // The same model through its .safetensors path (config.json beside it).
  ModelFiles f = load_model_files((fs::path(dir) / "model.safetensors").string());
  EXPECT_EQ(f.tensors.size(), m.tensors.size());
  EXPECT_EQ(f.config.hidden_size, m.config.hidden_size);
}

INSTANTIATE_TEST_SUITE_P(All, FixtureModels,
                         ::testing::Values("tiny-llama", "tiny-qwen2", "tiny-qwen3", "tiny-llama3",
                                           "stories260K"));

TEST(ModelFiles, FixtureSpecifics) {
  HONE_REQUIRE_SHARED(qwen2, "fixtures/models/tiny-qwen2");
  HONE_REQUIRE_SHARED(qwen3, "fixtures/models/tiny-qwen3");
  ModelFiles q2 = load_model_files(qwen2);
  EXPECT_EQ(q2.tensors.at("model.layers.1.self_attn.k_proj.bias").shape(), (Shape{32}));
  ModelFiles q3 = load_model_files(qwen3);
  EXPECT_EQ(q3.tensors.at("model.layers.0.self_attn.q_proj.weight").shape(), (Shape{128, 64}));
  EXPECT_EQ(q3.tensors.at("model.layers.0.self_attn.q_norm.weight").shape(), (Shape{32}));
  EXPECT_EQ(q3.tensors.at("model.layers.0.self_attn.o_proj.weight").shape(), (Shape{64, 128}));
}

TEST(ModelFiles, Llama2cBin) {
  HONE_REQUIRE_SHARED(bin, "models/stories260K/stories260K.bin");
  ModelFiles m = load_model_files(bin);
  EXPECT_EQ(m.format, "llama2c");
  EXPECT_EQ(m.tensors.size(), 2u + 5u * 9u);
  EXPECT_EQ(m.files, std::vector<std::string>{bin});
}

// A tiny llama written with our writer: config.json + model.safetensors (or shards).
ModelConfig tiny_config() {
  ModelConfig c;
  c.hidden_size = 8;
  c.intermediate_size = 12;
  c.num_layers = 2;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 4;
  c.vocab_size = 10;
  return c;
}

const char* kTinyConfig =
    R"({"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":8,)"
    R"("intermediate_size":12,"num_hidden_layers":2,"num_attention_heads":2,)"
    R"("num_key_value_heads":1,"vocab_size":10})";

std::map<std::string, Tensor> tiny_tensors() {
  std::map<std::string, Tensor> t;
  for (const auto& [n, shape] : expected_tensor_shapes(tiny_config()))
    t[n] = Tensor::zeros(DType::BF16, shape);
  t["model.layers.0.self_attn.rotary_emb.inv_freq"] = Tensor::zeros(DType::F32, {2});  // ignored
  return t;
}

std::string load_error(const std::string& path) {
  try {
    load_model_files(path);
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    return m;
  }
  ADD_FAILURE() << "no error for " << path;
  return "";
}

TEST(ModelFiles, SyntheticFolderAndShards) {
  TempDir dir;
  test::write_bytes(dir.file("config.json"), kTinyConfig);
  auto t = tiny_tensors();
  write_safetensors(dir.file("model.safetensors"), t);
  ModelFiles m = load_model_files(dir.path().string());
  EXPECT_EQ(m.tensors.size(), t.size());
  EXPECT_EQ(m.tensors.at("lm_head.weight").dtype(), DType::BF16);

  // Sharded: every tensor whose name has "layers.1" goes to the second shard.
  fs::remove(dir.file("model.safetensors"));
  std::map<std::string, Tensor> a, b;
  std::string wm = "{";
  for (const auto& [n, x] : t) {
    bool second = n.find("layers.1") != std::string::npos;
    (second ? b : a)[n] = x;
    wm += std::string(wm.size() > 1 ? "," : "") + "\"" + n + "\":\"" +
          (second ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors") + "\"";
  }
  write_safetensors(dir.file("model-00001-of-00002.safetensors"), a);
  write_safetensors(dir.file("model-00002-of-00002.safetensors"), b);
  test::write_bytes(dir.file("model.safetensors.index.json"), "{\"weight_map\":" + wm + "}}");
  m = load_model_files(dir.path().string());
  EXPECT_EQ(m.tensors.size(), t.size());
  EXPECT_EQ(m.files.size(), 4u);
  m = load_model_files(dir.file("model.safetensors.index.json"));
  EXPECT_EQ(m.tensors.size(), t.size());
}

TEST(ModelFiles, WrongShapeMissingTensorAndWrongDtype) {
  TempDir dir;
  test::write_bytes(dir.file("config.json"), kTinyConfig);
  auto t = tiny_tensors();
  t["model.layers.1.self_attn.k_proj.weight"] = Tensor::zeros(DType::F32, {8, 8});
  write_safetensors(dir.file("model.safetensors"), t);
  EXPECT_EQ(load_error(dir.path().string()),
            dir.path().string() +
                ": tensor model.layers.1.self_attn.k_proj.weight: shape [8, 8], expected [4, 8] "
                "from the config");
  t = tiny_tensors();
  t.erase("lm_head.weight");
  write_safetensors(dir.file("model.safetensors"), t);
  EXPECT_NE(load_error(dir.path().string())
                .find("tensor lm_head.weight: missing (the config implies shape [10, 8])"),
            std::string::npos);
  t = tiny_tensors();
  t["model.norm.weight"] = Tensor::zeros(DType::I32, {8});
  write_safetensors(dir.file("model.safetensors"), t);
  EXPECT_NE(load_error(dir.path().string()).find("model.norm.weight: dtype I32"),
            std::string::npos);
}

TEST(ModelFiles, PathErrors) {
  TempDir dir;
  const std::string missing = dir.file("nothing_here");
  EXPECT_EQ(load_error(missing), missing + ": no such file or directory");
  EXPECT_NE(load_error(dir.path().string()).find("no config.json in this folder"),
            std::string::npos);
  test::write_bytes(dir.file("config.json"), kTinyConfig);
  EXPECT_NE(load_error(dir.path().string()).find("no model.safetensors"), std::string::npos);
  test::write_bytes(dir.file("pytorch_model.bin"), std::string("PK\x03\x04rest", 8));
  EXPECT_NE(load_error(dir.file("pytorch_model.bin")).find("PyTorch"), std::string::npos);
  test::write_bytes(dir.file("weights.pt"), "xxxx");
  EXPECT_NE(load_error(dir.file("weights.pt")).find("unrecognised model file"), std::string::npos);
  // A .safetensors with no config.json beside it.
  fs::create_directories(dir.path() / "sub");
  write_safetensors(dir.file("sub/model.safetensors"), tiny_tensors());
  EXPECT_NE(load_error(dir.file("sub/model.safetensors")).find("no config.json beside"),
            std::string::npos);
}

}  // namespace
}  // namespace hone
