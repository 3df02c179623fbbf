// The Llama-family decoder (Llama 2/3, Mistral, Qwen2, Qwen3): embedding, N pre-norm blocks of
// GQA attention with RoPE and a SwiGLU MLP, final norm, LM head (tied or not).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "model/config.h"
#include "model/layer_range.h"
#include "model/linear.h"

namespace hone {

// How the frozen projections and an untied LM head are stored, given model.dtype
// (`weight_dtype`) and whether the frozen-base products are bf16 (kernels::bf16_products()):
// as weight_dtype, except that f32 is held as bf16 under bf16 products. Those products round W
// to bf16 anyway, so they see the same values, in half the memory and with no conversion per
// product (products that take a stored bf16 W are split differently, so the sums are not in
// the same order). The embedding, looked up rather than multiplied, keeps weight_dtype, and so
// does a head tied to it.
DType projection_storage(DType weight_dtype, bool bf16_products);

struct Block {
  Var input_norm;  // (C)
  Var post_norm;   // (C)
  Var q_norm;      // (D), Qwen3 only
  Var k_norm;      // (D), Qwen3 only
  std::unique_ptr<Linear> q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;
};

// A projection addressed by its Hugging Face module name, e.g. "model.layers.3.self_attn.q_proj".
struct NamedLinear {
  std::string name;  // full module name
  std::string kind;  // q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj
  int layer = 0;
  std::unique_ptr<Linear>* slot = nullptr;  // replace *slot to wrap the projection
};

// Keys and values of past positions for one sequence, per layer: (max_len, Hkv*D) each.
struct KVCache {
  std::vector<Tensor> k, v;
  int64_t len = 0;  // positions filled
  int64_t capacity() const { return k.empty() ? 0 : k[0].dim(0); }
};

class Transformer {
 public:
  // loss() fuses the LM head with the cross-entropy (tiled, no full logits) when the logits
  // and their gradient would take more than this many bytes (0: always).
  // 1 GiB: the fused head recomputes the logits (one more LM-head product, +10-13% of a step for
  // Qwen2.5-0.5B / Llama-3.2-1B at 512 tokens), so it is worth it only when they are really big.
  static constexpr int64_t kFusedLossBytes = int64_t{1} << 30;
  void set_fused_loss_bytes(int64_t bytes) { fused_loss_bytes_ = bytes; }
  int64_t fused_loss_bytes() const { return fused_loss_bytes_; }
  // Activation checkpointing: in training, each block keeps only its input (N, C); backward
  // re-runs the block's forward on a local tape before its backward. Gradients are bitwise the
  // same as without it; it costs one more forward of the blocks.
  void set_activation_checkpointing(bool on) { checkpointing_ = on; }
  bool activation_checkpointing() const { return checkpointing_; }
  // A generator that ops inside blocks draw from (LoRA dropout). Each block's draws are a
  // function of (the generator's state when run_blocks starts, the block's layer index) only:
  // block l draws from block_dropout_state(base, l), so a pipeline stage starting at layer l
  // draws what the whole model's block l draws without knowing the blocks before it. A forward
  // on a tape then leaves the generator at next_dropout_base(base) (every stage advances alike),
  // one without a tape (evaluation) leaves it at base. With checkpointing the recompute replays
  // the block's state, so the masks are the same draws.
  void set_dropout_rng(Rng* rng) { dropout_rng_ = rng; }
  static uint64_t block_dropout_state(uint64_t base, int layer);
  static uint64_t next_dropout_base(uint64_t base);

  // tensors: HF names, HF layout (as load_model_files returns). `weight_dtype` is the storage of
  // the frozen projection and embedding weights: F32, BF16, F16, or Q8_0/Q4_0 quantized at load
  // (a weight whose rows are not a multiple of 32 long then stays BF16). Compute is F32; norms
  // and biases stay F32. F64 makes the whole model compute in double: for reference checks only.
  // `range` makes a pipeline stage: only blocks [first, last), the embedding when first == 0,
  // the final norm and head when last == num_layers; only those tensors are looked up (and
  // converted), so `tensors` may be load_model_files(path, range)'s share.
  Transformer(const ModelConfig& cfg, const std::map<std::string, Tensor>& tensors,
              DType weight_dtype = DType::F32, const LayerRange& range = {});

