// The differentiable ops, at the grain of a transformer. Each takes the tape first: with a null
// tape (or no input requiring grad) nothing is recorded — that is inference.
//
// Compute dtype is F32 (training) or F64 (gradient checks); every op's output has the compute
// dtype of its activation input. Frozen weights (a Var with requires_grad=false) may be stored
// as F32, BF16, F16, Q8_0 or Q4_0 and are converted on the fly; a weight that requires grad must
// have the compute dtype. Shapes use N for rows (batch*seq flattened), C for features.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "autograd/rng.h"
#include "autograd/tape.h"

namespace hone {

// y = x·Wᵀ + b. x (N, in) — leading dims flattened; W (out, in); b (out) or undefined.
// Backward: dx always (when x requires grad); dW, db only when they require grad.
Var linear(Tape* t, const Var& x, const Var& w, const Var& b = Var());

// LoRA projection as one op: y = residual + x·Wᵀ + b + s·(xa·Aᵀ)·Bᵀ, where xa is x itself or a
// dropout of it (same shape). x, xa (N, in); W (out, in) frozen in any storage linear accepts;
// b (out) or undefined; A (r, in), B (out, r) in the compute dtype; residual (N, out) or
// undefined. Equal to the unfused chain add(residual, add(linear(x, W, b), scale(linear(linear(
// xa, A), B), s))) up to rounding, without its (N, out) intermediates; saves only xa·Aᵀ (N, r)
// besides its inputs.
Var lora_linear(Tape* t, const Var& x, const Var& w, const Var& b, const Var& xa, const Var& a,
                const Var& bm, double s, const Var& residual = Var());

// DoRA's per-row weight norm n = ‖W + s·B·A‖₂ (out), in the compute dtype of A and B. A plain
// tensor, not a Var: DoRA (and PEFT) treat it as a constant, so it takes no gradient. W (out, in)
// in any frozen storage (converted row block by row block); A (r, in); B (out, r). Bitwise the
// same whatever the thread count.
Tensor dora_weight_norm(const Tensor& w, const Tensor& a, const Tensor& bm, double s);

// DoRA projection as one op, as PEFT computes it (autograd/ops/dora_linear.cpp):
//   y = residual + x·Wᵀ + b + (g − 1)⊙(xa·Wᵀ) + g⊙s·(xa·Aᵀ)·Bᵀ,   g = m / norm per output
// x, xa (N, in) (xa is x, or dropout(x) as its own Var); W (out, in) frozen; b (out) or undefined;
// A (r, in), B (out, r), m (out) in the compute dtype; norm (out) from dora_weight_norm (no
// gradient); residual (N, out) or undefined. Saves xa·Wᵀ + s·xa·Aᵀ·Bᵀ (N, out) and xa·Aᵀ (N, r).
Var dora_linear(Tape* t, const Var& x, const Var& w, const Var& b, const Var& xa, const Var& a,
                const Var& bm, const Var& m, const Tensor& norm, double s,
                const Var& residual = Var());

// Elementwise, same shapes.
Var add(Tape* t, const Var& a, const Var& b);
Var mul(Tape* t, const Var& a, const Var& b);
Var scale(Tape* t, const Var& a, double s);
// Same storage, new shape (numel must match); gradient flows back unchanged.
Var reshape(Tape* t, const Var& x, Shape shape);

// y = x / sqrt(mean(x², over C) + eps) * w. w (C); x (..., C) where C = w.numel(), so a
// per-head norm is rmsnorm(q (N, H*D), w (D)).
Var rmsnorm(Tape* t, const Var& x, const Var& w, double eps);

// Llama-3.1 rope_scaling (type "llama3"); type "" means none.
struct RopeScaling {
  std::string type;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};
// inv_freq[i] = theta^(-2i/D) for i < D/2, then the llama3 scaling when given (as HF computes it).
std::vector<double> rope_inv_freq(int64_t head_dim, double theta, const RopeScaling& scaling);

// Rotate-half RoPE (Hugging Face convention): for each head and i < D/2, with a = pos·inv_freq[i],
// y[i] = x[i]·cos a − x[i+D/2]·sin a;  y[i+D/2] = x[i+D/2]·cos a + x[i]·sin a.
// x (N, H*D), pos (N), inv_freq (D/2).
Var rope(Tape* t, const Var& x, const std::vector<double>& inv_freq,
         const std::vector<int32_t>& pos, int64_t n_heads);

// Causal grouped-query attention with scale 1/sqrt(D), one fused kernel.
// q (B*T, Hq*D), k and v (B*T, Hkv*D) -> (B*T, Hq*D); query head h reads KV head h/(Hq/Hkv).
// Saves only the per-row log-sum-exp (B, Hq, T); backward recomputes the probabilities.
// segment_start (B*T, optional): for packed examples, row (b, t) attends only to rows
// [segment_start[b*T + t], t] of its sequence — attention never crosses example boundaries.
Var attention(Tape* t, const Var& q, const Var& k, const Var& v, int64_t batch, int64_t n_heads,
              int64_t n_kv_heads, int64_t head_dim,
              const std::vector<int32_t>* segment_start = nullptr);

// Inference only (no tape, batch 1): Tq new query rows attending over Tk >= Tq cached rows, query i
// seeing keys j <= i + Tk - Tq. q (Tq, Hq*D), k and v (Tk, Hkv*D) -> (Tq, Hq*D), F32.
Tensor attention_cached(const Tensor& q, const Tensor& k, const Tensor& v, int64_t n_heads,
                        int64_t n_kv_heads, int64_t head_dim);

Var silu(Tape* t, const Var& x);
// silu(gate) * up, same shapes.
Var swiglu(Tape* t, const Var& gate, const Var& up);

// Rows of table (V, C) -> (N, C). Output is F64 if the table is F64, else F32.
Var embedding(Tape* t, const Var& table, const std::vector<int32_t>& ids);

// Mean cross-entropy over rows whose target != ignore_index (fused log-softmax).
// logits (N, V), targets (N) -> scalar (shape [1]). All rows ignored gives 0 and zero grads.
Var cross_entropy(Tape* t, const Var& logits, const std::vector<int32_t>& targets,
                  int32_t ignore_index = -100);

// cross_entropy(linear(x, W), targets) fused and tiled: the (N, V) logits never exist. x (N, C)
// — leading dims flattened; W (V, C), frozen in any storage linear accepts, or requiring grad
// (then dW too). W is walked in tiles of 4M elements, each converted once per pass; logits of at
// most chunk_rows non-ignored rows × one tile live at once (at most 16 MB in f32). Saves x and
// one log-sum-exp per row; the backward recomputes the logits (one more x·Wᵀ than the unfused
// pair). Same semantics as cross_entropy.
Var lm_head_cross_entropy(Tape* t, const Var& x, const Var& w, const std::vector<int32_t>& targets,
                          int32_t ignore_index = -100, int64_t chunk_rows = 4096);

// Inverted dropout: keeps each element with probability 1-p and scales it by 1/(1-p).
// The mask is drawn from rng sequentially (deterministic whatever the thread count).
Var dropout(Tape* t, const Var& x, double p, Rng& rng);

}  // namespace hone
