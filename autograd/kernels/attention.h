// Causal grouped-query attention, scale 1/sqrt(D), forward and backward.
//
// Layout: q, out (B*Tq, Hq*D); k, v (B*Tk, Hkv*D), rows batch-major. Query head h reads KV head
// h / (Hq/Hkv). Query row i (0-based within its sequence) sees keys j <= i + (Tk − Tq): with
// Tq == Tk that is plain causal training; with Tq new tokens over a KV cache of Tk >= Tq rows it
// is incremental generation. Requires Tk >= Tq and Hq % Hkv == 0.
//
// Threading: one TBB task per (batch row, query head, block of query rows) in the forward and per
// (batch row, query head) in the backward, each running serial products with row strides
// (lda = H*D, no copies) on its own scratch. dK/dV are summed over the query heads sharing a KV
// head in a fixed order. So results do not depend on which thread ran what.
#pragma once

#include <cstdint>

namespace hone::kernels {

// lse (B, Hq, Tq) receives each query row's log-sum-exp of the scaled, masked scores.
template <class T>
void attention_fwd(int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D,
                   const T* q, const T* k, const T* v, T* out, T* lse,
                   const int32_t* kstart = nullptr);
// Recomputes P = exp(S − lse); dq, dk, dv (same shapes as q, k, v) are accumulated (+=), any
// may be null when not needed.
template <class T>
void attention_bwd(int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D,
                   const T* q, const T* k, const T* v, const T* out, const T* lse, const T* dout,
                   T* dq, T* dk, T* dv, const int32_t* kstart = nullptr, bool store_dq = false,
                   bool store_dk = false, bool store_dv = false);

// The same with bf16 products (bf16_gemm.h): q, k, v, dout and the probabilities and dS enter
// the products rounded to bf16, accumulation and everything else stay f32 (PyTorch autocast
// runs these matmuls in bf16 too). Used when the frozen-base products are bf16
// (training.compute_dtype); needs bf16_gemm_available().
void attention_fwd_bf16(int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D,
                        const float* q, const float* k, const float* v, float* out, float* lse,
                        const int32_t* kstart = nullptr);
void attention_bwd_bf16(int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D,
                        const float* q, const float* k, const float* v, const float* out,
                        const float* lse, const float* dout, float* dq, float* dk, float* dv,
                        const int32_t* kstart = nullptr, bool store_dq = false,
                        bool store_dk = false, bool store_dv = false);

template <class T>
void attention_fwd_ref(int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D,
                       const T* q, const T* k, const T* v, T* out, T* lse,
                       const int32_t* kstart = nullptr);
template <class T>
void attention_bwd_ref(int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D,
                       const T* q, const T* k, const T* v, const T* out, const T* lse,
                       const T* dout, T* dq, T* dk, T* dv, const int32_t* kstart = nullptr);

}  // namespace hone::kernels
