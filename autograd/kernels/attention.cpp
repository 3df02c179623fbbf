#include "autograd/kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "autograd/block_cache.h"
#include "autograd/error.h"
#include "autograd/kernels/attention_parts.h"
#include "autograd/kernels/blas.h"
#include "autograd/kernels/parallel.h"

namespace hone::kernels {

using namespace attention_detail;

// Both passes run one task per (batch row, query head, block of query rows), each with serial
// products and its own scratch: a head's products are too small to split well, and there are
// enough tasks (B·Hq·⌈T/kBlock⌉) to keep every thread busy.
template <class T>
void attention_fwd(int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D,
                   const T* q, const T* k, const T* v, T* out, T* lse, const int32_t* kstart) {
  check_args("attention_fwd", B, Tq, Tk, Hq, Hkv, D);
  const int64_t off = Tk - Tq, group = Hq / Hkv;
  const int64_t ldq = Hq * D, ldk = Hkv * D;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(D)));
  const int64_t nblk = (Tq + kBlock - 1) / kBlock;
  parallel_rows(B * Hq * nblk, 1, [&](int64_t lo, int64_t hi) {
    T* S = scratch<T>(static_cast<size_t>(std::min(kBlock, std::max<int64_t>(Tq, 1)) * Tk));
    for (int64_t task = lo; task < hi; ++task) {
      const int64_t b = task / (Hq * nblk), h = task / nblk % Hq, i0 = task % nblk * kBlock;
      const T* Q = q + b * Tq * ldq + h * D;
      const T* K = k + b * Tk * ldk + (h / group) * D;
      const T* V = v + b * Tk * ldk + (h / group) * D;
      T* O = out + b * Tq * ldq + h * D;
      T* L = lse + (b * Hq + h) * Tq;
      const int64_t nq = std::min(kBlock, Tq - i0), kend = std::min(Tk, i0 + nq + off);
      gemm_serial<T>(false, true, nq, kend, D, scale, Q + i0 * ldq, ldq, K, ldk, T(0), S, kend);
      for (int64_t r = 0; r < nq; ++r) {
        const int64_t nvis = i0 + r + off + 1;  // keys [j0, nvis) are visible
        const int64_t j0 = kstart ? kstart[b * Tq + i0 + r] : 0;
        L[i0 + r] = softmax_row(S + r * kend, j0, nvis, kend);
      }
      gemm_serial<T>(false, false, nq, D, kend, T(1), S, kend, V, ldk, T(0), O + i0 * ldq, ldq);
    }
  });
}

template <class T>
void attention_bwd(int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D,
                   const T* q, const T* k, const T* v, const T* out, const T* lse, const T* dout,
                   T* dq, T* dk, T* dv, const int32_t* kstart, bool store_dq, bool store_dk,
                   bool store_dv) {
  check_args("attention_bwd", B, Tq, Tk, Hq, Hkv, D);
  if ((!dq && !dk && !dv) || Tq == 0) {  // no queries: every gradient is zero
    if (dk && store_dk) std::fill(dk, dk + B * Tk * Hkv * D, T(0));
    if (dv && store_dv) std::fill(dv, dv + B * Tk * Hkv * D, T(0));
    return;
  }
  const int64_t off = Tk - Tq, group = Hq / Hkv;
  const int64_t ldq = Hq * D, ldk = Hkv * D;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(D)));
  const size_t blk = static_cast<size_t>(std::min(kBlock, std::max<int64_t>(Tq, 1)) * Tk);
  // The query heads of a group add into the same dK/dV rows: each (b, h) task writes its own
  // (Tk, D) slices, summed afterwards in head order, so the result does not depend on which
  // thread ran what. A task covers all query blocks of its head, in order.
  // Every element is written before it is read (the first query block stores with beta = 0 and
  // zeroes the rows it does not reach), so the slices need no clearing.
  ScopedBlock<T> dk_h(dk ? static_cast<size_t>(B * Hq * Tk * D) : 0);
  ScopedBlock<T> dv_h(dv ? static_cast<size_t>(B * Hq * Tk * D) : 0);
  T *dkh = dk_h.data(), *dvh = dv_h.data();
  parallel_rows(B * Hq, 1, [&](int64_t lo, int64_t hi) {
    T* P = scratch<T>(2 * blk);
    T* dP = P + blk;
    for (int64_t task = lo; task < hi; ++task) {
      const int64_t b = task / Hq, h = task % Hq;
      const int64_t qo = b * Tq * ldq + h * D, ko = b * Tk * ldk + (h / group) * D;
      const T *Q = q + qo, *O = out + qo, *dO = dout + qo, *K = k + ko, *V = v + ko;
      const T* L = lse + (b * Hq + h) * Tq;
      T* dKh = dk ? dkh + task * Tk * D : nullptr;  // (Tk, D)
      T* dVh = dv ? dvh + task * Tk * D : nullptr;
      for (int64_t i0 = 0; i0 < Tq; i0 += kBlock) {
        const int64_t nq = std::min(kBlock, Tq - i0), kend = std::min(Tk, i0 + nq + off);
        // P = exp(scale·Q·Kᵀ − lse), zero where masked; dP = dO·Vᵀ.
        gemm_serial<T>(false, true, nq, kend, D, scale, Q + i0 * ldq, ldq, K, ldk, T(0), P, kend);
        gemm_serial<T>(false, true, nq, kend, D, T(1), dO + i0 * ldq, ldq, V, ldk, T(0), dP, kend);
        for (int64_t r = 0; r < nq; ++r) {
          const int64_t nvis = i0 + r + off + 1;
          const int64_t j0 = kstart ? kstart[b * Tq + i0 + r] : 0;
          softmax_grad_row(P + r * kend, dP + r * kend, j0, nvis, kend, L[i0 + r],
                           O + (i0 + r) * ldq, dO + (i0 + r) * ldq, D);
        }
        const T beta = i0 == 0 ? T(0) : T(1);  // the first block initialises the slices
        if (dv)
          gemm_serial<T>(true, false, kend, D, nq, T(1), P, kend, dO + i0 * ldq, ldq, beta, dVh, D);
        if (dq)
          gemm_serial<T>(false, false, nq, D, kend, scale, dP, kend, K, ldk, store_dq ? T(0) : T(1),
                         dq + qo + i0 * ldq, ldq);
        if (dk)
          gemm_serial<T>(true, false, kend, D, nq, scale, dP, kend, Q + i0 * ldq, ldq, beta, dKh,
                         D);
        // Rows the first block did not reach (kend < Tk) stay unset: zero them once.
        if (i0 == 0 && kend < Tk) {
          if (dVh) std::fill(dVh + kend * D, dVh + Tk * D, T(0));
          if (dKh) std::fill(dKh + kend * D, dKh + Tk * D, T(0));
        }
      }
    }
  });
  gather_group_grads(B, Tk, Hq, Hkv, D, dkh, dvh, dk, dv, store_dk, store_dv);
}

