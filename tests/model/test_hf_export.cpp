// The Hugging Face folder writer: config round trip, bitwise tensor round trip (single file and
// shards with an index), tied embeddings, tokenizer copies, and all-or-nothing output.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/io/hf_export.h"
#include "model/io/model_files.h"
#include "model/io/safetensors.h"
#include "model/random_weights.h"
#include "tmpdir.h"

using namespace hone;
namespace fs = std::filesystem;

namespace {

ModelConfig small_config() {
  ModelConfig c;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_layers = 3;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 8;
  c.vocab_size = 20;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  return c;
}

// Exports `ts` in f32 as a HF folder.
void export_map(const std::string& out, const ModelConfig& cfg,
                const std::map<std::string, Tensor>& ts, HfExportOptions opt = {},
                DType dtype = DType::F32) {
  export_hf(
      out, cfg, dtype, hf_export_plan(cfg, dtype),
      [&](const ExportTensor& e) { return ts.at(e.name).to(e.dtype); }, opt);
}

void expect_bitwise_equal(const std::map<std::string, Tensor>& want,
                          const std::map<std::string, Tensor>& got) {
  for (const auto& [name, t] : want) {
    auto it = got.find(name);
    ASSERT_NE(it, got.end()) << name;
    ASSERT_EQ(it->second.dtype(), t.dtype()) << name;
    ASSERT_EQ(it->second.shape(), t.shape()) << name;
    EXPECT_EQ(std::memcmp(it->second.raw(), t.raw(), t.nbytes()), 0) << name;
  }
}

std::vector<std::string> siblings_with(const fs::path& dir, const std::string& stem) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind(stem, 0) == 0)
      out.push_back(e.path().filename().string());
  return out;
}

