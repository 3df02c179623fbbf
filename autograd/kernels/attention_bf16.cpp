// Causal GQA attention with bf16 products (attention.h): the four products of the forward and
// backward take q, k, v, dO, P and dS rounded to bf16 and accumulate in f32 through
// gemm_bf16_serial; the softmax, its gradient, the log-sum-exp and the dK/dV sums stay f32 and
// are attention_parts.h's, as in the f32 kernel. Same tasks, blocks and summation order as the
// f32 kernel, so results do not depend on the thread count.
#include <algorithm>
#include <cmath>

#include "autograd/block_cache.h"
#include "autograd/kernels/attention.h"
#include "autograd/kernels/attention_parts.h"
#include "autograd/kernels/bf16_gemm.h"
#include "autograd/kernels/parallel.h"

namespace hone::kernels {

using namespace attention_detail;

namespace {

// dst (n) = bf16(src), split over the threads (each element is rounded alone: no order).
void round_all(const float* src, uint16_t* dst, int64_t n) {
  constexpr int64_t kChunk = 1 << 14;
  parallel_rows((n + kChunk - 1) / kChunk, 1, [&](int64_t lo, int64_t hi) {
    const int64_t a = lo * kChunk, b = std::min(n, hi * kChunk);
    round_to_bf16(src + a, dst + a, static_cast<size_t>(b - a));
  });
}

// x (n) *= c, then bf16(x) into dst: P and dS enter their products this way.
void scale_and_round(float* x, int64_t n, float c, uint16_t* dst) {
  if (c != 1.0f)
    for (int64_t i = 0; i < n; ++i) x[i] *= c;
  round_to_bf16(x, dst, static_cast<size_t>(n));
}

}  // namespace

void attention_fwd_bf16(int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D,
                        const float* q, const float* k, const float* v, float* out, float* lse,
                        const int32_t* kstart) {
  check_args("attention_fwd_bf16", B, Tq, Tk, Hq, Hkv, D);
  const int64_t off = Tk - Tq, group = Hq / Hkv;
  const int64_t ldq = Hq * D, ldk = Hkv * D;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  const int64_t nblk = (Tq + kBlock - 1) / kBlock;
  ScopedBlock<uint16_t> qb(static_cast<size_t>(B * Tq * ldq));  // (B*Tq, Hq*D)
  ScopedBlock<uint16_t> kb(static_cast<size_t>(B * Tk * ldk));  // (B*Tk, Hkv*D)
  ScopedBlock<uint16_t> vb(static_cast<size_t>(B * Tk * ldk));
  round_all(q, qb.data(), B * Tq * ldq);
  round_all(k, kb.data(), B * Tk * ldk);
  round_all(v, vb.data(), B * Tk * ldk);
  const size_t blk = static_cast<size_t>(std::min(kBlock, std::max<int64_t>(Tq, 1)) * Tk);
  parallel_rows(B * Hq * nblk, 1, [&](int64_t lo, int64_t hi) {
    float* S = scratch<float>(blk);        // (nq, kend) scores, then probabilities
    uint16_t* P = scratch<uint16_t>(blk);  // (nq, kend) the probabilities in bf16
    for (int64_t task = lo; task < hi; ++task) {
      const int64_t b = task / (Hq * nblk), h = task / nblk % Hq, i0 = task % nblk * kBlock;
      const uint16_t* Q = qb.data() + b * Tq * ldq + h * D;
      const uint16_t* K = kb.data() + b * Tk * ldk + (h / group) * D;
      const uint16_t* V = vb.data() + b * Tk * ldk + (h / group) * D;
      float* O = out + b * Tq * ldq + h * D;
      float* L = lse + (b * Hq + h) * Tq;
      const int64_t nq = std::min(kBlock, Tq - i0), kend = std::min(Tk, i0 + nq + off);
      gemm_bf16_serial(false, true, nq, kend, D, Q + i0 * ldq, ldq, K, ldk, 0.0f, S, kend);
      for (int64_t i = 0; i < nq * kend; ++i) S[i] *= scale;
      for (int64_t r = 0; r < nq; ++r) {
        const int64_t nvis = i0 + r + off + 1;  // keys [j0, nvis) are visible
        const int64_t j0 = kstart ? kstart[b * Tq + i0 + r] : 0;
        L[i0 + r] = softmax_row(S + r * kend, j0, nvis, kend);
      }
      round_to_bf16(S, P, static_cast<size_t>(nq * kend));
      gemm_bf16_serial(false, false, nq, D, kend, P, kend, V, ldk, 0.0f, O + i0 * ldq, ldq);
    }
  });
}

void attention_bwd_bf16(int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D,
                        const float* q, const float* k, const float* v, const float* out,
                        const float* lse, const float* dout, float* dq, float* dk, float* dv,
                        const int32_t* kstart, bool store_dq, bool store_dk, bool store_dv) {
  check_args("attention_bwd_bf16", B, Tq, Tk, Hq, Hkv, D);
  if ((!dq && !dk && !dv) || Tq == 0) {  // no queries: every gradient is zero
    if (dk && store_dk) std::fill(dk, dk + B * Tk * Hkv * D, 0.0f);
    if (dv && store_dv) std::fill(dv, dv + B * Tk * Hkv * D, 0.0f);
    return;
  }
  const int64_t off = Tk - Tq, group = Hq / Hkv;
  const int64_t ldq = Hq * D, ldk = Hkv * D;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  const size_t blk = static_cast<size_t>(std::min(kBlock, std::max<int64_t>(Tq, 1)) * Tk);
  ScopedBlock<uint16_t> qb(static_cast<size_t>(B * Tq * ldq));  // (B*Tq, Hq*D)
  ScopedBlock<uint16_t> dob(static_cast<size_t>(B * Tq * ldq));
  ScopedBlock<uint16_t> kb(static_cast<size_t>(B * Tk * ldk));  // (B*Tk, Hkv*D)
  ScopedBlock<uint16_t> vb(static_cast<size_t>(B * Tk * ldk));
  round_all(q, qb.data(), B * Tq * ldq);
  round_all(dout, dob.data(), B * Tq * ldq);
  round_all(k, kb.data(), B * Tk * ldk);
  round_all(v, vb.data(), B * Tk * ldk);
  // Per-query-head (Tk, D) slices of dK and dV, as in the f32 kernel: every element is written
  // before it is read, and gather_group_grads sums them in head order.
  ScopedBlock<float> dk_h(dk ? static_cast<size_t>(B * Hq * Tk * D) : 0);
  ScopedBlock<float> dv_h(dv ? static_cast<size_t>(B * Hq * Tk * D) : 0);
  float *dkh = dk_h.data(), *dvh = dv_h.data();
  parallel_rows(B * Hq, 1, [&](int64_t lo, int64_t hi) {
    float* P = scratch<float>(2 * blk);  // (nq, kend) each: P, then dP -> dS
    float* dP = P + blk;
    uint16_t* Pb = scratch<uint16_t>(2 * blk);  // their bf16 roundings
    uint16_t* dSb = Pb + blk;
    for (int64_t task = lo; task < hi; ++task) {
      const int64_t b = task / Hq, h = task % Hq;
      const int64_t qo = b * Tq * ldq + h * D, ko = b * Tk * ldk + (h / group) * D;
      const uint16_t *Q = qb.data() + qo, *dO = dob.data() + qo;
      const uint16_t *K = kb.data() + ko, *V = vb.data() + ko;
      const float* L = lse + (b * Hq + h) * Tq;
      float* dKh = dk ? dkh + task * Tk * D : nullptr;  // (Tk, D)
      float* dVh = dv ? dvh + task * Tk * D : nullptr;
      for (int64_t i0 = 0; i0 < Tq; i0 += kBlock) {
        const int64_t nq = std::min(kBlock, Tq - i0), kend = std::min(Tk, i0 + nq + off);
        const int64_t n = nq * kend;
        // P = exp(scale·Q·Kᵀ − lse), zero where masked; dP = dO·Vᵀ.
        gemm_bf16_serial(false, true, nq, kend, D, Q + i0 * ldq, ldq, K, ldk, 0.0f, P, kend);
        for (int64_t i = 0; i < n; ++i) P[i] *= scale;
        gemm_bf16_serial(false, true, nq, kend, D, dO + i0 * ldq, ldq, V, ldk, 0.0f, dP, kend);
        for (int64_t r = 0; r < nq; ++r) {
          const int64_t nvis = i0 + r + off + 1;
          const int64_t j0 = kstart ? kstart[b * Tq + i0 + r] : 0;
          softmax_grad_row(P + r * kend, dP + r * kend, j0, nvis, kend, L[i0 + r],
                           out + qo + (i0 + r) * ldq, dout + qo + (i0 + r) * ldq, D);
        }
        scale_and_round(P, n, 1.0f, Pb);
        scale_and_round(dP, n, scale, dSb);        // scale·dS enters dQ and dK
        const float beta = i0 == 0 ? 0.0f : 1.0f;  // the first block initialises the slices
        if (dv)
          gemm_bf16_serial(true, false, kend, D, nq, Pb, kend, dO + i0 * ldq, ldq, beta, dVh, D);
        if (dq)
          gemm_bf16_serial(false, false, nq, D, kend, dSb, kend, K, ldk, store_dq ? 0.0f : 1.0f,
                           dq + qo + i0 * ldq, ldq);
        if (dk)
          gemm_bf16_serial(true, false, kend, D, nq, dSb, kend, Q + i0 * ldq, ldq, beta, dKh, D);
        // Rows the first block did not reach (kend < Tk) stay unset: zero them once.
        if (i0 == 0 && kend < Tk) {
          if (dVh) std::fill(dVh + kend * D, dVh + Tk * D, 0.0f);
          if (dKh) std::fill(dKh + kend * D, dKh + Tk * D, 0.0f);
        }
      }
    }
  });
  gather_group_grads(B, Tk, Hq, Hkv, D, dkh, dvh, dk, dv, store_dk, store_dv);
}

}  // namespace hone::kernels