  const ModelConfig& config() const { return cfg_; }
  // The blocks this instance holds (resolved: last is never -1).
  const LayerRange& layer_range() const { return range_; }
  bool is_full() const { return range_.is_full(cfg_.num_layers); }

  // The pipeline pieces; loss() is exactly head_loss(run_blocks(embed(ids))), so chaining the
  // stages' pieces gives the whole model's loss and gradients bit for bit. A later stage feeds
  // the previous stage's output in as a leaf Var(value, true); after its backward, that leaf's
  // gradient seeds the previous stage's Tape::backward_from(output, grad).
  // First stage: the token embeddings of ids (B*T) -> (N, C); checks the ids.
  Var embed(Tape* t, const std::vector<int32_t>& ids, int64_t batch, int64_t seq) const;
  // The held blocks on x (N, C), N = batch*seq -> (N, C); segment_start as for forward().
  Var run_blocks(Tape* t, const Var& x, int64_t batch, int64_t seq,
                 const std::vector<int32_t>* segment_start = nullptr) const;
  // Last stage: final norm and LM head of h (N, C) -> logits (N, V).
  Var head_logits(Tape* t, const Var& h) const;
  // Last stage: mean cross-entropy of the logits of h (N, C) against targets (N), ignore_index
  // -100; the head is fused with the cross-entropy when the logits are big (fused_loss_bytes).
  Var head_loss(Tape* t, const Var& h, const std::vector<int32_t>& targets) const;
  // F32, or F64 when built with weight dtype F64.
  DType compute_dtype() const { return compute_; }
  // ids (B*T) row-major as (B, T) -> logits (B*T, V). Positions restart at 0 per row.
  // segment_start (B*T, optional) packs several examples in a row: token (b, t) belongs to the
  // example starting at segment_start[b*T + t]; its position is t − that start, and attention
  // stays inside the example, so a packed example computes exactly what it would alone.
  Var forward(Tape* t, const std::vector<int32_t>& ids, int64_t batch, int64_t seq,
              const std::vector<int32_t>* segment_start = nullptr) const;
  // Mean cross-entropy of forward's logits against targets (B*T), ignore_index -100.
  Var loss(Tape* t, const std::vector<int32_t>& ids, const std::vector<int32_t>& targets,
           int64_t batch, int64_t seq, const std::vector<int32_t>* segment_start = nullptr) const;

  KVCache make_cache(int64_t max_len) const;
  // Inference: appends `ids` at positions cache.len.. and returns logits (ids.size(), V).
  Tensor forward_cached(KVCache& cache, const std::vector<int32_t>& ids) const;

  // The held blocks' projections (global layer indices and names), in layer order.
  std::vector<NamedLinear> linears();
  // The held blocks: blocks()[i] is layer layer_range().first + i.
  const std::vector<Block>& blocks() const { return blocks_; }
  // Frozen base parameter count (of the held tensors; a tied last stage counts its head).
  int64_t num_parameters() const;
  // Bytes the frozen base occupies as stored (what weight_dtype saves), counted once when tied.
  size_t nbytes() const;

 private:
  // Throws unless the instance holds the embedding (what = the caller) / the head / everything.
  void need_embedding(const char* what) const;
  void need_head(const char* what) const;
  Var block_forward(Tape* t, const Var& x, const Block& blk, const std::vector<int32_t>& pos,
                    int64_t batch, const std::vector<int32_t>* segment_start, KVCache* cache,
                    int layer) const;
  // block_forward recorded as one tape node that recomputes the block in backward.
  Var checkpointed_block(Tape* t, const Var& x, int layer, const std::vector<int32_t>& pos,
                         int64_t batch, const std::vector<int32_t>* segment_start) const;

  ModelConfig cfg_;
  DType compute_ = DType::F32;
  int64_t fused_loss_bytes_ = kFusedLossBytes;
  bool checkpointing_ = false;
  Rng* dropout_rng_ = nullptr;
  LayerRange range_;
  Var embed_;       // (V, C); undefined unless the first stage
  Var final_norm_;  // (C); undefined unless the last stage
  Var lm_head_;     // (V, C); the embedding when tied; undefined unless the last stage
  std::vector<Block> blocks_;
  std::vector<double> inv_freq_;
};

}  // namespace hone
