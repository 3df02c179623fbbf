// A quantized frozen base (QLoRA on a CPU): Transformer(cfg, tensors, Q8_0 / Q4_0) stores the
// projections and the embedding as blocks, keeps rows that are not whole blocks in BF16, stays
// close to the f32 model, trains LoRA adapters, and shrinks the resident base as expected.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "lora/lora.h"
#include "model/random_weights.h"
#include "model/shapes.h"

using namespace hone;

namespace {

// Every projection row a multiple of 32 except down_proj's (intermediate 80), so both the
// quantized path and the BF16 fallback run.
ModelConfig quant_config() {
  ModelConfig c;
  c.hidden_size = 64;
  c.intermediate_size = 80;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.vocab_size = 96;
  c.max_position_embeddings = 64;
  return c;
}

std::vector<int32_t> some_ids(size_t n, int32_t vocab) {
  std::vector<int32_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>((i * 7 + 3) % vocab);
  return ids;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(a.item(i) - b.item(i)));
  return m;
}

}  // namespace

TEST(QuantBase, ProjectionsAndEmbeddingAreStoredQuantized) {
  ModelConfig cfg = quant_config();
  auto w = random_weights(cfg, 3);
  for (DType t : {DType::Q8_0, DType::Q4_0}) {
    Transformer m(cfg, w, t);
    EXPECT_EQ(m.compute_dtype(), DType::F32);
    for (const NamedLinear& nl : m.linears()) {
      const DType want = nl.kind == "down_proj" ? DType::BF16 : t;  // rows of 80: not blocks
      EXPECT_EQ((*nl.slot)->weight().dtype(), want) << nl.name;
      EXPECT_FALSE((*nl.slot)->weight().requires_grad()) << nl.name;
    }
    EXPECT_EQ(m.blocks()[0].input_norm.dtype(), DType::F32);
  }
}

TEST(QuantBase, LogitsStayCloseToF32) {
  ModelConfig cfg = quant_config();
  cfg.intermediate_size = 96;  // all weights quantized
  auto w = random_weights(cfg, 5);
  Transformer f32(cfg, w, DType::F32);
  auto ids = some_ids(16, static_cast<int32_t>(cfg.vocab_size));
  Tensor ref = f32.forward(nullptr, ids, 2, 8).value();
  double scale = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) scale = std::max(scale, std::fabs(ref.item(i)));
  double dev[3];
  const DType types[3] = {DType::BF16, DType::Q8_0, DType::Q4_0};
  for (int k = 0; k < 3; ++k) {
    Transformer m(cfg, w, types[k]);
    dev[k] = max_abs_diff(ref, m.forward(nullptr, ids, 2, 8).value());
    std::printf("max |logit - f32 logit| with a %s base: %.3g (max |logit| %.3g)\n",
                dtype_name(types[k]), dev[k], scale);
  }
  EXPECT_GT(dev[1], 0.0);
  EXPECT_LT(dev[0], 0.02 * scale);
  EXPECT_LT(dev[1], 0.02 * scale);  // ~8 bits per value, like bf16
  EXPECT_LT(dev[2], 0.25 * scale);  // 4 bits: an order of magnitude coarser
  EXPECT_GT(dev[2], dev[1]);
}

TEST(QuantBase, LoraGetsGradientsOnAQuantizedBaseAndTheBaseNone) {
  ModelConfig cfg = quant_config();
  Transformer m(cfg, random_weights(cfg, 7), DType::Q4_0);
  LoraConfig lc;
  lc.rank = 4;
  lc.alpha = 8;
  lc.targets = {"all-linear"};  // down_proj (BF16 fallback) too
  LoraAdapters ad(m, lc);
  auto ids = some_ids(16, static_cast<int32_t>(cfg.vocab_size));
  std::vector<int32_t> targets(ids.begin() + 1, ids.end());
  targets.push_back(0);
  Tape t;
  Var loss = m.loss(&t, ids, targets, 2, 8);
  EXPECT_TRUE(std::isfinite(loss.value().item()));
  t.backward(loss);
  double gsum = 0;
  for (int64_t i = 0; i < ad.grads().numel(); ++i) {
    ASSERT_TRUE(std::isfinite(ad.grads().item(i)));
    gsum += std::fabs(ad.grads().item(i));
  }
  EXPECT_GT(gsum, 0.0);  // B starts at zero, so these are B's gradients
  for (const NamedLinear& nl : m.linears())
    EXPECT_FALSE((*nl.slot)->weight().has_grad()) << nl.name;
}

TEST(QuantBase, ResidentSizeOfASmolLM2ShapedBase) {
  // SmolLM2-135M's shape (tied embeddings): what the frozen base occupies at each storage dtype.
  const ModelConfig c = model_shape("smollm2-135m");
  auto w = random_weights(c, 1);
  double mib[5];
  const DType types[5] = {DType::F32, DType::BF16, DType::F16, DType::Q8_0, DType::Q4_0};
  for (int k = 0; k < 5; ++k) {
    Transformer m(c, w, types[k]);
    mib[k] = static_cast<double>(m.nbytes()) / (1 << 20);
    std::printf("SmolLM2-135M-shaped base (%lld params) as %s: %.1f MiB\n",
                static_cast<long long>(m.num_parameters()), dtype_name(types[k]), mib[k]);
  }
  // Norms stay f32 (a few KB), so the ratios are those of the storage formats: 2/4, 34/128, 18/128.
  EXPECT_NEAR(mib[1] / mib[0], 0.5, 0.001);
  EXPECT_NEAR(mib[3] / mib[0], 34.0 / 128, 0.001);
  EXPECT_NEAR(mib[4] / mib[0], 18.0 / 128, 0.001);
}
