// llama2.c .bin reader: the real stories260K checkpoint against its HF conversion (bitwise), the
// q/k RoPE permutation on a synthetic file, and header/size errors.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "common.h"
#include "model/io/llama2c.h"
#include "model/io/safetensors.h"
#include "tmpdir.h"

namespace hone {
namespace {

using test::TempDir;

TEST(Llama2c, Stories260KMatchesHfConversionBitwise) {
  HONE_REQUIRE_SHARED(bin, "models/stories260K/stories260K.bin");
  HONE_REQUIRE_SHARED(ref, "fixtures/models/stories260K/model.safetensors");
  ModelFiles m = read_llama2c(bin);
  SafetensorsFile r = read_safetensors(ref);
  EXPECT_EQ(m.format, "llama2c");
  EXPECT_EQ(m.config.hidden_size, 64);
  EXPECT_EQ(m.config.intermediate_size, 172);
  EXPECT_EQ(m.config.num_layers, 5);
  EXPECT_EQ(m.config.num_heads, 8);
  EXPECT_EQ(m.config.num_kv_heads, 4);
  EXPECT_EQ(m.config.head_dim, 8);
  EXPECT_EQ(m.config.vocab_size, 512);
  EXPECT_EQ(m.config.max_position_embeddings, 512);
  EXPECT_TRUE(m.config.tie_word_embeddings);
  EXPECT_EQ(m.config.bos_token_id, 1);
  EXPECT_EQ(m.config.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_EQ(m.config.num_parameters(), 260032);

  ASSERT_EQ(m.tensors.size(), r.tensors.size());
  int64_t params = 0;
  for (const auto& [name, want] : r.tensors) {
    auto it = m.tensors.find(name);
    ASSERT_NE(it, m.tensors.end()) << name << " missing from the llama2.c load";
    const Tensor& got = it->second;
    ASSERT_EQ(got.dtype(), DType::F32) << name;
    ASSERT_EQ(want.dtype(), DType::F32) << name;
    ASSERT_EQ(got.shape(), want.shape()) << name;
    EXPECT_EQ(std::memcmp(got.raw(), want.raw(), got.nbytes()), 0) << name << " differs";
    params += got.numel();
  }
  EXPECT_EQ(params, 260032);
}

TEST(Llama2c, AiDreams260KSecondShape) {
  HONE_REQUIRE_SHARED(bin, "models/aidreams260K/aidreams260K.bin");
  ModelFiles m = read_llama2c(bin);
  EXPECT_EQ(m.config.num_layers, 4);
  EXPECT_EQ(m.config.num_heads, 4);
  EXPECT_EQ(m.config.num_kv_heads, 4);
  EXPECT_EQ(m.config.max_position_embeddings, 128);
  int64_t params = 0;
  for (const auto& [name, t] : m.tensors) params += t.numel();
  EXPECT_EQ(params, 230976);  // as the shared README states
  EXPECT_EQ(m.config.num_parameters(), 230976);
}

// A tiny synthetic checkpoint whose every float is its own index in the file's float arrays.
std::string synthetic(int32_t dim, int32_t hidden, int32_t layers, int32_t heads, int32_t kv,
                      int32_t vocab, int32_t seq, int64_t drop_bytes = 0) {
  int32_t hdr[7] = {dim, hidden, layers, heads, kv, vocab, seq};
  const int64_t hd = dim / heads, kvd = kv * hd, V = vocab < 0 ? -vocab : vocab;
  const int64_t n = V * dim +
                    layers * (2 * dim + 2 * dim * dim + 2 * kvd * dim + 3 * hidden * dim) + dim +
                    seq * hd + (vocab < 0 ? V * dim : 0);
  std::vector<float> f(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) f[i] = static_cast<float>(i);
  std::string s(reinterpret_cast<const char*>(hdr), sizeof hdr);
  s.append(reinterpret_cast<const char*>(f.data()), f.size() * 4);
  s.resize(s.size() - static_cast<size_t>(drop_bytes));
  return s;
}

TEST(Llama2c, UnsharedClassifierAndRopePermutation) {
  TempDir dir;
  const std::string path = dir.file("tiny.bin");
  // dim 8, hidden 6, 1 layer, 2 heads (head_dim 4), 1 kv head, unshared vocab 5, seq 3.
  test::write_bytes(path, synthetic(8, 6, 1, 2, 1, -5, 3));
  ModelFiles m = read_llama2c(path);
  EXPECT_FALSE(m.config.tie_word_embeddings);
  EXPECT_EQ(m.config.vocab_size, 5);
  ASSERT_TRUE(m.tensors.count("lm_head.weight"));
  const Tensor& head = m.tensors.at("lm_head.weight");
  EXPECT_EQ(head.shape(), (Shape{5, 8}));
  // Layout: embed 40, rms_att 8, wq 64 (starts at 48), wk 32 (starts at 112), wv 32, wo 64,
  // rms_ffn 8, w1 48 (at 248), w2 48, w3 48, rms_final 8 (at 392), freq_cis 3*4, wcls at 412.
  EXPECT_EQ(head.item(0), 412.0);
  EXPECT_EQ(m.tensors.at("model.norm.weight").item(0), 392.0);
  EXPECT_EQ(m.tensors.at("model.layers.0.mlp.gate_proj.weight").item(0), 248.0);
  EXPECT_EQ(m.tensors.at("model.layers.0.mlp.down_proj.weight").item(0), 296.0);
  EXPECT_EQ(m.tensors.at("model.layers.0.mlp.down_proj.weight").shape(), (Shape{8, 6}));
  EXPECT_EQ(m.tensors.at("model.layers.0.mlp.up_proj.weight").item(0), 344.0);
  // q rows per head: llama2.c order (0,1,2,3) = pairs (0,1),(2,3) -> HF order (0,2,1,3).
  const Tensor& q = m.tensors.at("model.layers.0.self_attn.q_proj.weight");
  const int src_rows_q[8] = {0, 2, 1, 3, 4, 6, 5, 7};
  for (int r = 0; r < 8; ++r)
    for (int c = 0; c < 8; ++c) EXPECT_EQ(q.item(r * 8 + c), 48.0 + src_rows_q[r] * 8 + c);
  const Tensor& k = m.tensors.at("model.layers.0.self_attn.k_proj.weight");
  EXPECT_EQ(k.shape(), (Shape{4, 8}));
  const int src_rows_k[4] = {0, 2, 1, 3};
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 8; ++c) EXPECT_EQ(k.item(r * 8 + c), 112.0 + src_rows_k[r] * 8 + c);
  // v is not permuted.
  EXPECT_EQ(m.tensors.at("model.layers.0.self_attn.v_proj.weight").item(8), 144.0 + 8);
}

std::string load_error(const std::string& path) {
  try {
    read_llama2c(path);
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_EQ(m.rfind(path + ": ", 0), 0u) << "does not start with the file: " << m;
    return m;
  }
  ADD_FAILURE() << "no error";
  return "";
}

TEST(Llama2c, TruncatedFile) {
  TempDir dir;
  const std::string path = dir.file("t.bin");
  test::write_bytes(path, synthetic(8, 6, 1, 2, 1, 5, 3, 4));
  const int64_t expected = 28 + 4 * (40 + 8 + 64 + 32 + 32 + 64 + 8 + 3 * 48 + 8 + 12);
  std::string m = load_error(path);
  EXPECT_NE(m.find("file is " + std::to_string(expected - 4) + " bytes"), std::string::npos) << m;
  EXPECT_NE(m.find("implies " + std::to_string(expected) + " bytes (truncated file)"),
            std::string::npos)
      << m;
  test::write_bytes(path, synthetic(8, 6, 1, 2, 1, 5, 3) + "xxxx");
  EXPECT_NE(load_error(path).find("trailing bytes"), std::string::npos);
  test::write_bytes(path, "abc");
  EXPECT_NE(load_error(path).find("too short for a llama2.c header"), std::string::npos);
}

TEST(Llama2c, TruncatedRealCheckpoint) {
  HONE_REQUIRE_SHARED(bin, "models/stories260K/stories260K.bin");
  TempDir dir;
  const std::string path = dir.file("stories260K.bin");
  std::string bytes = test::read_bytes(bin);
  test::write_bytes(path, bytes.substr(0, bytes.size() / 2));
  std::string m = load_error(path);
  EXPECT_NE(m.find("file is 528270 bytes"), std::string::npos) << m;
  EXPECT_NE(m.find("implies 1056540 bytes (truncated file)"), std::string::npos) << m;
}

TEST(Llama2c, BadHeader) {
  TempDir dir;
  const std::string path = dir.file("h.bin");
  test::write_bytes(path, synthetic(8, 6, 1, 3, 1, 5, 3));
  EXPECT_NE(load_error(path).find("n_heads 3 does not divide dim 8"), std::string::npos);
  test::write_bytes(path, synthetic(8, 6, 1, 4, 3, 5, 3));
  EXPECT_NE(load_error(path).find("n_kv_heads 3 does not divide n_heads 4"), std::string::npos);
  test::write_bytes(path, synthetic(8, 6, 0, 2, 1, 5, 3));
  EXPECT_NE(load_error(path).find("n_layers = 0 is out of range"), std::string::npos);
}

}  // namespace
}  // namespace hone
