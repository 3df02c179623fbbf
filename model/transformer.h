// The Llama-family decoder (Llama 2/3, Mistral, Qwen2, Qwen3): embedding, N pre-norm blocks of
// GQA attention with RoPE and a SwiGLU MLP, final norm, LM head (tied or not).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "model/config.h"
#include "model/linear.h"

namespace hone {

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
  // A generator that ops inside blocks draw from (LoRA dropout): with checkpointing, its state at
  // each block's forward is restored for the recompute, so the masks are the same draws.
  void set_dropout_rng(Rng* rng) { dropout_rng_ = rng; }

  // tensors: HF names, HF layout (as load_model_files returns). `weight_dtype` is the storage of
  // the frozen projection and embedding weights: F32, BF16, F16, or Q8_0/Q4_0 quantized at load
  // (a weight whose rows are not a multiple of 32 long then stays BF16). Compute is F32; norms
  // and biases stay F32. F64 makes the whole model compute in double: for reference checks only.
  Transformer(const ModelConfig& cfg, const std::map<std::string, Tensor>& tensors,
              DType weight_dtype = DType::F32);

  const ModelConfig& config() const { return cfg_; }
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

  std::vector<NamedLinear> linears();
  const std::vector<Block>& blocks() const { return blocks_; }
  // Frozen base parameter count.
  int64_t num_parameters() const;
  // Bytes the frozen base occupies as stored (what weight_dtype saves), counted once when tied.
  size_t nbytes() const;

 private:
  // Everything before the LM head: embedding, blocks, final norm -> (N, C).
  Var hidden(Tape* t, const std::vector<int32_t>& ids, int64_t batch, int64_t seq,
             const std::vector<int32_t>* segment_start) const;
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
  Var embed_;       // (V, C)
  Var final_norm_;  // (C)
  Var lm_head_;     // (V, C); the embedding when tied
  std::vector<Block> blocks_;
  std::vector<double> inv_freq_;
};

}  // namespace hone