template <class T>
void attention_fwd_ref(int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D,
                       const T* q, const T* k, const T* v, T* out, T* lse, const int32_t* kstart) {
  check_args("attention_fwd_ref", B, Tq, Tk, Hq, Hkv, D);
  const int64_t off = Tk - Tq, group = Hq / Hkv, ldq = Hq * D, ldk = Hkv * D;
  const double scale = 1.0 / std::sqrt(double(D));
  std::vector<double> s(static_cast<size_t>(Tk));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h)
      for (int64_t i = 0; i < Tq; ++i) {
        const T* qi = q + (b * Tq + i) * ldq + h * D;
        int64_t nvis = i + off + 1;
        const int64_t j0 = kstart ? kstart[b * Tq + i] : 0;
        double m = -1e300;
        for (int64_t j = j0; j < nvis; ++j) {
          const T* kj = k + (b * Tk + j) * ldk + (h / group) * D;
          double acc = 0;
          for (int64_t d = 0; d < D; ++d) acc += double(qi[d]) * kj[d];
          s[j] = acc * scale;
          m = std::max(m, s[j]);
        }
        double sum = 0;
        for (int64_t j = j0; j < nvis; ++j) sum += std::exp(s[j] - m);
        double l = m + std::log(sum);
        lse[(b * Hq + h) * Tq + i] = static_cast<T>(l);
        for (int64_t d = 0; d < D; ++d) {
          double acc = 0;
          for (int64_t j = j0; j < nvis; ++j)
            acc += std::exp(s[j] - l) * v[(b * Tk + j) * ldk + (h / group) * D + d];
          out[(b * Tq + i) * ldq + h * D + d] = static_cast<T>(acc);
        }
      }
}

template <class T>
void attention_bwd_ref(int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D,
                       const T* q, const T* k, const T* v, const T* out, const T* lse,
                       const T* dout, T* dq, T* dk, T* dv, const int32_t* kstart) {
  check_args("attention_bwd_ref", B, Tq, Tk, Hq, Hkv, D);
  const int64_t off = Tk - Tq, group = Hq / Hkv, ldq = Hq * D, ldk = Hkv * D;
  const double scale = 1.0 / std::sqrt(double(D));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h)
      for (int64_t i = 0; i < Tq; ++i) {
        const int64_t qi = (b * Tq + i) * ldq + h * D;
        double di = 0;
        for (int64_t d = 0; d < D; ++d) di += double(out[qi + d]) * dout[qi + d];
        for (int64_t j = kstart ? kstart[b * Tq + i] : 0; j <= i + off; ++j) {
          const int64_t kj = (b * Tk + j) * ldk + (h / group) * D;
          double s = 0, dp = 0;
          for (int64_t d = 0; d < D; ++d) {
            s += double(q[qi + d]) * k[kj + d];
            dp += double(dout[qi + d]) * v[kj + d];
          }
          double p = std::exp(s * scale - lse[(b * Hq + h) * Tq + i]);
          double ds = p * (dp - di);
          for (int64_t d = 0; d < D; ++d) {
            if (dv) dv[kj + d] += static_cast<T>(p * dout[qi + d]);
            if (dq) dq[qi + d] += static_cast<T>(ds * k[kj + d] * scale);
            if (dk) dk[kj + d] += static_cast<T>(ds * q[qi + d] * scale);
          }
        }
      }
}

#define HONE_INST(T)                                                                             \
  template void attention_fwd<T>(int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, const T*, \
                                 const T*, const T*, T*, T*, const int32_t*);                    \
  template void attention_bwd<T>(int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, const T*, \
                                 const T*, const T*, const T*, const T*, const T*, T*, T*, T*,   \
                                 const int32_t*, bool, bool, bool);                              \
  template void attention_fwd_ref<T>(int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,       \
                                     const T*, const T*, const T*, T*, T*, const int32_t*);      \
  template void attention_bwd_ref<T>(int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,       \
                                     const T*, const T*, const T*, const T*, const T*, const T*, \
                                     T*, T*, T*, const int32_t*);
HONE_INST(float)
HONE_INST(double)
#undef HONE_INST

}  // namespace hone::kernels
