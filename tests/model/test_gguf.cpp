// GGUF: stories260K.gguf against stories260K.bin (tensors, logits, vocabulary), export round
// trips in every type, llama.cpp's q/k order, and the writer's metadata.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "autograd/kernels/quant.h"
#include "common.h"
#include "model/io/gguf.h"
#include "model/io/gguf_model.h"
#include "model/io/model_files.h"
#include "model/random_weights.h"
#include "model/sampling.h"
#include "model/transformer.h"
#include "tmpdir.h"

namespace hone {
namespace {

using test::TempDir;

bool same_bits(const Tensor& a, const Tensor& b) {
  Tensor x = a.to(DType::F32), y = b.to(DType::F32);
  return x.shape() == y.shape() && std::memcmp(x.raw(), y.raw(), x.nbytes()) == 0;
}

Tensor logits(const ModelConfig& c, const std::map<std::string, Tensor>& t,
              const std::vector<int32_t>& ids) {
  Transformer m(c, t);
  return m.forward(nullptr, ids, 1, static_cast<int64_t>(ids.size())).value();
}

const std::vector<int32_t> kPrompt = {1, 403, 407, 261, 378, 432, 383, 286};

TEST(Gguf, Stories260KStructure) {
  HONE_REQUIRE_SHARED(path, "models/stories260K/stories260K.gguf");
  GgufFile f = read_gguf(path);
  EXPECT_EQ(f.version, 3u);
  EXPECT_EQ(f.metadata.size(), 19u);
  EXPECT_EQ(f.tensors.size(), 48u);
  EXPECT_EQ(f.alignment, 32u);
  for (const auto& t : f.tensors) EXPECT_EQ(t.type, GgmlType::F32) << t.name;
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("llama.context_length"), 2048);
  EXPECT_EQ(f.get_int("llama.rope.dimension_count"), 8);
  EXPECT_EQ(f.get_int("llama.feed_forward_length"), 172);
  // ne0 is the input dim: token_embd is [64, 512] in GGUF order, (512, 64) row-major.
  ASSERT_TRUE(f.tensor("token_embd.weight"));
  EXPECT_EQ(f.tensor("token_embd.weight")->ne, (std::vector<int64_t>{64, 512}));
  EXPECT_EQ(f.tensor("blk.0.ffn_down.weight")->shape(), (Shape{64, 172}));
  EXPECT_EQ(f.tensor("blk.0.attn_k.weight")->shape(), (Shape{32, 64}));
}

TEST(Gguf, Stories260KEqualsTheLlama2cBinTensorsAndLogits) {
  HONE_REQUIRE_SHARED(gguf, "models/stories260K/stories260K.gguf");
  HONE_REQUIRE_SHARED(bin, "models/stories260K/stories260K.bin");
  ModelFiles g = load_model_files(gguf);
  ModelFiles b = load_model_files(bin);
  EXPECT_EQ(g.format, "gguf");
  EXPECT_EQ(g.files, std::vector<std::string>{gguf});
  const ModelConfig &gc = g.config, &bc = b.config;
  EXPECT_EQ(gc.model_type, "llama");
  EXPECT_EQ(gc.architecture, "LlamaForCausalLM");
  EXPECT_EQ(gc.hidden_size, bc.hidden_size);
  EXPECT_EQ(gc.intermediate_size, bc.intermediate_size);
  EXPECT_EQ(gc.num_layers, bc.num_layers);
  EXPECT_EQ(gc.num_heads, bc.num_heads);
  EXPECT_EQ(gc.num_kv_heads, bc.num_kv_heads);
  EXPECT_EQ(gc.head_dim, bc.head_dim);
  EXPECT_EQ(gc.vocab_size, bc.vocab_size);
  EXPECT_EQ(gc.rms_norm_eps, bc.rms_norm_eps);  // the f32 1e-5 reads back as 1e-5 exactly
  EXPECT_EQ(gc.rope_theta, bc.rope_theta);
  EXPECT_EQ(gc.bos_token_id, 1);
  EXPECT_EQ(gc.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_EQ(gc.max_position_embeddings, 2048);
  EXPECT_FALSE(gc.tie_word_embeddings);  // the GGUF carries output.weight, a copy
  EXPECT_TRUE(bc.tie_word_embeddings);
  for (const auto& [name, t] : b.tensors) {
    ASSERT_TRUE(g.tensors.count(name)) << name;
    EXPECT_TRUE(same_bits(g.tensors.at(name), t)) << name;
  }
  EXPECT_TRUE(same_bits(g.tensors.at("lm_head.weight"), b.tensors.at("model.embed_tokens.weight")));
  EXPECT_EQ(g.tensors.size(), b.tensors.size() + 1);

  Tensor lg = logits(gc, g.tensors, kPrompt), lb = logits(bc, b.tensors, kPrompt);
  EXPECT_TRUE(same_bits(lg, lb));
}

// The README's golden greedy continuation of "Once upon a time" (run.c semantics), from the GGUF.
TEST(Gguf, Stories260KGreedyTextFromTheGguf) {
  HONE_REQUIRE_SHARED(gguf, "models/stories260K/stories260K.gguf");
  ModelFiles g = load_model_files(gguf);
  Transformer m(g.config, g.tensors);
  KVCache cache = m.make_cache(64);
  std::vector<int32_t> next = {1, 403, 407, 261, 378}, out;
  for (int step = 0; step < 40; ++step) {
    Tensor l = m.forward_cached(cache, next);
    const int64_t v = l.dim(1);
    next = {argmax_token(l.data<float>() + (l.dim(0) - 1) * v, v)};
    out.push_back(next[0]);
  }
  const std::vector<int32_t> want = {432, 383, 286, 261, 376, 298, 315, 421, 395, 317,
                                     426, 338, 401, 396, 267, 337, 410, 408, 419, 292,
                                     411, 322, 265, 282, 295, 433, 426, 385, 328, 432,
                                     358, 394, 261, 370, 432, 352, 266, 268, 388, 426};
  EXPECT_EQ(out, want);
}

TEST(Gguf, NonModelFilesAreRefusedByName) {
  TempDir dir;
  auto one = [&](const std::string& file, GgufMetadata md) {
    const std::string p = dir.file(file);
    write_gguf(
        p, md,
        {{"token_embd.weight", Tensor::from_f32(std::vector<float>(8, 0), {2, 4}), GgmlType::F32}});
    try {
      load_model_files(p);
      ADD_FAILURE() << file;
      return std::string();
    } catch (const Error& e) {
      return std::string(e.what());
    }
  };
  EXPECT_EQ(
      one("gemma.gguf", {{"general.architecture", GgufValue::str("gemma")}}),
      dir.file("gemma.gguf") +
          ": general.architecture \"gemma\" is not supported (supported: llama, qwen2, qwen3)");
  EXPECT_EQ(one("adapter.gguf", {{"general.architecture", GgufValue::str("llama")},
                                 {"general.type", GgufValue::str("adapter")}}),
            dir.file("adapter.gguf") + ": general.type is \"adapter\", not a model");
  EXPECT_EQ(one("noarch.gguf", {}),
            dir.file("noarch.gguf") + ": missing metadata key \"general.architecture\"");
}

// tok512.bin: int32 max_len, then per token f32 score, int32 length, bytes ("▁" as a space).
TEST(Gguf, Stories260KVocabularyEqualsTok512Bin) {
  HONE_REQUIRE_SHARED(gguf, "models/stories260K/stories260K.gguf");
  HONE_REQUIRE_SHARED(tok, "models/stories260K/tok512.bin");
  GgufTokenizerData t = read_gguf_tokenizer(gguf);
  EXPECT_EQ(t.model, "llama");
  EXPECT_EQ(t.bos_id, 1);
  EXPECT_EQ(t.eos_id, 2);
  ASSERT_EQ(t.tokens.size(), 512u);
  ASSERT_EQ(t.scores.size(), 512u);
  ASSERT_EQ(t.token_types.size(), 512u);
  const std::string bytes = test::read_bytes(tok);
  size_t pos = 4;
  for (size_t i = 0; i < 512; ++i) {
    float score;
    int32_t len;
    ASSERT_LE(pos + 8, bytes.size());
    std::memcpy(&score, bytes.data() + pos, 4);
    std::memcpy(&len, bytes.data() + pos + 4, 4);
    std::string piece = bytes.substr(pos + 8, static_cast<size_t>(len));
    pos += 8 + static_cast<size_t>(len);
    // sentencepiece's "▁" is a space in llama2.c; BOS/EOS are spelled "\n<s>\n", "\n</s>\n".
    std::string g;
    if (i == 1 || i == 2) g.push_back('\n');
    for (size_t k = 0; k < t.tokens[i].size(); ++k) {
      if (t.tokens[i].compare(k, 3, "\xe2\x96\x81") == 0) {
        g.push_back(' ');
        k += 2;
      } else {
        g.push_back(t.tokens[i][k]);
      }
    }
    if (i == 1 || i == 2) g.push_back('\n');
    EXPECT_EQ(g, piece) << i;
    EXPECT_EQ(t.scores[i], score) << i;
  }
  EXPECT_EQ(pos, bytes.size());
  EXPECT_EQ(t.token_types[0], 2);  // unknown
  EXPECT_EQ(t.token_types[1], 3);  // control
  EXPECT_EQ(t.token_types[3], 6);  // byte <0x00>
  EXPECT_EQ(t.token_types[300], 1);
}

// hone's export of the .bin must store q/k exactly as llama.cpp's converter did.
TEST(Gguf, ExportMatchesLlamaCppQkOrderAndTensorsOfStories260K) {
  HONE_REQUIRE_SHARED(gguf, "models/stories260K/stories260K.gguf");
  HONE_REQUIRE_SHARED(bin, "models/stories260K/stories260K.bin");
  TempDir dir;
  ModelFiles b = load_model_files(bin);
  GgufTokenizerData tok = read_gguf_tokenizer(gguf);
  const std::string out = dir.file("stories.gguf");
  write_gguf_model(out, b.config, b.tensors, GgmlType::F32, &tok, "stories260K");
  GgufFile ours = read_gguf(out), theirs = read_gguf(gguf);
  for (const auto& t : ours.tensors) {
    const GgufTensorInfo* o = theirs.tensor(t.name);
    ASSERT_TRUE(o) << t.name;
    EXPECT_EQ(t.ne, o->ne) << t.name;
    ASSERT_EQ(t.nbytes, o->nbytes) << t.name;
    EXPECT_EQ(std::memcmp(t.data, o->data, t.nbytes), 0) << t.name;
  }
  EXPECT_EQ(ours.tensors.size(), theirs.tensors.size() - 1);  // tied: no output.weight
  EXPECT_FALSE(ours.tensor("output.weight"));
  for (const char* key : {"llama.context_length", "llama.embedding_length", "llama.block_count",
                          "llama.feed_forward_length", "llama.attention.head_count",
                          "llama.attention.head_count_kv", "llama.rope.dimension_count"})
    EXPECT_EQ(ours.get_int(key),
              key == std::string("llama.context_length") ? 512 : theirs.get_int(key))
        << key;
  for (const char* key : {"llama.attention.layer_norm_rms_epsilon", "llama.rope.freq_base"}) {
    EXPECT_EQ(ours.find(key)->type, GgufValueType::F32) << key;
    EXPECT_EQ(ours.get_float(key), theirs.get_float(key, 10000.0)) << key;  // freq_base absent
  }
  EXPECT_EQ(ours.get_int("general.file_type"), 0);
  EXPECT_EQ(ours.get_string("general.name"), "stories260K");
  EXPECT_EQ(ours.find("tokenizer.ggml.bos_token_id")->type, GgufValueType::U32);
  GgufTokenizerData back = gguf_tokenizer(ours);
  EXPECT_EQ(back.tokens, tok.tokens);
  EXPECT_EQ(back.scores, tok.scores);
  EXPECT_EQ(back.token_types, tok.token_types);
  EXPECT_EQ(back.bos_id, 1);
  EXPECT_EQ(back.eos_id, 2);

  // Import of the export: bitwise the .bin's tensors, identical logits.
  ModelFiles r = load_model_files(out);
  EXPECT_TRUE(r.config.tie_word_embeddings);
  EXPECT_EQ(r.tensors.size(), b.tensors.size());
  for (const auto& [name, t] : b.tensors) EXPECT_TRUE(same_bits(r.tensors.at(name), t)) << name;
  EXPECT_TRUE(
      same_bits(logits(r.config, r.tensors, kPrompt), logits(b.config, b.tensors, kPrompt)));
}

ModelConfig tiny(const std::string& family) {
  ModelConfig c;
  c.model_type = family;
  c.architecture = family == "qwen2"   ? "Qwen2ForCausalLM"
                   : family == "qwen3" ? "Qwen3ForCausalLM"
                                       : "LlamaForCausalLM";
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = family == "qwen3" ? 32 : 16;  // qwen3: explicit head_dim != hidden/heads
  c.vocab_size = 40;
  c.max_position_embeddings = 128;
  c.rope_theta = family == "llama" ? 500000.0 : 1000000.0;
  c.rms_norm_eps = family == "llama" ? 1e-5 : 1e-6;
  c.tie_word_embeddings = family != "llama";
  c.attention_bias = family == "qwen2";
  c.qk_norm = family == "qwen3";
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  c.validate("tiny");
  return c;
}

class GgufFamilies : public ::testing::TestWithParam<const char*> {};

TEST_P(GgufFamilies, F32RoundTripIsExact) {
  TempDir dir;
  ModelConfig c = tiny(GetParam());
  auto w = random_weights(c, 7);
  const std::string out = dir.file("m.gguf");
  write_gguf_model(out, c, w, GgmlType::F32, nullptr);
  GgufFile f = read_gguf(out);
  EXPECT_EQ(f.get_string("general.architecture"), GetParam());
  if (c.model_type == "qwen3") {
    EXPECT_EQ(f.get_int("qwen3.attention.key_length"), 32);
    EXPECT_TRUE(f.tensor("blk.1.attn_k_norm.weight"));
  }
  if (c.model_type == "qwen2") {
    EXPECT_TRUE(f.tensor("blk.0.attn_q.bias"));
  }
  // qwen2/qwen3 are NEOX RoPE in llama.cpp: q/k stored as in HF; llama is permuted.
  const Tensor raw_q = gguf_tensor(f, *f.tensor("blk.0.attn_q.weight"));
  const Tensor& hf_q = w.at("model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(same_bits(raw_q, hf_q), c.model_type != "llama");
  if (c.model_type == "llama") {
    // GGUF row 2i+t of head h is HF row t*D/2+i (D = 16): row 1 <- HF row 8, row 18 <- 17.
    const int64_t cols = c.hidden_size;
    EXPECT_EQ(std::memcmp(raw_q.data<float>() + 1 * cols, hf_q.data<float>() + 8 * cols, cols * 4),
              0);
    EXPECT_EQ(
        std::memcmp(raw_q.data<float>() + 18 * cols, hf_q.data<float>() + 17 * cols, cols * 4), 0);
  }
  ModelFiles r = load_model_files(out);
  EXPECT_EQ(r.config.model_type, c.model_type);
  EXPECT_EQ(r.config.architecture, c.architecture);
  EXPECT_EQ(r.config.head_dim, c.head_dim);
  EXPECT_EQ(r.config.num_kv_heads, c.num_kv_heads);
  EXPECT_EQ(r.config.rope_theta, c.rope_theta);
  EXPECT_EQ(r.config.rms_norm_eps, c.rms_norm_eps);
  EXPECT_EQ(r.config.tie_word_embeddings, c.tie_word_embeddings);
  EXPECT_EQ(r.config.attention_bias, c.attention_bias);
  EXPECT_EQ(r.config.qk_norm, c.qk_norm);
  EXPECT_EQ(r.config.max_position_embeddings, c.max_position_embeddings);
  for (const auto& [name, shape] : expected_tensor_shapes(c))
    EXPECT_TRUE(same_bits(r.tensors.at(name), w.at(name))) << name;
  const std::vector<int32_t> ids = {1, 5, 9, 33, 2, 17};
  EXPECT_TRUE(same_bits(logits(r.config, r.tensors, ids), logits(c, w, ids)));
}

// f16/bf16: every matrix equals the source rounded once to the type; q8_0: every value within
// half a quantization step of its block (plus the f16 rounding of the scale).
TEST_P(GgufFamilies, ReducedPrecisionExportsReimportWithinTheTypesPrecision) {
  TempDir dir;
  ModelConfig c = tiny(GetParam());
  c.intermediate_size = 88;  // down_proj rows of 88: not a multiple of 32 -> F16 under q8_0
  auto w = random_weights(c, 11);
  for (GgmlType type : {GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0}) {
    SCOPED_TRACE(ggml_type_name(type));
    const std::string out = dir.file(std::string("m_") + ggml_type_name(type) + ".gguf");
    write_gguf_model(out, c, w, type, nullptr);
    GgufFile f = read_gguf(out);
    EXPECT_EQ(f.get_int("general.file_type"), type == GgmlType::F16    ? 1
                                              : type == GgmlType::BF16 ? 32
                                                                       : 7);
    EXPECT_EQ(f.tensor("blk.0.attn_norm.weight")->type, GgmlType::F32);
    EXPECT_EQ(f.tensor("blk.0.ffn_down.weight")->type,
              type == GgmlType::Q8_0 ? GgmlType::F16 : type);
    EXPECT_EQ(f.tensor("blk.0.ffn_up.weight")->type, type);
    ModelFiles r = load_model_files(out);
    for (const auto& [name, shape] : expected_tensor_shapes(c)) {
      const Tensor got = r.tensors.at(name).to(DType::F32);
      const Tensor& src = w.at(name);
      const GgufTensorInfo* info = f.tensor(gguf_name_from_hf(name));
      ASSERT_TRUE(info) << name;
      if (info->type == GgmlType::F32) {
        EXPECT_TRUE(same_bits(got, src)) << name;
      } else if (info->type == GgmlType::F16 || info->type == GgmlType::BF16) {
        const DType d = info->type == GgmlType::F16 ? DType::F16 : DType::BF16;
        EXPECT_TRUE(same_bits(got, src.to(d))) << name;
      } else {
        ASSERT_EQ(info->type, GgmlType::Q8_0);
        const float* x = src.data<float>();
        const float* y = got.data<float>();
        for (int64_t b0 = 0; b0 < src.numel(); b0 += 32) {
          float amax = 0;
          for (int k = 0; k < 32; ++k) amax = std::max(amax, std::fabs(x[b0 + k]));
          const float d = amax / 127, d16 = f16_to_f32(f32_to_f16(d));
          const float bound = 0.5f * d16 + 127 * std::fabs(d - d16) + 1e-7f;
          for (int k = 0; k < 32; ++k)
            ASSERT_LE(std::fabs(x[b0 + k] - y[b0 + k]), bound) << name << " @" << b0 + k;
        }
      }
    }
    const std::vector<int32_t> ids = {1, 5, 9, 33};
    Tensor la = logits(r.config, r.tensors, ids), lb = logits(c, w, ids);
    double max_diff = 0;
    for (int64_t i = 0; i < la.numel(); ++i)
      max_diff = std::max(max_diff, std::fabs(la.item(i) - lb.item(i)));
    EXPECT_LT(max_diff, type == GgmlType::F16 ? 0.01 : 0.1);
  }
}

INSTANTIATE_TEST_SUITE_P(All, GgufFamilies, ::testing::Values("llama", "qwen2", "qwen3"));

TEST(Gguf, Q8_0MatchesTheReferenceRule) {
  std::vector<float> x(64);
  for (int i = 0; i < 64; ++i) x[i] = std::sin(0.37f * i) * (i < 32 ? 1.0f : 0.01f);
  x[40] = 0;
  std::vector<uint8_t> q(68);
  quantize_q8_0(x.data(), q.data(), 64);
  std::vector<float> y(64);
  dequantize_q8_0(q.data(), y.data(), 64);
  for (int b = 0; b < 2; ++b) {
    float amax = 0;
    for (int k = 0; k < 32; ++k) amax = std::max(amax, std::fabs(x[b * 32 + k]));
    uint16_t dh;
    std::memcpy(&dh, q.data() + b * 34, 2);
    EXPECT_EQ(dh, f32_to_f16(amax / 127));
    for (int k = 0; k < 32; ++k) {
      const int8_t qi = static_cast<int8_t>(q[b * 34 + 2 + k]);
      EXPECT_EQ(qi, static_cast<int8_t>(std::round(x[b * 32 + k] * (127 / amax))));
      EXPECT_EQ(y[b * 32 + k], qi * f16_to_f32(dh));
    }
  }
  // An all-zero block has scale 0 and decodes to zeros.
  std::vector<float> z(32, 0.0f), zr(32, 1.0f);
  quantize_q8_0(z.data(), q.data(), 32);
  dequantize_q8_0(q.data(), zr.data(), 32);
  for (float v : zr) EXPECT_EQ(v, 0.0f);
}

TEST(Gguf, WriterRoundTripsEveryValueType) {
  TempDir dir;
  GgufMetadata md;
  GgufValue v;
  v.type = GgufValueType::U8, v.u = 200, md.emplace_back("t.u8", v);
  v = {}, v.type = GgufValueType::I8, v.i = -100, md.emplace_back("t.i8", v);
  v = {}, v.type = GgufValueType::U16, v.u = 60000, md.emplace_back("t.u16", v);
  v = {}, v.type = GgufValueType::I16, v.i = -30000, md.emplace_back("t.i16", v);
  md.emplace_back("t.u32", GgufValue::u32(4000000000u));
  md.emplace_back("t.i32", GgufValue::i32(-2000000000));
  md.emplace_back("t.u64", GgufValue::u64(1ull << 60));
  v = {}, v.type = GgufValueType::I64, v.i = -(1ll << 60), md.emplace_back("t.i64", v);
  md.emplace_back("t.f32", GgufValue::f32(0.1f));
  v = {}, v.type = GgufValueType::F64, v.f = 0.1, md.emplace_back("t.f64", v);
  md.emplace_back("t.bool", GgufValue::boolean(true));
  md.emplace_back("t.str", GgufValue::str("héllo\n"));
  md.emplace_back("t.strs", GgufValue::strings({"a", "", "b c"}));
  md.emplace_back("t.nested", GgufValue::array(GgufValueType::Array,
                                               {GgufValue::i32s({1, 2}), GgufValue::i32s({})}));
  // Integers with max |x| = 127 per block: scale 1, exact in Q8_0.
  std::vector<float> q8_exact(64);
  for (int i = 0; i < 64; ++i) q8_exact[i] = static_cast<float>((i * 37) % 255 - 127);
  q8_exact[0] = -127;
  q8_exact[32] = 127;
  std::vector<GgufTensorOut> ts = {
      {"a", Tensor::from_f32({1, 2, 3}, {3}), GgmlType::F32},
      {"b", Tensor::from_f32(q8_exact, {2, 32}), GgmlType::Q8_0},
      {"c", Tensor::from_f32({1, 2, 3, 4, 5, 6}, {1, 2, 3}), GgmlType::BF16},
  };
  const std::string out = dir.file("all.gguf");
  write_gguf(out, md, ts);
  GgufFile f = read_gguf(out);
  ASSERT_EQ(f.metadata.size(), md.size());
  for (size_t i = 0; i < md.size(); ++i) {
    EXPECT_EQ(f.metadata[i].first, md[i].first);
    EXPECT_EQ(f.metadata[i].second.type, md[i].second.type) << md[i].first;
  }
  EXPECT_EQ(f.find("t.u8")->u, 200u);
  EXPECT_EQ(f.find("t.i8")->i, -100);
  EXPECT_EQ(f.find("t.u16")->u, 60000u);
  EXPECT_EQ(f.find("t.i16")->i, -30000);
  EXPECT_EQ(f.get_int("t.u32"), 4000000000ll);
  EXPECT_EQ(f.get_int("t.i32"), -2000000000ll);
  EXPECT_EQ(f.get_int("t.u64"), 1ll << 60);
  EXPECT_EQ(f.get_int("t.i64"), -(1ll << 60));
  EXPECT_EQ(f.get_float("t.f32"), 0.1);  // shortest decimal of 0.1f
  EXPECT_EQ(f.get_float("t.f64"), 0.1);
  EXPECT_TRUE(f.get_bool("t.bool", false));
  EXPECT_EQ(f.get_string("t.str"), "héllo\n");
  ASSERT_EQ(f.find("t.strs")->items.size(), 3u);
  EXPECT_EQ(f.find("t.strs")->items[2].s, "b c");
  ASSERT_EQ(f.find("t.nested")->items.size(), 2u);
  EXPECT_EQ(f.find("t.nested")->items[0].items[1].i, 2);
  EXPECT_EQ(f.data_offset % 32, 0u);
  ASSERT_EQ(f.tensors.size(), 3u);
  for (const auto& t : f.tensors) EXPECT_EQ(t.offset % 32, 0u) << t.name;
  EXPECT_EQ(f.tensors[1].nbytes, 68u);
  EXPECT_EQ(f.tensors[2].ne, (std::vector<int64_t>{3, 2, 1}));
  EXPECT_TRUE(same_bits(gguf_tensor(f, f.tensors[1]), ts[1].values));
  EXPECT_TRUE(same_bits(gguf_tensor(f, f.tensors[2]), ts[2].values));
}

TEST(Gguf, WriterRefusesBadInputAndLeavesNoFile) {
  TempDir dir;
  const std::string out = dir.file("bad.gguf");
  auto expect_refused = [&](const GgufMetadata& md, const std::vector<GgufTensorOut>& ts,
                            const std::string& what) {
    try {
      write_gguf(out, md, ts);
      ADD_FAILURE() << "no error for " << what;
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind(out + ": ", 0), 0u) << e.what();
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(out));
    EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));
  };
  Tensor t = Tensor::from_f32(std::vector<float>(48, 1.0f), {2, 24});
  expect_refused({}, {{"x", t, GgmlType::Q8_0}}, "not a multiple of Q8_0's block size 32");
  expect_refused({}, {{std::string(64, 'n'), t, GgmlType::F32}}, "name must be 1 to 63 bytes");
  expect_refused({}, {{"x", t, GgmlType::F32}, {"x", t, GgmlType::F32}}, "duplicate tensor");
  expect_refused({{"k", GgufValue::u32(1)}, {"k", GgufValue::u32(2)}}, {}, "duplicate metadata");
  expect_refused({}, {{"x", t, GgmlType::Q4_K}}, "cannot write type Q4_K");
  expect_refused({{"k", GgufValue::array(GgufValueType::U32, {GgufValue::str("s")})}}, {},
                 "array of UINT32 holds a STRING");
}

