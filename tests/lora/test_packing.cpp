// Packing without cross-contamination: an example's loss, logits and LoRA gradients are the
// same packed with others (block-diagonal attention, positions restarting) as alone.
#include <gtest/gtest.h>

#include <cmath>

#include "lora/lora.h"
#include "model/random_weights.h"
#include "tiny_model.h"

using namespace hone;

namespace {

TEST(Packing, AnExampleTrainsTheSamePackedAsAlone) {
  const ModelConfig cfg = test::tiny_model({.intermediate = 48, .vocab = 50});
  Transformer model(cfg, random_weights(cfg, 3));
  LoraConfig lc;
  lc.rank = 4;
  lc.targets = {"all-linear"};
  LoraAdapters ad(model, lc);
  Rng r(9);
  float* v = ad.values().data<float>();
  for (int64_t i = 0; i < ad.values().numel(); ++i) v[i] = static_cast<float>(r.normal() * 0.1);

  const std::vector<int32_t> lens = {6, 9, 4};
  std::vector<std::vector<int32_t>> ids(3), tg(3);
  for (size_t e = 0; e < 3; ++e)
    for (int32_t i = 0; i < lens[e]; ++i) {
      ids[e].push_back(static_cast<int32_t>(r.next_u64() % 50));
      tg[e].push_back(static_cast<int32_t>(r.next_u64() % 50));
    }
  std::vector<int32_t> packed_ids, starts;
  for (size_t e = 0; e < 3; ++e) {
    const int32_t at = static_cast<int32_t>(packed_ids.size());
    packed_ids.insert(packed_ids.end(), ids[e].begin(), ids[e].end());
    starts.insert(starts.end(), ids[e].size(), at);
  }
  const int64_t T = static_cast<int64_t>(packed_ids.size());

  for (size_t e = 0; e < 3; ++e) {
    SCOPED_TRACE("example " + std::to_string(e));
    // Alone.
    Tape t1;
    ad.zero_grad();
    Var alone = model.loss(&t1, ids[e], tg[e], 1, lens[e]);
    t1.backward(alone);
    Tensor g_alone = ad.grads().clone();
    // Packed with the others, only its own targets active.
    std::vector<int32_t> packed_tg(T, -100);
    int32_t offset = 0;
    for (size_t f = 0; f < e; ++f) offset += lens[f];
    std::copy(tg[e].begin(), tg[e].end(), packed_tg.begin() + offset);
    Tape t2;
    ad.zero_grad();
    Var packed = model.loss(&t2, packed_ids, packed_tg, 1, T, &starts);
    t2.backward(packed);
    EXPECT_NEAR(packed.value().item(0), alone.value().item(0), 1e-5);
    double gmax = 0, dmax = 0;
    for (int64_t i = 0; i < g_alone.numel(); ++i) {
      gmax = std::max(gmax, std::fabs(g_alone.item(i)));
      dmax = std::max(dmax, std::fabs(g_alone.item(i) - ad.grads().item(i)));
    }
    ASSERT_GT(gmax, 0.0);
    EXPECT_LE(dmax / gmax, 1e-5);
  }
  // Without the segment starts the later examples would see the earlier ones: the check above
  // would fail, so it really tests the masking.
  std::vector<int32_t> tg_last(T, -100);
  std::copy(tg[2].begin(), tg[2].end(), tg_last.begin() + lens[0] + lens[1]);
  Var unmasked = model.loss(nullptr, packed_ids, tg_last, 1, T);
  Var alone_last = model.loss(nullptr, ids[2], tg[2], 1, lens[2]);
  EXPECT_GT(std::fabs(unmasked.value().item(0) - alone_last.value().item(0)), 1e-3);
}

}  // namespace
