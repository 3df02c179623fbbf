// config.json parsing: the fixture families, and one-line errors naming the file and the field.
#include <gtest/gtest.h>

#include "common.h"
#include "model/config.h"
#include "tmpdir.h"

namespace hone {
namespace {

using test::TempDir;

TEST(Config, TinyLlama) {
  HONE_REQUIRE_SHARED(path, "fixtures/models/tiny-llama/config.json");
  ModelConfig c = config_from_hf_json(path);
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 96);
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.num_heads, 4);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.vocab_size, 256);
  EXPECT_EQ(c.max_position_embeddings, 128);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.rope_scaling.type, "");
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_EQ(c.torch_dtype, "float32");
  EXPECT_EQ(c.q_dim(), 64);
  EXPECT_EQ(c.kv_dim(), 32);
}

TEST(Config, TinyQwen2) {
  HONE_REQUIRE_SHARED(path, "fixtures/models/tiny-qwen2/config.json");
  ModelConfig c = config_from_hf_json(path);
  EXPECT_EQ(c.architecture, "Qwen2ForCausalLM");
  EXPECT_EQ(c.model_type, "qwen2");
  EXPECT_TRUE(c.attention_bias);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.head_dim, 16);
}

TEST(Config, TinyQwen3ExplicitHeadDim) {
  HONE_REQUIRE_SHARED(path, "fixtures/models/tiny-qwen3/config.json");
  ModelConfig c = config_from_hf_json(path);
  EXPECT_EQ(c.architecture, "Qwen3ForCausalLM");
  EXPECT_EQ(c.model_type, "qwen3");
  EXPECT_EQ(c.head_dim, 32);  // != hidden / heads = 16
  EXPECT_EQ(c.q_dim(), 128);
  EXPECT_EQ(c.kv_dim(), 64);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_TRUE(c.tie_word_embeddings);
}

TEST(Config, TinyLlama3RopeScaling) {
  HONE_REQUIRE_SHARED(path, "fixtures/models/tiny-llama3/config.json");
  ModelConfig c = config_from_hf_json(path);
  EXPECT_EQ(c.num_kv_heads, 1);
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_EQ(c.rope_scaling.factor, 8.0);
  EXPECT_EQ(c.rope_scaling.low_freq_factor, 1.0);
  EXPECT_EQ(c.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 64);
}

TEST(Config, Stories260KParameterCount) {
  HONE_REQUIRE_SHARED(path, "fixtures/models/stories260K/config.json");
  ModelConfig c = config_from_hf_json(path);
  EXPECT_EQ(c.num_parameters(), 260032);  // as the shared README states
}

TEST(Config, ParameterCountCountsBiasesNormsAndHead) {
  ModelConfig c;
  c.hidden_size = 8;
  c.intermediate_size = 12;
  c.num_layers = 2;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 4;
  c.vocab_size = 10;
  const int64_t layer = 2 * 8 + 8 * 8 + 2 * 8 * 4 + 8 * 8 + 3 * 8 * 12;
  EXPECT_EQ(c.num_parameters(), 10 * 8 + 2 * layer + 8 + 10 * 8);
  c.tie_word_embeddings = true;
  c.attention_bias = true;
  c.qk_norm = true;
  EXPECT_EQ(c.num_parameters(), 10 * 8 + 2 * (layer + 8 + 4 + 4 + 4 + 4) + 8);
}

// A config.json with the given fields over a valid llama base; "null" values delete a field.
std::string write_config(const TempDir& dir, const std::string& extra_or_replace) {
  std::string base =
      R"({"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":64,)"
      R"("intermediate_size":96,"num_hidden_layers":2,"num_attention_heads":4,)"
      R"("num_key_value_heads":2,"vocab_size":256,"rms_norm_eps":1e-5)";
  const std::string path = dir.file("config.json");
  test::write_bytes(path, base + extra_or_replace + "}");
  return path;
}

std::string config_error(const std::string& path) {
  try {
    config_from_hf_json(path);
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find(path), std::string::npos) << "does not name the file: " << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << "not one line: " << m;
    return m;
  }
  ADD_FAILURE() << "no error for " << path;
  return "";
}

TEST(Config, Defaults) {
  TempDir dir;
  ModelConfig c = config_from_hf_json(write_config(dir, ""));
  EXPECT_EQ(c.tie_word_embeddings, false);
  EXPECT_EQ(c.bos_token_id, -1);
  EXPECT_TRUE(c.eos_token_ids.empty());
  EXPECT_EQ(c.rope_scaling.type, "");
  c = config_from_hf_json(write_config(
      dir, R"(,"eos_token_id":[2,7],"rope_scaling":null,"head_dim":null,"bos_token_id":null)"));
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{2, 7}));
  EXPECT_EQ(c.head_dim, 16);
}

