// dora_linear: a DoRA (weight-decomposed LoRA) projection as one op, following Hugging Face
// PEFT's DoraLinearLayer.forward and DoraLinearVariant.forward (src/peft/tuners/lora/dora.py and
// variants.py, read at commit 5d602fdb):
//   y = residual + x·Wᵀ + b + (g − 1)⊙(xa·Wᵀ) + g⊙s·(xa·Aᵀ)·Bᵀ,   g = m / n (one per output)
// xa is x, or dropout(x) when training with dropout: PEFT then computes its base term from the
// dropped input without the bias (the (g − 1)·(xa·Wᵀ) above) and otherwise reuses the base
// output minus its bias, which is the same formula with xa = x, y = g⊙(x·Wᵀ + s·x·Aᵀ·Bᵀ) + b.
// n = ‖W + s·B·A‖ per row comes in as a plain tensor (dora_weight_norm): PEFT detaches it from
// the graph (DoRA paper §4.3), so no gradient flows through it into A or B.
// Saves Z = xa·Wᵀ + s·(xa·Aᵀ)·Bᵀ (N, out) for m's gradient and low = xa·Aᵀ (N, r).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "autograd/kernels/blas.h"
#include "autograd/kernels/elementwise.h"
#include "autograd/kernels/parallel.h"
#include "autograd/ops.h"
#include "autograd/ops/common.h"
#include "autograd/ops/linear_parts.h"

namespace hone {

using namespace ops_detail;

Tensor dora_weight_norm(const Tensor& w, const Tensor& a, const Tensor& bm, double s) {
  if (w.ndim() != 2 || a.ndim() != 2 || bm.ndim() != 2 || a.dim(1) != w.dim(1) ||
      bm.dim(0) != w.dim(0) || bm.dim(1) != a.dim(0))
    fail("dora_weight_norm", "A " + shape_str(a.shape()) + " and B " + shape_str(bm.shape()) +
                                 " do not fit W " + shape_str(w.shape()) +
                                 " (want A (r, in), B (out, r))");
  if (!is_float_compute(a.dtype()) || bm.dtype() != a.dtype())
    fail("dora_weight_norm", "A and B must share the compute dtype F32 or F64");
  const int64_t out_f = w.dim(0), in_f = w.dim(1), r = a.dim(0);
  Tensor n = Tensor::empty(a.dtype(), {out_f});
  dispatch(a.dtype(), [&](auto z) {
    using T = decltype(z);
    // Fixed blocks of rows (not one per thread), each converted and multiplied alone: every
    // norm is the same sum whatever the thread count, so runs and pipeline stages agree bitwise.
    constexpr int64_t kRows = 16;
    const int64_t blocks = (out_f + kRows - 1) / kRows;
    const T* A = a.data<T>();
    const T* B = bm.data<T>();
    T* N = n.data<T>();
    kernels::parallel_rows(blocks, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t blk = lo; blk < hi; ++blk) {
        const int64_t o0 = blk * kRows, o1 = std::min(out_f, o0 + kRows);
        T* v = weight_scratch<T>((o1 - o0) * in_f);
        convert_weight_part<T>(w, in_f, o0, o1, 0, in_f, v);
        kernels::gemm_serial<T>(false, false, o1 - o0, in_f, r, static_cast<T>(s), B + o0 * r, r, A,
                                in_f, T(1), v, in_f);  // V = W + s·B·A
        for (int64_t o = o0; o < o1; ++o) {
          double sq = 0;
          for (int64_t i = 0; i < in_f; ++i) {
            const double e = v[(o - o0) * in_f + i];
            sq += e * e;
          }
          N[o] = static_cast<T>(std::sqrt(sq));
        }
      }
    });
  });
  return n;
}

