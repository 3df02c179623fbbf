#include "model/transformer.h"

#include <cstring>

#include "autograd/block_cache.h"
#include "autograd/kernels/bf16_gemm.h"
#include "autograd/kernels/elementwise.h"
#include "autograd/kernels/quant.h"

namespace hone {

namespace {

const Tensor& need(const std::map<std::string, Tensor>& ts, const std::string& name) {
  auto it = ts.find(name);
  if (it == ts.end()) throw Error("model: missing tensor " + name);
  return it->second;
}

// Projection/embedding weights in the requested storage dtype; a no-op view when it matches.
// Q8_0/Q4_0 blocks run along rows, so a weight whose rows are not whole blocks (e.g. a down_proj
// with intermediate size 172) keeps 16-bit storage: BF16.
Var frozen_weight(const Tensor& t, DType dtype) {
  if (t.dtype() == dtype) return Var(t, false);
  if (!is_quantized(dtype)) return Var(t.to(dtype), false);
  if (t.ndim() < 1 || t.dim(-1) % kernels::kQBlock != 0) return Var(t.to(DType::BF16), false);
  const Tensor f = t.dtype() == DType::F32 ? t : t.to(DType::F32);
  Tensor q = Tensor::empty(dtype, f.shape());
  kernels::quantize(f.data<float>(), q.raw(), dtype, f.numel());  // parallel over blocks
  return Var(std::move(q), false);
}

// Norm weights and biases are tiny: kept in the compute dtype (F64 for whole-model checks, else
// F32) so every op sees it.
Var frozen_small(const Tensor& t, DType compute) {
  return Var(t.dtype() == compute ? t : t.to(compute));
}

}  // namespace

DType projection_storage(DType weight_dtype, bool bf16_products) {
  return weight_dtype == DType::F32 && bf16_products ? DType::BF16 : weight_dtype;
}

Transformer::Transformer(const ModelConfig& cfg, const std::map<std::string, Tensor>& ts,
                         DType weight_dtype, const LayerRange& range)
    : cfg_(cfg), range_(range.resolved(cfg.num_layers)) {
  if (weight_dtype != DType::F32 && weight_dtype != DType::BF16 && weight_dtype != DType::F16 &&
      weight_dtype != DType::F64 && !is_quantized(weight_dtype))
    throw Error(std::string("model: unsupported weight dtype ") + dtype_name(weight_dtype));
  const DType compute = weight_dtype == DType::F64 ? DType::F64 : DType::F32;
  compute_ = compute;
  const DType proj_dtype = projection_storage(weight_dtype, kernels::bf16_products());
  auto frozen_norm = [compute](const Tensor& t) { return frozen_small(t, compute); };
  // Only the held tensors are looked up: a stage's map need not have the others.
  const bool first = range_.holds_embedding(), last = range_.holds_head(cfg.num_layers);
  if (first || (last && cfg.tie_word_embeddings))
    embed_ = frozen_weight(need(ts, "model.embed_tokens.weight"), weight_dtype);
  if (last) {
    final_norm_ = frozen_norm(need(ts, "model.norm.weight"));
    lm_head_ =
        cfg.tie_word_embeddings ? embed_ : frozen_weight(need(ts, "lm_head.weight"), proj_dtype);
  }
  // A tied last stage keeps the matrix only as its head.
  if (!first) embed_ = Var();
  auto proj = [&](const std::string& p, bool bias) {
    Var b = bias ? frozen_norm(need(ts, p + ".bias")) : Var();
    return std::make_unique<FrozenLinear>(frozen_weight(need(ts, p + ".weight"), proj_dtype), b);
  };
  blocks_.resize(range_.count());
  for (int64_t l = range_.first; l < range_.last; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    Block& b = blocks_[l - range_.first];
    b.input_norm = frozen_norm(need(ts, p + "input_layernorm.weight"));
    b.post_norm = frozen_norm(need(ts, p + "post_attention_layernorm.weight"));
    if (cfg.qk_norm) {
      b.q_norm = frozen_norm(need(ts, p + "self_attn.q_norm.weight"));
      b.k_norm = frozen_norm(need(ts, p + "self_attn.k_norm.weight"));
    }
    b.q_proj = proj(p + "self_attn.q_proj", cfg.attention_bias);
    b.k_proj = proj(p + "self_attn.k_proj", cfg.attention_bias);
    b.v_proj = proj(p + "self_attn.v_proj", cfg.attention_bias);
    b.o_proj = proj(p + "self_attn.o_proj", false);
    b.gate_proj = proj(p + "mlp.gate_proj", false);
    b.up_proj = proj(p + "mlp.up_proj", false);
    b.down_proj = proj(p + "mlp.down_proj", false);
  }
  inv_freq_ = rope_inv_freq(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling);
  // Conversion temporaries (e.g. a bf16 file read as f32 on the way to q4_0) went back to the
  // block cache in sizes training never asks for again: hand them to the system.
  block_cache_release();
}

Var Transformer::block_forward(Tape* t, const Var& x, const Block& blk,
                               const std::vector<int32_t>& pos, int64_t batch,
                               const std::vector<int32_t>* segment_start, KVCache* cache,
                               int layer) const {
  const double eps = cfg_.rms_norm_eps;
  Var h = rmsnorm(t, x, blk.input_norm, eps);  // (N, C)
  Var q = blk.q_proj->forward(t, h);           // (N, Hq*D)
  Var k = blk.k_proj->forward(t, h);           // (N, Hkv*D)
  Var v = blk.v_proj->forward(t, h);           // (N, Hkv*D)
  if (cfg_.qk_norm) {
    q = rmsnorm(t, q, blk.q_norm, eps);
    k = rmsnorm(t, k, blk.k_norm, eps);
  }
  q = rope(t, q, inv_freq_, pos, cfg_.num_heads);
  k = rope(t, k, inv_freq_, pos, cfg_.num_kv_heads);
  Var a;
  if (cache) {
    // Append this step's keys/values, then attend over everything cached so far.
    const int64_t n = static_cast<int64_t>(pos.size());
    const int64_t kvd = cfg_.kv_dim();
    std::memcpy(cache->k[layer].data<float>() + cache->len * kvd, k.value().data<float>(),
                n * kvd * sizeof(float));
    std::memcpy(cache->v[layer].data<float>() + cache->len * kvd, v.value().data<float>(),
                n * kvd * sizeof(float));
    Tensor kk = cache->k[layer].slice0(0, cache->len + n);
    Tensor vv = cache->v[layer].slice0(0, cache->len + n);
    a = Var(attention_cached(q.value(), kk, vv, cfg_.num_heads, cfg_.num_kv_heads, cfg_.head_dim));
  } else {
    a = attention(t, q, k, v, batch, cfg_.num_heads, cfg_.num_kv_heads, cfg_.head_dim,
                  segment_start);
  }
  Var x1 = blk.o_proj->forward_add(t, a, x);  // x + o_proj(a)
  Var h2 = rmsnorm(t, x1, blk.post_norm, eps);
  Var m = swiglu(t, blk.gate_proj->forward(t, h2), blk.up_proj->forward(t, h2));
  return blk.down_proj->forward_add(t, m, x1);  // x1 + down_proj(m)
}

Var Transformer::checkpointed_block(Tape* t, const Var& x, int layer,
                                    const std::vector<int32_t>& pos, int64_t batch,
                                    const std::vector<int32_t>* segment_start) const {
  const uint64_t rng_state = dropout_rng_ ? dropout_rng_->state() : 0;
  // The forward runs on a local tape that is dropped at once: it tells whether the output needs a
  // gradient (some adapter inside, or x requiring grad) and frees the block's saved activations.
  bool rg = false;
  Tensor y;
  {
    Tape local;
    Var yl = block_forward(&local, x, blocks_[layer - range_.first], pos, batch, segment_start,
                           nullptr, layer);
    rg = yl.requires_grad();
    y = yl.value();
  }
  Var out(std::move(y), rg);  // (N, C)
  if (!rg) return out;
  // pos is captured by value (the caller's vector dies after forward); segment_start outlives
  // backward, as for attention itself.
  t->record([this, t, x, out, layer, pos, batch, segment_start, rng_state] {
    if (!out.has_grad()) return;
    // Replay the dropout draws of this block's forward, then put the generator back where the
    // whole forward left it, so later steps draw exactly as without checkpointing.
    const uint64_t now = dropout_rng_ ? dropout_rng_->state() : 0;
    if (dropout_rng_) dropout_rng_->set_state(rng_state);
    Tape local;
    Var xl(x.value(), x.requires_grad());  // shares x's storage, a fresh gradient
    Var yl = block_forward(&local, xl, blocks_[layer - range_.first], pos, batch, segment_start,
                           nullptr, layer);
    if (dropout_rng_) dropout_rng_->set_state(now);
    local.backward_from(yl, out.grad());
    if (x.requires_grad() && xl.has_grad()) {
      Tensor& dx = t->grad(x);
      if (dx.dtype() == DType::F64)
        kernels::axpy<double>(dx.numel(), 1.0, xl.grad().data<double>(), dx.data<double>());
      else
        kernels::axpy<float>(dx.numel(), 1.0f, xl.grad().data<float>(), dx.data<float>());
    }
  });
  return out;
}

uint64_t Transformer::block_dropout_state(uint64_t base, int layer) {
  // splitmix64's finaliser over the base and a layer-dependent odd-constant offset: the blocks'
  // streams start at unrelated points whatever the base, and depend on nothing else.
  uint64_t z = base + (static_cast<uint64_t>(layer) + 1) * 0xd1b54a32d192ed03ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t Transformer::next_dropout_base(uint64_t base) {
  Rng r(base);
  r.skip(1);
  return r.state();
}

void Transformer::need_embedding(const char* what) const {
  if (!range_.holds_embedding())
    throw Error(std::string(what) + ": this pipeline stage holds layers " + range_.str() +
                ", not the token embedding");
}

void Transformer::need_head(const char* what) const {
  if (!range_.holds_head(cfg_.num_layers))
    throw Error(std::string(what) + ": this pipeline stage holds layers " + range_.str() + " of " +
                std::to_string(cfg_.num_layers) + ", not the final norm and LM head");
}

Var Transformer::embed(Tape* t, const std::vector<int32_t>& ids, int64_t batch, int64_t seq) const {
  need_embedding("forward");
  if (static_cast<int64_t>(ids.size()) != batch * seq)
    throw Error("forward: " + std::to_string(ids.size()) + " ids for batch " +
                std::to_string(batch) + " x seq " + std::to_string(seq));
  for (int32_t id : ids)
    if (id < 0 || id >= cfg_.vocab_size)
      throw Error("forward: token id " + std::to_string(id) + " outside vocabulary of " +
                  std::to_string(cfg_.vocab_size));
  return embedding(t, embed_, ids);  // (N, C)
}

Var Transformer::run_blocks(Tape* t, const Var& x, int64_t batch, int64_t seq,
                            const std::vector<int32_t>* segment_start) const {
  const int64_t n = batch * seq;
  if (x.value().ndim() != 2 || x.value().dim(0) != n || x.value().dim(1) != cfg_.hidden_size)
    throw Error("forward: hidden states of shape " + shape_str(x.shape()) + " for batch " +
                std::to_string(batch) + " x seq " + std::to_string(seq) + " x hidden " +
                std::to_string(cfg_.hidden_size));
  if (segment_start && static_cast<int64_t>(segment_start->size()) != n)
    throw Error("forward: segment_start has " + std::to_string(segment_start->size()) +
                " entries for " + std::to_string(n) + " tokens");
  std::vector<int32_t> pos(n);
  for (int64_t i = 0; i < n; ++i)
    pos[i] = static_cast<int32_t>(i % seq) - (segment_start ? (*segment_start)[i] : 0);
  const uint64_t base = dropout_rng_ ? dropout_rng_->state() : 0;
  Var h = x;
  for (int layer = range_.first; layer < range_.last; ++layer) {
    if (dropout_rng_) dropout_rng_->set_state(block_dropout_state(base, layer));
    h = (t && checkpointing_) ? checkpointed_block(t, h, layer, pos, batch, segment_start)
                              : block_forward(t, h, blocks_[layer - range_.first], pos, batch,
                                              segment_start, nullptr, layer);
  }
  if (dropout_rng_) dropout_rng_->set_state(t ? next_dropout_base(base) : base);
  return h;  // (N, C)
}

Var Transformer::head_logits(Tape* t, const Var& h) const {
  need_head("forward");
  return linear(t, rmsnorm(t, h, final_norm_, cfg_.rms_norm_eps), lm_head_);  // (N, V)
}

Var Transformer::head_loss(Tape* t, const Var& h, const std::vector<int32_t>& targets) const {
  need_head("loss");
  Var x = rmsnorm(t, h, final_norm_, cfg_.rms_norm_eps);  // (N, C)
  // When the (N, V) logits and their gradient would be large, the LM head is fused with the
  // cross-entropy and chunked so they never exist (it recomputes the logits in backward, so it
  // costs one more LM-head product: not worth it for small ones). Both give the same loss.
  const int64_t logits_bytes = 2 * x.value().dim(0) * cfg_.vocab_size * 4;
  if (logits_bytes > fused_loss_bytes_) return lm_head_cross_entropy(t, x, lm_head_, targets);
  return cross_entropy(t, linear(t, x, lm_head_), targets);
}

Var Transformer::forward(Tape* t, const std::vector<int32_t>& ids, int64_t batch, int64_t seq,
                         const std::vector<int32_t>* segment_start) const {
  need_head("forward");
  return head_logits(t, run_blocks(t, embed(t, ids, batch, seq), batch, seq, segment_start));
}

Var Transformer::loss(Tape* t, const std::vector<int32_t>& ids, const std::vector<int32_t>& targets,
                      int64_t batch, int64_t seq, const std::vector<int32_t>* segment_start) const {
  need_head("loss");
  return head_loss(t, run_blocks(t, embed(t, ids, batch, seq), batch, seq, segment_start), targets);
}

KVCache Transformer::make_cache(int64_t max_len) const {
  if (!is_full())
    throw Error("generate: this pipeline stage holds layers " + range_.str() +
                ", not the whole model");
  KVCache c;
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    c.k.push_back(Tensor::empty(DType::F32, {max_len, cfg_.kv_dim()}));
    c.v.push_back(Tensor::empty(DType::F32, {max_len, cfg_.kv_dim()}));
  }
  return c;
}

Tensor Transformer::forward_cached(KVCache& cache, const std::vector<int32_t>& ids) const {
  if (!is_full())
    throw Error("generate: this pipeline stage holds layers " + range_.str() +
                ", not the whole model");
  const int64_t n = static_cast<int64_t>(ids.size());
  if (cache.len + n > cache.capacity())
    throw Error("generate: context of " + std::to_string(cache.len + n) +
                " tokens exceeds the cache of " + std::to_string(cache.capacity()));
  for (int32_t id : ids)
    if (id < 0 || id >= cfg_.vocab_size)
      throw Error("generate: token id " + std::to_string(id) + " outside vocabulary of " +
                  std::to_string(cfg_.vocab_size));
  std::vector<int32_t> pos(n);
  for (int64_t i = 0; i < n; ++i) pos[i] = static_cast<int32_t>(cache.len + i);
  Var x = embedding(nullptr, embed_, ids);
  for (int64_t l = 0; l < cfg_.num_layers; ++l)
    x = block_forward(nullptr, x, blocks_[l], pos, 1, nullptr, &cache, static_cast<int>(l));
  cache.len += n;
  x = rmsnorm(nullptr, x, final_norm_, cfg_.rms_norm_eps);
  return linear(nullptr, x, lm_head_).value();
}

std::vector<NamedLinear> Transformer::linears() {
  std::vector<NamedLinear> out;
  for (size_t i = 0; i < blocks_.size(); ++i) {
    Block& b = blocks_[i];
    const int li = range_.first + static_cast<int>(i);
    std::string p = "model.layers." + std::to_string(li) + ".";
    out.push_back({p + "self_attn.q_proj", "q_proj", li, &b.q_proj});
    out.push_back({p + "self_attn.k_proj", "k_proj", li, &b.k_proj});
    out.push_back({p + "self_attn.v_proj", "v_proj", li, &b.v_proj});
    out.push_back({p + "self_attn.o_proj", "o_proj", li, &b.o_proj});
    out.push_back({p + "mlp.gate_proj", "gate_proj", li, &b.gate_proj});
    out.push_back({p + "mlp.up_proj", "up_proj", li, &b.up_proj});
    out.push_back({p + "mlp.down_proj", "down_proj", li, &b.down_proj});
  }
  return out;
}

int64_t Transformer::num_parameters() const {
  auto count = [](const Var& v) { return v.defined() ? v.value().numel() : int64_t{0}; };
  // A tied head is the embedding: counted once, on whichever stage holds it.
  int64_t n = count(embed_) + count(final_norm_);
  if (!cfg_.tie_word_embeddings || !embed_.defined()) n += count(lm_head_);
  auto lin = [](const std::unique_ptr<Linear>& p) {
    return p->weight().value().numel() + (p->bias().defined() ? p->bias().value().numel() : 0);
  };
  for (const Block& b : blocks_) {
    n += b.input_norm.value().numel() + b.post_norm.value().numel();
    if (b.q_norm.defined()) n += b.q_norm.value().numel() + b.k_norm.value().numel();
    n += lin(b.q_proj) + lin(b.k_proj) + lin(b.v_proj) + lin(b.o_proj) + lin(b.gate_proj) +
         lin(b.up_proj) + lin(b.down_proj);
  }
  return n;
}

size_t Transformer::nbytes() const {
  auto bytes = [](const Var& v) { return v.defined() ? v.value().nbytes() : size_t{0}; };
  size_t n = bytes(embed_) + bytes(final_norm_);
  if (!cfg_.tie_word_embeddings || !embed_.defined()) n += bytes(lm_head_);
  auto lin = [](const std::unique_ptr<Linear>& p) {
    return p->weight().value().nbytes() + (p->bias().defined() ? p->bias().value().nbytes() : 0);
  };
  for (const Block& b : blocks_) {
    n += b.input_norm.value().nbytes() + b.post_norm.value().nbytes();
    if (b.q_norm.defined()) n += b.q_norm.value().nbytes() + b.k_norm.value().nbytes();
    n += lin(b.q_proj) + lin(b.k_proj) + lin(b.v_proj) + lin(b.o_proj) + lin(b.gate_proj) +
         lin(b.up_proj) + lin(b.down_proj);
  }
  return n;
}

}  // namespace hone