TEST(Gguf, Llama3RopeFreqsAreWrittenAndReadBack) {
  TempDir dir;
  ModelConfig c = tiny("llama");
  auto w = random_weights(c, 3);
  const std::string out = dir.file("m.gguf");
  c.rope_scaling.type = "llama3";
  c.rope_scaling.factor = 8;
  c.rope_scaling.original_max_position_embeddings = 64;
  write_gguf_model(out, c, w, GgmlType::F32, nullptr);
  GgufFile f = read_gguf(out);
  ASSERT_TRUE(f.tensor("rope_freqs.weight"));
  const Tensor factors = gguf_tensor(f, *f.tensor("rope_freqs.weight"));
  EXPECT_EQ(factors.numel(), 8);
  EXPECT_EQ(factors.item(0), 1.0);  // highest frequency: unscaled
  EXPECT_EQ(factors.item(7), 8.0);  // lowest: divided by the factor
  // Read back as the scaling it was written from (recipes/test_gguf_export_edges.cpp checks
  // the loss and the refusals).
  const ModelFiles back = load_model_files(out);
  EXPECT_EQ(back.config.rope_scaling.type, "llama3");
  EXPECT_EQ(back.config.rope_scaling.factor, 8.0);
  EXPECT_EQ(back.config.rope_scaling.original_max_position_embeddings, 64);
}

