#include "model/random_weights.h"

#include <cmath>
#include <vector>

#include "autograd/kernels/parallel.h"
#include "autograd/kernels/quant.h"
#include "autograd/rng.h"

namespace hone {

std::map<std::string, Tensor> random_weights(const ModelConfig& cfg, uint64_t seed, DType storage,
                                             const TensorFilter& keep) {
  cfg.validate("random_weights");
  // One stream over every value in the order below; chunks jump to their offset in it, so the
  // parallel fill gives the sequential values whatever the thread count.
  uint64_t drawn = 0;
  std::map<std::string, Tensor> ts;
  auto fill = [&](const std::string& name, Shape shape, double lo, double hi, bool weight) {
    if (keep && !keep(name)) {  // another stage's: its values are skipped in the stream
      drawn += static_cast<uint64_t>(shape_numel(shape));
      return;
    }
    // A weight that will be converted is drawn into plain heap memory, not the block cache:
    // freeing it then gives the pages back at once, so generating an 8B model in 4-bit never
    // holds more than one f32 tensor (the 2 GiB embedding) besides the converted ones.
    const bool convert = weight && storage != DType::F32;
    std::vector<float> scratch(convert ? static_cast<size_t>(shape_numel(shape)) : 0);
    Tensor t = convert ? Tensor::external(DType::F32, shape, scratch.data(), nullptr)
                       : Tensor::empty(DType::F32, shape);
    float* p = t.data<float>();
    const uint64_t base = drawn;
    kernels::parallel_rows(t.numel(), 1 << 16, [&](int64_t b, int64_t e) {
      Rng r(seed);
      r.skip(base + static_cast<uint64_t>(b));
      for (int64_t i = b; i < e; ++i) p[i] = static_cast<float>(r.uniform(lo, hi));
    });
    drawn += static_cast<uint64_t>(t.numel());
    if (convert) {
      if (!is_quantized(storage)) {
        t = t.to(storage);
      } else if (t.dim(-1) % kernels::kQBlock != 0) {
        t = t.to(DType::BF16);
      } else {
        Tensor q = Tensor::empty(storage, t.shape());
        kernels::quantize(t.data<float>(), q.raw(), storage, t.numel());
        t = q;
      }
    }
    ts[name] = t;
  };
  auto proj = [&](const std::string& name, int64_t out, int64_t in) {
    double b = 1.0 / std::sqrt(static_cast<double>(in));
    fill(name, {out, in}, -b, b, true);
  };
  const int64_t C = cfg.hidden_size, F = cfg.intermediate_size, V = cfg.vocab_size;
  fill("model.embed_tokens.weight", {V, C}, -0.035, 0.035, true);
  fill("model.norm.weight", {C}, 0.9, 1.1, false);
  if (!cfg.tie_word_embeddings) proj("lm_head.weight", V, C);
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    fill(p + "input_layernorm.weight", {C}, 0.9, 1.1, false);
    fill(p + "post_attention_layernorm.weight", {C}, 0.9, 1.1, false);
    proj(p + "self_attn.q_proj.weight", cfg.q_dim(), C);
    proj(p + "self_attn.k_proj.weight", cfg.kv_dim(), C);
    proj(p + "self_attn.v_proj.weight", cfg.kv_dim(), C);
    proj(p + "self_attn.o_proj.weight", C, cfg.q_dim());
    proj(p + "mlp.gate_proj.weight", F, C);
    proj(p + "mlp.up_proj.weight", F, C);
    proj(p + "mlp.down_proj.weight", C, F);
    if (cfg.attention_bias) {
      fill(p + "self_attn.q_proj.bias", {cfg.q_dim()}, -0.1, 0.1, false);
      fill(p + "self_attn.k_proj.bias", {cfg.kv_dim()}, -0.1, 0.1, false);
      fill(p + "self_attn.v_proj.bias", {cfg.kv_dim()}, -0.1, 0.1, false);
    }
    if (cfg.qk_norm) {
      fill(p + "self_attn.q_norm.weight", {cfg.head_dim}, 0.9, 1.1, false);
      fill(p + "self_attn.k_norm.weight", {cfg.head_dim}, 0.9, 1.1, false);
    }
  }
  return ts;
}

}  // namespace hone
