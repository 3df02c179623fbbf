// Transformer::loss with the fused, chunked LM head + cross-entropy (forced on here): its loss and
// LoRA gradients equal the unfused cross_entropy(forward(...)) on small random models — f32, f64, a
// bf16 and a Q8_0 base, tied embeddings, ignored targets and packed segments.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "lora/lora.h"
#include "model/random_weights.h"
#include "tiny_model.h"

using namespace hone;

namespace {

ModelConfig tiny_config(bool tied) {
  // vocab: odd, and more than one 256-row chunk of tokens below
  ModelConfig c = test::tiny_model({.vocab = 301, .max_positions = 512});
  c.tie_word_embeddings = tied;
  return c;
}

struct Pass {
  double loss;
  Tensor grads;
};

// One backward through model.loss (fused) or cross_entropy(model.forward) (unfused).
Pass run(const Transformer& m, LoraAdapters& ad, const std::vector<int32_t>& ids,
         const std::vector<int32_t>& tg, int64_t batch, int64_t seq, bool fused,
         const std::vector<int32_t>* seg = nullptr) {
  ad.zero_grad();
  Tape tape;
  Var loss = fused ? m.loss(&tape, ids, tg, batch, seq, seg)
                   : cross_entropy(&tape, m.forward(&tape, ids, batch, seq, seg), tg);
  tape.backward(loss);
  return {loss.value().item(), ad.grads().clone()};
}

double rel_diff(const Tensor& a, const Tensor& b) {
  double m = 0, s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    m = std::max(m, std::abs(a.item(i) - b.item(i)));
    s = std::max(s, std::abs(b.item(i)));
  }
  return s > 0 ? m / s : m;
}

}  // namespace

TEST(LmHeadLossModel, LossAndLoraGradientsEqualUnfused) {
  for (bool tied : {false, true})
    for (DType dt : {DType::F32, DType::F64, DType::BF16, DType::Q8_0}) {
      ModelConfig cfg = tiny_config(tied);
      Transformer m(cfg, random_weights(cfg, 7), dt);
      m.set_fused_loss_bytes(0);  // small logits: force the fused path under test
      LoraConfig lc;
      lc.targets = {"all-linear"};
      lc.rank = 4;
      LoraAdapters ad(m, lc);
      // Non-zero B so every adapter gets a gradient.
      Tensor& v = ad.values();
      for (int64_t i = 0; i < v.numel(); ++i) {
        const double x = 0.02 * static_cast<double>(static_cast<int>(i % 11) - 5);
        if (v.dtype() == DType::F64)
          v.data<double>()[i] = x;
        else
          v.data<float>()[i] = static_cast<float>(x);
      }
      const int64_t batch = 2, seq = 150;  // 300 rows: two chunks
      std::vector<int32_t> ids(batch * seq), tg(batch * seq);
      for (int64_t i = 0; i < batch * seq; ++i) {
        ids[i] = static_cast<int32_t>((i * 37 + 11) % cfg.vocab_size);
        tg[i] = i % 5 == 0 ? -100 : static_cast<int32_t>((i * 53 + 3) % cfg.vocab_size);
      }
      const std::string at = std::string(dtype_name(dt)) + (tied ? " tied" : "");
      const double tol = dt == DType::F64 ? 1e-12 : 1e-6;
      Pass a = run(m, ad, ids, tg, batch, seq, true), b = run(m, ad, ids, tg, batch, seq, false);
      EXPECT_LE(std::abs(a.loss - b.loss), tol * std::abs(b.loss)) << at;
      EXPECT_LT(rel_diff(a.grads, b.grads), tol) << at;
      EXPECT_GT(rel_diff(b.grads, Tensor::zeros(b.grads.dtype(), b.grads.shape())), 0.0) << at;
      // Packed: two examples in one row of 300.
      std::vector<int32_t> seg(batch * seq);
      for (int64_t i = 0; i < batch * seq; ++i) seg[i] = i < 120 ? 0 : 120;
      a = run(m, ad, ids, tg, 1, batch * seq, true, &seg);
      b = run(m, ad, ids, tg, 1, batch * seq, false, &seg);
      EXPECT_LE(std::abs(a.loss - b.loss), tol * std::abs(b.loss)) << at << " packed";
      EXPECT_LT(rel_diff(a.grads, b.grads), tol) << at << " packed";
    }
}

TEST(LmHeadLossModel, BadInputsStillThrow) {
  ModelConfig cfg = tiny_config(false);
  Transformer m(cfg, random_weights(cfg, 8));
  EXPECT_THROW(m.loss(nullptr, {1, 2, 3}, {1, 2, 3}, 2, 2), Error);
  EXPECT_THROW(m.loss(nullptr, {1, 2, 999, 4}, {1, 2, 3, 4}, 2, 2), Error);
  EXPECT_THROW(m.loss(nullptr, {1, 2, 3, 4}, {1, 2, 3}, 2, 2), Error);
}