TEST(Config, MistralAndKvHeadsDefault) {
  TempDir dir;
  const std::string path = dir.file("config.json");
  test::write_bytes(path, R"({"architectures":["MistralForCausalLM"],"model_type":"mistral",)"
                          R"("hidden_size":32,"intermediate_size":40,"num_hidden_layers":1,)"
                          R"("num_attention_heads":4,"vocab_size":50,"sliding_window":4096})");
  ModelConfig c = config_from_hf_json(path);
  EXPECT_EQ(c.model_type, "mistral");
  EXPECT_EQ(c.num_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
}

TEST(Config, MissingField) {
  TempDir dir;
  const std::string path = dir.file("config.json");
  test::write_bytes(path, R"({"model_type":"llama","intermediate_size":96})");
  EXPECT_EQ(config_error(path), path + ": missing field \"hidden_size\"");
}

TEST(Config, WrongType) {
  TempDir dir;
  const std::string path = dir.file("config.json");
  test::write_bytes(path, R"({"model_type":"llama","hidden_size":"abc"})");
  EXPECT_EQ(config_error(path), path + ": hidden_size: expected an integer, got \"abc\"");
  EXPECT_NE(config_error(write_config(dir, R"(,"tie_word_embeddings":"yes")"))
                .find("tie_word_embeddings: expected true or false"),
            std::string::npos);
  EXPECT_NE(config_error(write_config(dir, R"(,"rope_theta":"big")"))
                .find("rope_theta: expected a number"),
            std::string::npos);
  EXPECT_NE(config_error(write_config(dir, R"(,"eos_token_id":[2,"x"])"))
                .find("eos_token_id: expected an integer"),
            std::string::npos);
}

TEST(Config, InconsistentHeads) {
  TempDir dir;
  const std::string path = dir.file("config.json");
  test::write_bytes(path, R"({"model_type":"llama","hidden_size":64,"intermediate_size":96,)"
                          R"("num_hidden_layers":2,"num_attention_heads":7,"vocab_size":256})");
  EXPECT_EQ(config_error(path), path + ": num_attention_heads: 7 does not divide hidden_size 64");
  test::write_bytes(path, R"({"model_type":"llama","hidden_size":64,"intermediate_size":96,)"
                          R"("num_hidden_layers":2,"num_attention_heads":4,)"
                          R"("num_key_value_heads":3,"vocab_size":256})");
  EXPECT_EQ(config_error(path),
            path + ": num_key_value_heads: 3 does not divide num_attention_heads 4");
  test::write_bytes(path, R"({"model_type":"qwen3","hidden_size":64,"intermediate_size":96,)"
                          R"("num_hidden_layers":2,"num_attention_heads":4,"head_dim":5,)"
                          R"("vocab_size":256})");
  EXPECT_EQ(config_error(path), path + ": head_dim: 5 must be even for RoPE");
}

TEST(Config, OtherValueErrors) {
  TempDir dir;
  EXPECT_NE(config_error(write_config(dir, R"(,"num_hidden_layers":0)"))
                .find("num_hidden_layers: must be > 0 (got 0)"),
            std::string::npos);
  std::string m =
      config_error(write_config(dir, R"(,"rope_scaling":{"rope_type":"yarn","factor":4})"));
  EXPECT_NE(m.find("rope_scaling.rope_type: unsupported rope scaling type \"yarn\""),
            std::string::npos)
      << m;
  m = config_error(write_config(dir, R"(,"rope_scaling":{"type":"linear","factor":2})"));
  EXPECT_NE(m.find("rope_scaling.type: unsupported"), std::string::npos) << m;
  m = config_error(write_config(dir, R"(,"rope_scaling":{"rope_type":"llama3","factor":8})"));
  EXPECT_NE(m.find("missing field \"rope_scaling.low_freq_factor\""), std::string::npos) << m;
  m = config_error(write_config(dir, R"(,"eos_token_id":300)"));
  EXPECT_NE(m.find("eos_token_id: 300 is outside the vocabulary"), std::string::npos) << m;
  m = config_error(write_config(dir, R"(,"architectures":["GPT2LMHeadModel"])"));
  EXPECT_NE(m.find("architectures: unsupported architecture \"GPT2LMHeadModel\""),
            std::string::npos)
      << m;
  m = config_error(write_config(dir, R"(,"model_type":"qwen2")"));
  EXPECT_NE(m.find("model_type: \"qwen2\" does not match architectures"), std::string::npos) << m;
}

TEST(Config, JsonErrorsAndMissingFile) {
  TempDir dir;
  const std::string path = dir.file("config.json");
  test::write_bytes(path, "{\"hidden_size\": 64,");
  EXPECT_NE(config_error(path).find(path + ": invalid JSON: "), std::string::npos);
  test::write_bytes(path, "[1]");
  EXPECT_NE(config_error(path).find("expected a JSON object"), std::string::npos);
  // 200,000 levels overflowed the stack (SIGSEGV); the parse stops at 512.
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  test::write_bytes(path, "{\"architectures\": " + deep + "}");
  EXPECT_EQ(config_error(path), path +
                                    ": JSON nested deeper than 512 levels (arrays/objects "
                                    "inside each other); hone refuses such input");
  std::string objects;
  for (int i = 0; i < 200000; ++i) objects += "{\"a\":";
  test::write_bytes(path, objects + "1" + std::string(200000, '}'));
  EXPECT_NE(config_error(path).find(path + ": JSON nested deeper than 512"), std::string::npos);
  const std::string missing = dir.file("nope/config.json");
  EXPECT_EQ(config_error(missing), missing + ": no such file or directory");
}

}  // namespace
}  // namespace hone