// Q4_0 export (GGUF's q4_0 blocks, hone's own Q4_0 layout): re-imported weights equal hone's
// quantize-then-dequantize of the source bitwise, and the model still computes sensible logits.
TEST(Gguf, Q4_0ExportReimportsAsTheQuantizedWeights) {
  TempDir dir;
  ModelConfig c = tiny("llama");
  auto w = random_weights(c, 21);
  const std::string out = dir.file("m_q4.gguf");
  write_gguf_model(out, c, w, GgmlType::Q4_0, nullptr);
  GgufFile f = read_gguf(out);
  EXPECT_EQ(f.get_int("general.file_type"), 2);
  ModelFiles r = load_model_files(out);
  int checked = 0;
  for (const auto& [name, shape] : expected_tensor_shapes(c)) {
    const GgufTensorInfo* info = f.tensor(gguf_name_from_hf(name));
    ASSERT_TRUE(info) << name;
    if (info->type != GgmlType::Q4_0) continue;
    const Tensor& src = w.at(name);
    // The same rows as the file holds them (llama q/k rows are permuted in GGUF and back).
    Tensor q = Tensor::empty(DType::Q4_0, src.shape());
    kernels::quantize(src.data<float>(), q.raw(), DType::Q4_0, src.numel());
    Tensor want = Tensor::empty(DType::F32, src.shape());
    kernels::dequantize(q.raw(), DType::Q4_0, want.data<float>(), src.numel());
    EXPECT_TRUE(same_bits(r.tensors.at(name).to(DType::F32), want)) << name;
    ++checked;
  }
  EXPECT_GT(checked, 5);
  const std::vector<int32_t> ids = {1, 5, 9, 33};
  Tensor la = logits(r.config, r.tensors, ids), lb = logits(c, w, ids);
  double max_diff = 0;
  for (int64_t i = 0; i < la.numel(); ++i)
    max_diff = std::max(max_diff, std::fabs(la.item(i) - lb.item(i)));
  EXPECT_LT(max_diff, 0.5);
}

}  // namespace
}  // namespace hone
