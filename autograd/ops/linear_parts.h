// The frozen-or-trainable projection y = x·Wᵀ + b, forward and backward, shared by linear and
// lora_linear (which adds its low-rank product on top): one place for the weight-tile loop, the
// bias and the three gradients.
#pragma once

#include "autograd/kernels/blas.h"
#include "autograd/kernels/parallel.h"
#include "autograd/ops/bf16_products.h"
#include "autograd/ops/weight_blocks.h"
#include "autograd/tape.h"

namespace hone::ops_detail {

// Y (N, out) = x (N, in)·Wᵀ + beta·Y, plus bias (out) when defined. W in any frozen storage.
// bf16 (with f32 compute) takes the bf16 product of bf16_products.h.
template <class T>
void projection_fwd(const Tensor& W, const Tensor& bias, const T* X, int64_t N, int64_t in_f,
                    int64_t out_f, T beta, T* Y, bool bf16) {
  bool done = false;
  if constexpr (std::is_same_v<T, float>) {
    if (bf16) bf16_xwt(W, out_f, in_f, X, N, beta, Y);
    done = bf16;
  }
  if (done) {
  } else if (W.dtype() == dtype_of<T>) {
    kernels::gemm<T>(false, true, N, out_f, in_f, T(1), X, in_f, W.data<T>(), in_f, beta, Y, out_f);
  } else {
    converted_xwt<T>(W, out_f, in_f, X, N, beta, Y);
  }
  if (bias.defined()) {
    const T* B = bias.data<T>();
    kernels::parallel_rows(N, kernels::grain_for(out_f), [&](int64_t lo, int64_t hi) {
      for (int64_t n = lo; n < hi; ++n)
        for (int64_t o = 0; o < out_f; ++o) Y[n * out_f + o] += B[o];
    });
  }
}

// dx += dY·W; dW += dYᵀ·x; db += Σ_rows dY — each only when that input requires grad. dx is
// stored rather than added when this is the first gradient to reach x. bf16 as in the forward.
template <class T>
void projection_bwd(Tape* t, const Var& x, const Var& w, const Var& b, const T* dY, int64_t N,
                    int64_t in_f, int64_t out_f, bool bf16) {
  if (x.requires_grad()) {
    bool fresh = false;
    T* dX = t->grad(x, &fresh).data<T>();
    const T beta = fresh ? T(0) : T(1);  // a fresh buffer is stored into, not added to
    const Tensor& W = w.value();
    bool done = false;
    if constexpr (std::is_same_v<T, float>) {
      if (bf16) bf16_dyw(W, out_f, in_f, dY, N, beta, dX);
      done = bf16;
    }
    if (done) {
    } else if (W.dtype() == dtype_of<T>) {
      kernels::gemm<T>(false, false, N, in_f, out_f, T(1), dY, out_f, W.data<T>(), in_f, beta, dX,
                       in_f);
    } else {
      converted_dyw<T>(W, out_f, in_f, dY, N, beta, dX);
    }
  }
  if (w.requires_grad())
    kernels::gemm<T>(true, false, out_f, in_f, N, T(1), dY, out_f, x.value().data<T>(), in_f, T(1),
                     t->grad(w).data<T>(), in_f);
  if (b.defined() && b.requires_grad()) {
    // Column sums: each column is summed over rows in order by one task (deterministic).
    T* dB = t->grad(b).data<T>();
    kernels::parallel_rows(out_f, 256, [&](int64_t lo, int64_t hi) {
      for (int64_t n = 0; n < N; ++n)
        for (int64_t o = lo; o < hi; ++o) dB[o] += dY[n * out_f + o];
    });
  }
}

}  // namespace hone::ops_detail