Var dora_linear(Tape* t, const Var& x, const Var& w, const Var& b, const Var& xa, const Var& a,
                const Var& bm, const Var& m, const Tensor& norm, double s, const Var& residual) {
  require_compute("dora_linear", "x", x);
  require_compute("dora_linear", "xa", xa);
  const DType ct = x.dtype();
  require_weight("dora_linear", "W", w, ct);
  if (w.requires_grad()) fail("dora_linear", "W must be frozen (DoRA trains m, A and B)");
  if (w.value().ndim() != 2 || x.value().ndim() < 1 || x.shape().back() != w.shape()[1])
    fail("dora_linear", "x " + shape_str(x.shape()) + " does not match W " + shape_str(w.shape()) +
                            " (want x (..., in), W (out, in))");
  const int64_t out_f = w.shape()[0], in_f = w.shape()[1];
  if (xa.shape() != x.shape() || xa.dtype() != ct)
    fail("dora_linear", desc("xa", xa) + " must match " + desc("x", x));
  require_defined("dora_linear", "A", a);
  require_defined("dora_linear", "B", bm);
  require_defined("dora_linear", "m", m);
  if (a.value().ndim() != 2 || a.shape()[1] != in_f || bm.value().ndim() != 2 ||
      bm.shape()[0] != out_f || bm.shape()[1] != a.shape()[0])
    fail("dora_linear", "A " + shape_str(a.shape()) + " and B " + shape_str(bm.shape()) +
                            " do not fit W " + shape_str(w.shape()) +
                            " (want A (r, in), B (out, r))");
  if (a.dtype() != ct || bm.dtype() != ct || m.dtype() != ct)
    fail("dora_linear", desc("A", a) + ", " + desc("B", bm) + ", " + desc("m", m) +
                            ": expected the compute dtype");
  if (m.value().numel() != out_f || !norm.defined() || norm.numel() != out_f || norm.dtype() != ct)
    fail("dora_linear", desc("m", m) + " and the norm must be (out) = (" + std::to_string(out_f) +
                            ") in the compute dtype");
  const int64_t r = a.shape()[0];
  const int64_t N = in_f ? x.value().numel() / in_f : 0;
  Tensor bias;
  if (b.defined()) {
    require_weight("dora_linear", "b", b, ct);
    if (b.value().numel() != out_f)
      fail("dora_linear",
           "b " + shape_str(b.shape()) + " does not match W " + shape_str(w.shape()));
    bias = as_compute(b.value(), ct);
  }
  if (residual.defined()) {
    require_compute("dora_linear", "residual", residual);
    if (residual.dtype() != ct || residual.value().numel() != N * out_f)
      fail("dora_linear", desc("residual", residual) + " must be (N, out) = (" + std::to_string(N) +
                              ", " + std::to_string(out_f) + ")");
  }
  // xa is x itself unless dropout made a separate input.
  const bool separate = xa.impl() != x.impl();
  Shape yshape = x.shape();
  yshape.back() = out_f;
  Tensor y = Tensor::empty(ct, yshape);  // (N, out)
  Tensor zt = Tensor::empty(ct, {N, out_f});
  Tensor low = Tensor::empty(ct, {N, r});
  Tensor g = Tensor::empty(ct, {out_f});  // m / n
  const bool bf16 = bf16_product_for(w);  // decided once: the backward follows the forward
  dispatch(ct, [&](auto z0) {
    using T = decltype(z0);
    T* Y = y.data<T>();
    T* Z = zt.data<T>();
    T* G = g.data<T>();
    for (int64_t o = 0; o < out_f; ++o) G[o] = m.value().data<T>()[o] / norm.data<T>()[o];
    const T* XA = xa.value().data<T>();
    projection_fwd<T>(w.value(), Tensor(), XA, N, in_f, out_f, T(0), Z, bf16);  // Z = xa·Wᵀ
    const bool res = residual.defined();
    if (res) std::memcpy(Y, residual.value().data<T>(), static_cast<size_t>(N * out_f) * sizeof(T));
    if (separate) {  // Y = residual + x·Wᵀ − xa·Wᵀ, the part g does not scale
      projection_fwd<T>(w.value(), Tensor(), x.value().data<T>(), N, in_f, out_f, res ? T(1) : T(0),
                        Y, bf16);
      kernels::axpy<T>(N * out_f, T(-1), Z, Y);
    } else if (!res) {
      std::fill(Y, Y + N * out_f, T(0));
    }
    T* L = low.data<T>();
    kernels::gemm<T>(false, true, N, r, in_f, T(1), XA, in_f, a.value().data<T>(), in_f, T(0), L,
                     r);
    kernels::gemm<T>(false, true, N, out_f, r, static_cast<T>(s), L, r, bm.value().data<T>(), r,
                     T(1), Z, out_f);  // Z += s·low·Bᵀ
    const T* Bi = bias.defined() ? bias.data<T>() : nullptr;
    kernels::parallel_rows(N, kernels::grain_for(out_f), [&](int64_t lo, int64_t hi) {
      for (int64_t n = lo; n < hi; ++n)
        for (int64_t o = 0; o < out_f; ++o)
          Y[n * out_f + o] += G[o] * Z[n * out_f + o] + (Bi ? Bi[o] : T(0));
    });
  });
  const bool rg = needs_grad(t, {&x, &b, &xa, &a, &bm, &m, &residual});
  Var out(std::move(y), rg);
  if (rg)
    t->record([t, x, w, b, xa, a, bm, m, norm, s, residual, zt, low, g, out, N, in_f, out_f, r,
               bf16, separate] {
      if (!out.has_grad()) return;
      dispatch(out.dtype(), [&](auto z0) {
        using T = decltype(z0);
        const T* dY = out.grad().data<T>();  // (N, out)
        const T* Gs = g.data<T>();
        const T ts = static_cast<T>(s);
        // Column sums over rows in order, in f64, one task per column range (deterministic).
        auto column_sums = [&](T* dst, bool with_z) {
          const T* Z = zt.data<T>();
          const T* nrm = norm.data<T>();
          kernels::parallel_rows(out_f, 256, [&](int64_t lo, int64_t hi) {
            std::vector<double> acc(static_cast<size_t>(hi - lo), 0.0);
            for (int64_t n = 0; n < N; ++n)
              for (int64_t o = lo; o < hi; ++o)
                acc[static_cast<size_t>(o - lo)] +=
                    with_z ? static_cast<double>(dY[n * out_f + o]) * Z[n * out_f + o]
                           : static_cast<double>(dY[n * out_f + o]);
            for (int64_t o = lo; o < hi; ++o) {
              const double v = acc[static_cast<size_t>(o - lo)];
              dst[o] += static_cast<T>(with_z ? v / nrm[o] : v);
            }
          });
        };
        if (m.requires_grad()) column_sums(t->grad(m).data<T>(), true);  // dm = Σ dY⊙Z / n
        if (b.defined() && b.requires_grad()) column_sums(t->grad(b).data<T>(), false);
        if (residual.requires_grad()) {
          bool fresh = false;
          T* dR = t->grad(residual, &fresh).data<T>();
          if (fresh)
            std::copy(dY, dY + N * out_f, dR);
          else
            kernels::axpy<T>(N * out_f, T(1), dY, dR);
        }
        // dG = g⊙dY: the gradient of everything g scales.
        Tensor dgt = Tensor::empty(out.dtype(), {N, out_f});
        T* dG = dgt.data<T>();
        kernels::parallel_rows(N, kernels::grain_for(out_f), [&](int64_t lo, int64_t hi) {
          for (int64_t n = lo; n < hi; ++n)
            for (int64_t o = 0; o < out_f; ++o) dG[n * out_f + o] = Gs[o] * dY[n * out_f + o];
        });
        if (separate) {
          projection_bwd<T>(t, x, w, Var(), dY, N, in_f, out_f, bf16);  // dx += dY·W
          if (xa.requires_grad()) {                                     // dxa += (g − 1)⊙dY·W
            Tensor h = Tensor::empty(out.dtype(), {N, out_f});
            T* H = h.data<T>();
            for (int64_t i = 0; i < N * out_f; ++i) H[i] = dG[i] - dY[i];
            projection_bwd<T>(t, xa, w, Var(), H, N, in_f, out_f, bf16);
          }
        } else {
          projection_bwd<T>(t, x, w, Var(), dG, N, in_f, out_f, bf16);  // dx += g⊙dY·W
        }
        if (bm.requires_grad())  // dB += s·dGᵀ·low
          kernels::gemm<T>(true, false, out_f, r, N, ts, dG, out_f, low.data<T>(), r, T(1),
                           t->grad(bm).data<T>(), r);
        if (a.requires_grad() || xa.requires_grad()) {
          Tensor dlow = Tensor::empty(out.dtype(), {N, r});  // s·dG·B
          T* dL = dlow.data<T>();
          kernels::gemm<T>(false, false, N, r, out_f, ts, dG, out_f, bm.value().data<T>(), r, T(0),
                           dL, r);
          if (a.requires_grad())  // dA += dlowᵀ·xa
            kernels::gemm<T>(true, false, r, in_f, N, T(1), dL, r, xa.value().data<T>(), in_f, T(1),
                             t->grad(a).data<T>(), in_f);
          if (xa.requires_grad())  // dxa += dlow·A
            kernels::gemm<T>(false, false, N, in_f, r, T(1), dL, r, a.value().data<T>(), in_f, T(1),
                             t->grad(xa).data<T>(), in_f);
        }
      });
    });
  return out;
}

}  // namespace hone
