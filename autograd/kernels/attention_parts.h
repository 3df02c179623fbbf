// The pieces the f32/f64 attention kernels (attention.cpp) and the bf16-product ones
// (attention_bf16.cpp) share: the block size, argument checks, per-thread scratch, the softmax
// of one score row, dS of one row, and the fixed-order sum of dK/dV over a group's query heads.
// Sharing them keeps the two paths' f32 arithmetic outside the products the same.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/error.h"
#include "autograd/kernels/parallel.h"
#include "autograd/kernels/vmath.h"

namespace hone::kernels::attention_detail {

// Query rows per block: bounds the score scratch to kBlock × Tk and lets a block skip the keys
// no row in it can see. Causal blocks compute (T/kBlock)(T/kBlock + 1)/2 tiles of kBlock²
// scores, against T(T + 1)/2 needed: at T = 512, blocks of 256 compute 50% more than needed,
// blocks of 64 12%. Much below 64 rows the serial products lose more than the mask saves
// (`bench_kernels` times this kernel at the bench's head shapes).
constexpr int64_t kBlock = 64;

inline void check_args(const char* name, int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv,
                       int64_t D) {
  if (B < 0 || Tq < 0 || Tk < Tq || Hq <= 0 || Hkv <= 0 || Hq % Hkv != 0 || D <= 0)
    throw Error(std::string(name) + ": bad dims B=" + std::to_string(B) +
                " Tq=" + std::to_string(Tq) + " Tk=" + std::to_string(Tk) +
                " Hq=" + std::to_string(Hq) + " Hkv=" + std::to_string(Hkv) +
                " D=" + std::to_string(D) + " (need Tk >= Tq, Hq % Hkv == 0)");
}

// The calling thread's scratch of at least n values of T (slot tells apart two live buffers of
// one type); grows, never shrinks, so steady-state calls don't allocate.
template <class T, int slot = 0>
T* scratch(size_t n) {
  thread_local std::vector<T> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

// s (kend) holds one query row's scaled scores; keys [j0, nvis) are visible. Overwrites s with
// the probabilities (zero where masked) and returns the row's log-sum-exp.
template <class T>
T softmax_row(T* s, int64_t j0, int64_t nvis, int64_t kend) {
  const T m = row_max(s + j0, nvis - j0);
  exp_shifted(s + j0, nvis - j0, m, s + j0);
  const T sum = row_sum(s + j0, nvis - j0);
  const T inv = T(1) / sum;
  for (int64_t j = 0; j < j0; ++j) s[j] = 0;
  for (int64_t j = j0; j < nvis; ++j) s[j] *= inv;
  for (int64_t j = nvis; j < kend; ++j) s[j] = 0;
  return m + std::log(sum);
}

// One query row of the backward: p (kend) holds the scaled scores, dp (kend) dO·Vᵀ. Leaves
// p = exp(s − lse) and dp = dS = p∘(dp − rowsum(dO∘O)), both zero where masked.
template <class T>
void softmax_grad_row(T* p, T* dp, int64_t j0, int64_t nvis, int64_t kend, T lse, const T* o_row,
                      const T* do_row, int64_t D) {
  T di = 0;  // rowsum(dO∘O) = Σ_j P_j·dP_j
  for (int64_t d = 0; d < D; ++d) di += o_row[d] * do_row[d];
  for (int64_t j = 0; j < j0; ++j) p[j] = dp[j] = 0;
  exp_shifted(p + j0, nvis - j0, lse, p + j0);
  for (int64_t j = j0; j < nvis; ++j) dp[j] = p[j] * (dp[j] - di);  // dS
  for (int64_t j = nvis; j < kend; ++j) p[j] = dp[j] = 0;
}

// dK/dV (B*Tk, Hkv*D) from the per-query-head slices dkh/dvh (B, Hq, Tk, D): the group's first
// head stores (when store) or adds, the others add, in head order, so the sum does not depend
// on which thread computed which slice. Null targets are skipped.
template <class T>
void gather_group_grads(int64_t B, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D, const T* dkh,
                        const T* dvh, T* dk, T* dv, bool store_dk, bool store_dv) {
  const int64_t group = Hq / Hkv, ldk = Hkv * D;
  parallel_rows(B * Tk, grain_for(Hq * D), [&](int64_t lo, int64_t hi) {
    for (int64_t bt = lo; bt < hi; ++bt) {
      const int64_t b = bt / Tk, j = bt % Tk;
      for (int64_t h = 0; h < Hq; ++h) {
        const size_t src = static_cast<size_t>(((b * Hq + h) * Tk + j) * D);
        const int64_t dst = bt * ldk + (h / group) * D;
        const bool first = h % group == 0;
        auto gather = [&](T* to, const T* from, bool store) {
          if (!to) return;
          if (first && store)
            std::copy(from + src, from + src + D, to + dst);
          else
            for (int64_t d = 0; d < D; ++d) to[dst + d] += from[src + d];
        };
        gather(dk, dkh, store_dk);
        gather(dv, dvh, store_dv);
      }
    }
  });
}

}  // namespace hone::kernels::attention_detail
