// GGUF LoRA adapters: llama.cpp's keys, names and shapes, alpha with and without rsLoRA, B's
// q/k rows permuted for llama only, and that applying the file the way llama.cpp does
// (W_gguf + alpha/r · lora_b · lora_a) gives the GGUF export of the merged model.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "lora/gguf_lora.h"
#include "model/io/gguf_model.h"
#include "model/random_weights.h"
#include "tmpdir.h"

using namespace hone;

namespace {

ModelConfig config(const std::string& family) {
  ModelConfig c;
  c.model_type = family;
  c.architecture = family == "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM";
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.vocab_size = 20;
  c.attention_bias = family == "qwen2";
  return c;
}

void randomise(LoraAdapters& ad, uint64_t seed) {
  Rng r(seed);
  float* v = ad.values().data<float>();
  for (int64_t i = 0; i < ad.values().numel(); ++i) v[i] = static_cast<float>(r.normal() * 0.1);
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

struct Case {
  const char* family;
  bool rslora;
};

class GgufLora : public ::testing::TestWithParam<Case> {};

TEST_P(GgufLora, FileStructureAndLlamaCppSemantics) {
  const Case p = GetParam();
  test::TempDir dir;
  ModelConfig c = config(p.family);
  auto w = random_weights(c, 5);
  Transformer model(c, w);
  LoraConfig lc;
  lc.rank = 4;
  lc.alpha = 8;
  lc.rslora = p.rslora;
  lc.targets = {"q_proj", "k_proj", "v_proj", "o_proj", "down_proj"};
  LoraAdapters ad(model, lc);
  randomise(ad, 9);
  const std::string path = dir.file("adapter.gguf");
  write_gguf_lora(path, ad, c);

  GgufFile f = read_gguf(path);  // passes the strict reader
  EXPECT_EQ(f.get_string("general.architecture"), p.family);
  EXPECT_EQ(f.get_string("general.type"), "adapter");
  EXPECT_EQ(f.get_string("adapter.type"), "lora");
  ASSERT_EQ(f.find("adapter.lora.alpha")->type, GgufValueType::F32);
  // llama.cpp scales by alpha/r; rsLoRA's alpha/√r needs alpha·√r = 8·2.
  const double alpha = f.get_float("adapter.lora.alpha");
  EXPECT_EQ(alpha, p.rslora ? 16.0 : 8.0);
  EXPECT_NEAR(alpha / lc.rank, lc.scaling(), 1e-12);

  ASSERT_EQ(f.tensors.size(), 2 * ad.tensors().size());
  const bool permuted = std::string(p.family) == "llama";
  for (const LoraTensor& lt : ad.tensors()) {
    const std::string base = gguf_name_from_hf(lt.module + ".weight");
    const GgufTensorInfo* a = f.tensor(base + ".lora_a");
    const GgufTensorInfo* b = f.tensor(base + ".lora_b");
    ASSERT_TRUE(a && b) << base;
    const int64_t r = lt.a.value().dim(0), in = lt.a.value().dim(1), out = lt.b.value().dim(0);
    EXPECT_EQ(a->type, GgmlType::F32);
    // convert_lora_to_gguf's shapes; llama.cpp checks a.ne[1] == b.ne[0]
    EXPECT_EQ(a->ne, (std::vector<int64_t>{in, r})) << base;
    EXPECT_EQ(b->ne, (std::vector<int64_t>{r, out})) << base;
    EXPECT_TRUE(same_bits(gguf_tensor(f, *a), lt.a.value())) << base;
    const bool qk =
        base.find("attn_q.") != std::string::npos || base.find("attn_k.") != std::string::npos;
    const Tensor gb = gguf_tensor(f, *b);
    EXPECT_EQ(same_bits(gb, lt.b.value()), !(permuted && qk)) << base;
    if (permuted && qk) {  // GGUF row 2i+t of a head is HF row t·D/2+i (D = 8): row 1 <- row 4
      EXPECT_EQ(std::memcmp(gb.data<float>() + 1 * r, lt.b.value().data<float>() + 4 * r, r * 4),
                0);
      EXPECT_EQ(std::memcmp(gb.data<float>() + 14 * r, lt.b.value().data<float>() + 11 * r, r * 4),
                0);
    }
  }

  // What llama.cpp computes with `--lora`: W_gguf + alpha/r · lora_b·lora_a, per weight, must
  // equal the GGUF export of hone's merged weights W + s·B·A.
  auto merged = w;
  for (const LoraTensor& lt : ad.tensors()) {
    Tensor m = w.at(lt.module + ".weight").clone();
    const Tensor &A = lt.a.value(), &B = lt.b.value();
    const int64_t r = A.dim(0), in = A.dim(1), out = B.dim(0);
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = 0; i < in; ++i) {
        double s = 0;
        for (int64_t k = 0; k < r; ++k)
          s += B.data<float>()[o * r + k] * A.data<float>()[k * in + i];
        m.data<float>()[o * in + i] += static_cast<float>(lc.scaling() * s);
      }
    merged[lt.module + ".weight"] = m;
  }
  write_gguf_model(dir.file("base.gguf"), c, w, GgmlType::F32, nullptr);
  write_gguf_model(dir.file("merged.gguf"), c, merged, GgmlType::F32, nullptr);
  GgufFile base = read_gguf(dir.file("base.gguf")), mf = read_gguf(dir.file("merged.gguf"));
  for (const LoraTensor& lt : ad.tensors()) {
    const std::string n = gguf_name_from_hf(lt.module + ".weight");
    const Tensor W = gguf_tensor(base, *base.tensor(n)), M = gguf_tensor(mf, *mf.tensor(n));
    const Tensor A = gguf_tensor(f, *f.tensor(n + ".lora_a")),
                 B = gguf_tensor(f, *f.tensor(n + ".lora_b"));
    const int64_t r = A.dim(0), in = A.dim(1), out = B.dim(0);
    double worst = 0;
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = 0; i < in; ++i) {
        double s = 0;
        for (int64_t k = 0; k < r; ++k)
          s += B.data<float>()[o * r + k] * A.data<float>()[k * in + i];
        const double applied = W.data<float>()[o * in + i] + alpha / r * s;
        worst = std::max(worst, std::fabs(applied - M.data<float>()[o * in + i]));
      }
    EXPECT_LT(worst, 1e-6) << n;
  }
}

INSTANTIATE_TEST_SUITE_P(All, GgufLora,
                         ::testing::Values(Case{"llama", false}, Case{"llama", true},
                                           Case{"qwen2", false}, Case{"qwen2", true}),
                         [](const auto& param_info) {
                           return std::string(param_info.param.family) +
                                  (param_info.param.rslora ? "_rslora" : "_plain");
                         });

}  // namespace