TEST(HfExport, ConfigRoundTripsThroughConfigJson) {
  test::TempDir dir;
  ModelConfig c = small_config();
  c.architecture = "LlamaForCausalLM";
  c.rope_theta = 500000;
  c.rope_scaling = {"llama3", 8.0, 1.0, 4.0, 64};
  c.max_position_embeddings = 128;
  c.eos_token_ids = {2, 5};
  c.head_dim = 12;  // explicit, not hidden/heads
  c.tie_word_embeddings = true;
  test::write_bytes(dir.file("config.json"), hf_config_json(c, DType::BF16));
  ModelConfig r = config_from_hf_json(dir.file("config.json"));
  EXPECT_EQ(r.model_type, "llama");
  EXPECT_EQ(r.hidden_size, 16);
  EXPECT_EQ(r.intermediate_size, 24);
  EXPECT_EQ(r.num_layers, 3);
  EXPECT_EQ(r.num_heads, 2);
  EXPECT_EQ(r.num_kv_heads, 1);
  EXPECT_EQ(r.head_dim, 12);
  EXPECT_EQ(r.vocab_size, 20);
  EXPECT_EQ(r.max_position_embeddings, 128);
  EXPECT_EQ(r.rope_theta, 500000);
  EXPECT_EQ(r.rope_scaling.type, "llama3");
  EXPECT_EQ(r.rope_scaling.factor, 8.0);
  EXPECT_EQ(r.rope_scaling.low_freq_factor, 1.0);
  EXPECT_EQ(r.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(r.rope_scaling.original_max_position_embeddings, 64);
  EXPECT_EQ(r.rms_norm_eps, c.rms_norm_eps);
  EXPECT_TRUE(r.tie_word_embeddings);
  EXPECT_FALSE(r.attention_bias);
  EXPECT_EQ(r.bos_token_id, 1);
  EXPECT_EQ(r.eos_token_ids, (std::vector<int64_t>{2, 5}));
  EXPECT_EQ(r.torch_dtype, "bfloat16");

  // Qwen2 (biases implied) and Qwen3 (q/k norms) keep their families.
  for (const char* family : {"qwen2", "qwen3"}) {
    ModelConfig q = small_config();
    q.model_type = family;
    q.architecture = std::string(family) == "qwen2" ? "Qwen2ForCausalLM" : "Qwen3ForCausalLM";
    q.attention_bias = q.model_type == "qwen2";
    q.qk_norm = q.model_type == "qwen3";
    test::write_bytes(dir.file("config.json"), hf_config_json(q, DType::F32));
    ModelConfig rq = config_from_hf_json(dir.file("config.json"));
    EXPECT_EQ(rq.model_type, family);
    EXPECT_EQ(rq.attention_bias, q.attention_bias);
    EXPECT_EQ(rq.qk_norm, q.qk_norm);
    EXPECT_EQ(rq.torch_dtype, "float32");
  }

  nlohmann::json g = nlohmann::json::parse(hf_generation_config_json(c));
  EXPECT_EQ(g["bos_token_id"], 1);
  EXPECT_EQ(g["eos_token_id"], nlohmann::json::array({2, 5}));
}

TEST(HfExport, SingleFileRoundTripIsBitwise) {
  test::TempDir dir;
  ModelConfig cfg = small_config();
  auto ts = random_weights(cfg, 1);
  test::write_bytes(dir.file("tokenizer.json"), "{\"model\": {}}");
  test::write_bytes(dir.file("tokenizer_config.json"), "{}");
  HfExportOptions opt;
  opt.tokenizer_dir = dir.path().string();
  export_map(dir.file("out"), cfg, ts, opt);
  for (const char* f : {"config.json", "generation_config.json", "model.safetensors",
                        "tokenizer.json", "tokenizer_config.json"})
    EXPECT_TRUE(fs::exists(dir.file(std::string("out/") + f))) << f;
  EXPECT_FALSE(fs::exists(dir.file("out/model.safetensors.index.json")));
  EXPECT_FALSE(fs::exists(dir.file("out/special_tokens_map.json")));  // absent in the source
  EXPECT_EQ(test::read_bytes(dir.file("out/tokenizer.json")), "{\"model\": {}}");
  EXPECT_TRUE(siblings_with(dir.path(), "out.tmp-").empty());

  ModelFiles back = load_model_files(dir.file("out"));
  EXPECT_EQ(back.tensors.size(), ts.size());
  expect_bitwise_equal(ts, back.tensors);
  SafetensorsFile st = read_safetensors(dir.file("out/model.safetensors"));
  EXPECT_EQ(st.metadata.at("format"), "pt");  // transformers refuses files without it
}

TEST(HfExport, ShardsWithAnIndexRoundTripBitwise) {
  test::TempDir dir;
  ModelConfig cfg = small_config();
  auto ts = random_weights(cfg, 2);
  HfExportOptions opt;
  opt.max_shard_size = 4000;  // a few projections per shard
  export_map(dir.file("out"), cfg, ts, opt);
  nlohmann::json index =
      nlohmann::json::parse(std::ifstream(dir.file("out/model.safetensors.index.json")));
  uint64_t total = 0;
  for (const auto& [name, t] : ts) total += t.nbytes();
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  EXPECT_EQ(index["weight_map"].size(), ts.size());
  std::set<std::string> shard_files;
  for (const auto& [name, file] : index["weight_map"].items()) shard_files.insert(file);
  ASSERT_GT(shard_files.size(), 2u);
  const size_t n = shard_files.size();
  char last[64];
  std::snprintf(last, sizeof last, "model-%05zu-of-%05zu.safetensors", n, n);
  EXPECT_TRUE(shard_files.count("model-00001-of-" + std::string(last).substr(15))) << last;
  EXPECT_TRUE(shard_files.count(last));
  for (const std::string& f : shard_files) {
    SafetensorsFile st = read_safetensors(dir.file("out/" + f));
    uint64_t bytes = 0;
    for (const auto& [name, t] : st.tensors) {
      bytes += t.nbytes();
      EXPECT_EQ(index["weight_map"][name], f);
    }
    // Over the limit only when a single tensor is larger than it.
    if (st.tensors.size() > 1) {
      EXPECT_LE(bytes, opt.max_shard_size) << f;
    }
  }
  EXPECT_FALSE(fs::exists(dir.file("out/model.safetensors")));
  ModelFiles back = load_model_files(dir.file("out"));
  expect_bitwise_equal(ts, back.tensors);
}

TEST(HfExport, TiedEmbeddingsStayTied) {
  test::TempDir dir;
  ModelConfig cfg = small_config();
  cfg.tie_word_embeddings = true;
  auto ts = random_weights(cfg, 3);
  export_map(dir.file("out"), cfg, ts);
  SafetensorsFile st = read_safetensors(dir.file("out/model.safetensors"));
  EXPECT_FALSE(st.tensors.count("lm_head.weight"));
  nlohmann::json c = nlohmann::json::parse(std::ifstream(dir.file("out/config.json")));
  EXPECT_EQ(c["tie_word_embeddings"], true);
  ModelFiles back = load_model_files(dir.file("out"));
  EXPECT_TRUE(back.config.tie_word_embeddings);
  expect_bitwise_equal(ts, back.tensors);
}

TEST(HfExport, Bf16ExportRecordsItsDtype) {
  test::TempDir dir;
  ModelConfig cfg = small_config();
  auto ts = random_weights(cfg, 4);
  export_map(dir.file("out"), cfg, ts, {}, DType::BF16);
  ModelFiles back = load_model_files(dir.file("out"));
  EXPECT_EQ(back.config.torch_dtype, "bfloat16");
  for (const auto& [name, t] : ts) {
    Tensor want = t.to(DType::BF16);
    ASSERT_EQ(back.tensors.at(name).dtype(), DType::BF16);
    EXPECT_EQ(std::memcmp(back.tensors.at(name).raw(), want.raw(), want.nbytes()), 0) << name;
  }
}

TEST(HfExport, ExistingFolderIsRefusedUnlessForced) {
  test::TempDir dir;
  ModelConfig cfg = small_config();
  auto ts = random_weights(cfg, 5);
  fs::create_directories(dir.file("out"));
  test::write_bytes(dir.file("out/keep.txt"), "mine");
  try {
    export_map(dir.file("out"), cfg, ts);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--force"), std::string::npos) << e.what();
  }
  EXPECT_EQ(test::read_bytes(dir.file("out/keep.txt")), "mine");
  HfExportOptions opt;
  opt.force = true;
  export_map(dir.file("out"), cfg, ts, opt);
  EXPECT_FALSE(fs::exists(dir.file("out/keep.txt")));
  EXPECT_TRUE(fs::exists(dir.file("out/model.safetensors")));
  EXPECT_TRUE(siblings_with(dir.path(), "out.old-").empty());
  // An empty folder is simply filled.
  fs::create_directories(dir.file("empty"));
  export_map(dir.file("empty"), cfg, ts);
  EXPECT_TRUE(fs::exists(dir.file("empty/config.json")));
}

TEST(HfExport, AFailureMidWayLeavesNothing) {
  test::TempDir dir;
  ModelConfig cfg = small_config();
  auto ts = random_weights(cfg, 6);
  int produced = 0;
  auto failing = [&](const ExportTensor& e) {
    if (++produced == 5) throw Error("disk on fire");
    return ts.at(e.name);
  };
  for (uint64_t shard : {uint64_t{0}, uint64_t{3000}}) {
    produced = 0;
    HfExportOptions opt;
    opt.max_shard_size = shard;
    EXPECT_THROW(
        export_hf(dir.file("out"), cfg, DType::F32, hf_export_plan(cfg, DType::F32), failing, opt),
        Error);
    EXPECT_FALSE(fs::exists(dir.file("out")));
    EXPECT_TRUE(siblings_with(dir.path(), "out").empty());
  }
  // A producer that returns the wrong shape is caught too.
  EXPECT_THROW(export_hf(dir.file("out"), cfg, DType::F32, hf_export_plan(cfg, DType::F32),
                         [](const ExportTensor&) { return Tensor::zeros(DType::F32, {1}); }, {}),
               Error);
  EXPECT_FALSE(fs::exists(dir.file("out")));
}

TEST(HfExport, ShardPlanFollowsTransformers) {
  std::vector<ExportTensor> plan = {{"a", DType::F32, {10}},
                                    {"b", DType::F32, {10}},
                                    {"c", DType::F32, {100}},
                                    {"d", DType::F32, {5}}};
  auto shards = hf_shard_plan(plan, 80);  // bytes: 40, 40, 400, 20
  ASSERT_EQ(shards.size(), 3u);
  EXPECT_EQ(shards[0], (std::vector<size_t>{0, 1}));
  EXPECT_EQ(shards[1], (std::vector<size_t>{2}));  // larger than the limit: alone
  EXPECT_EQ(shards[2], (std::vector<size_t>{3}));
  EXPECT_EQ(hf_shard_plan(plan, 0).size(), 1u);
}

TEST(HfExport, ByteSizes) {
  EXPECT_EQ(parse_byte_size("2GB"), 2'000'000'000u);
  EXPECT_EQ(parse_byte_size("500MB"), 500'000'000u);
  EXPECT_EQ(parse_byte_size("500mb"), 500'000'000u);
  EXPECT_EQ(parse_byte_size("1.5GiB"), 1610612736u);
  EXPECT_EQ(parse_byte_size("64KiB"), 65536u);
  EXPECT_EQ(parse_byte_size("1000"), 1000u);
  for (const char* bad : {"", "GB", "2XB", "-1GB", "0", "1.2.3MB"})
    EXPECT_THROW(parse_byte_size(bad), Error) << bad;
}

}  // namespace
