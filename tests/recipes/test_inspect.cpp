// inspect_report: the summary of a model on disk.
#include <gtest/gtest.h>

#include "autograd/error.h"
#include "common.h"
#include "recipes/inspect.h"

namespace hone {
namespace {

bool has(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST(Inspect, TinyQwen3Folder) {
  HONE_REQUIRE_SHARED(dir, "fixtures/models/tiny-qwen3");
  std::string r = inspect_report(dir);
  EXPECT_TRUE(has(r, "architecture: Qwen3ForCausalLM\n")) << r;
  EXPECT_TRUE(has(r, "model_type: qwen3\n")) << r;
  EXPECT_TRUE(has(r, "head_dim: 32\n")) << r;
  EXPECT_TRUE(has(r, "qk_norm: true\n")) << r;
  EXPECT_TRUE(has(r, "num_key_value_heads: 2 (grouped-query attention, 2 query heads per KV head)"))
      << r;
  EXPECT_TRUE(has(r, "format: safetensors (2 files, ")) << r;
  EXPECT_TRUE(has(r, "dtypes: F32 (")) << r;
  EXPECT_TRUE(has(r, "  model.layers.0.self_attn.q_proj.weight  [128, 64]  F32\n")) << r;
  EXPECT_TRUE(has(r, "  model.layers.0.self_attn.q_norm.weight  [32]  F32\n")) << r;
  EXPECT_TRUE(has(r, "  ... × 2 layers (11 tensors each)\n")) << r;
  EXPECT_FALSE(has(r, "model.layers.1.")) << r;
  EXPECT_TRUE(has(r, "  model.norm.weight  [64]  F32\n")) << r;
}

TEST(Inspect, Stories260KBin) {
  HONE_REQUIRE_SHARED(bin, "models/stories260K/stories260K.bin");
  std::string r = inspect_report(bin);
  EXPECT_TRUE(has(r, "format: llama2c (1 file, 1,056,540 bytes = 1.0 MiB on disk)\n")) << r;
  EXPECT_TRUE(has(r, "parameters: 260,032\n")) << r;
  EXPECT_TRUE(has(r, "tensors: 47\n")) << r;
  EXPECT_TRUE(has(r, "dtypes: F32 (47)\n")) << r;
  EXPECT_TRUE(has(r, "tie_word_embeddings: true\n")) << r;
  EXPECT_TRUE(has(r, "rope_scaling: none\n")) << r;
  EXPECT_TRUE(has(r, "  model.embed_tokens.weight  [512, 64]  F32\n")) << r;
  EXPECT_TRUE(has(r, "  ... × 5 layers (9 tensors each)\n")) << r;
}

TEST(Inspect, Llama3RopeScaling) {
  HONE_REQUIRE_SHARED(dir, "fixtures/models/tiny-llama3");
  std::string r = inspect_report(dir);
  EXPECT_TRUE(has(r,
                  "rope_scaling: llama3 (factor 8, low_freq_factor 1, high_freq_factor 4, "
                  "original_max_position_embeddings 64)\n"))
      << r;
  EXPECT_TRUE(has(r, "  lm_head.weight  [256, 64]  F32\n")) << r;
}

TEST(Inspect, MissingPathThrows) {
  EXPECT_THROW(inspect_report("/nonexistent/hone/model"), Error);
}

}  // namespace
}  // namespace hone
