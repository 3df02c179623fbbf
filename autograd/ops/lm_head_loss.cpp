// lm_head_cross_entropy: the LM head (x·Wᵀ) and the mean cross-entropy fused and chunked over
// rows, so the (N, V) logits never exist. Only rows whose target is not ignored are computed:
// they are gathered chunk by chunk into a (chunk, C) buffer, their logits formed in a reusable
// (chunk, V) scratch, and reduced to a log-sum-exp each. The backward recomputes each chunk's
// logits, turns them in place into (softmax − onehot)·scale and multiplies back by W (and xᵀ).
// Saves x (shared), the valid rows, their targets and their log-sum-exps: O(N) beyond x.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "autograd/kernels/blas.h"
#include "autograd/kernels/parallel.h"
#include "autograd/kernels/vmath.h"
#include "autograd/ops.h"
#include "autograd/ops/common.h"
#include "autograd/ops/weight_blocks.h"

namespace hone {

using namespace ops_detail;

namespace {

// Gathers rows rows[r0..r1) of X (·, C) into xb (r1-r0, C).
template <class T>
void gather_rows(const T* X, int64_t C, const int64_t* rows, int64_t n, T* xb) {
  kernels::parallel_rows(n, kernels::grain_for(C), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) std::copy_n(X + rows[i] * C, C, xb + i * C);
  });
}

// logits (n, V) = xb (n, C) · Wᵀ, W converted tile by tile as linear does.
template <class T>
void chunk_logits(const Tensor& W, int64_t V, int64_t C, const T* xb, int64_t n, T* logits) {
  for_weight_blocks<T>(W, V, C, [&](int64_t o0, int64_t o1, const T* Wb) {
    kernels::gemm<T>(false, true, n, o1 - o0, C, T(1), xb, C, Wb, C, T(0), logits + o0, V);
  });
}

}  // namespace

Var lm_head_cross_entropy(Tape* t, const Var& x, const Var& w, const std::vector<int32_t>& targets,
                          int32_t ignore_index, int64_t chunk_rows) {
  const char* op = "lm_head_cross_entropy";
  require_compute(op, "x", x);
  const DType ct = x.dtype();
  require_weight(op, "W", w, ct);
  if (w.value().ndim() != 2 || x.value().ndim() < 1 || x.shape().back() != w.shape()[1])
    fail(op, "x " + shape_str(x.shape()) + " does not match W " + shape_str(w.shape()) +
                 " (want x (..., C), W (V, C))");
  const int64_t V = w.shape()[0], C = w.shape()[1];
  if (V == 0) fail(op, "W " + shape_str(w.shape()) + " must have V > 0 rows");
  const int64_t N = C ? x.value().numel() / C : 0;
  if (static_cast<int64_t>(targets.size()) != N)
    fail(op, "x " + shape_str(x.shape()) + " has " + std::to_string(N) + " rows but " +
                 std::to_string(targets.size()) + " targets were given");
  if (chunk_rows < 1) fail(op, "chunk_rows " + std::to_string(chunk_rows) + " must be >= 1");
  // The rows that count, in order, and their targets.
  auto rows = std::make_shared<std::vector<int64_t>>();
  auto tgt = std::make_shared<std::vector<int32_t>>();
  for (int64_t n = 0; n < N; ++n) {
    if (targets[n] == ignore_index) continue;
    if (targets[n] < 0 || targets[n] >= V)
      fail(op, "target " + std::to_string(targets[n]) + " at row " + std::to_string(n) +
                   " is out of range for V=" + std::to_string(V) + " (ignore_index " +
                   std::to_string(ignore_index) + ")");
    rows->push_back(n);
    tgt->push_back(targets[n]);
  }
  const int64_t count = static_cast<int64_t>(rows->size());
  const int64_t chunk = std::min(chunk_rows, std::max<int64_t>(count, 1));
  Tensor lse = Tensor::empty(ct, {count});
  Tensor y = Tensor::empty(ct, {1});
  dispatch(ct, [&](auto z) {
    using T = decltype(z);
    std::vector<T> xb(static_cast<size_t>(count ? chunk * C : 0));
    std::vector<T> logits(static_cast<size_t>(count ? chunk * V : 0));
    std::vector<T> rowloss(static_cast<size_t>(chunk));
    T* L = lse.data<T>();
    double sum = 0;  // sequential, in double, in row order: as cross_entropy sums
    for (int64_t r0 = 0; r0 < count; r0 += chunk) {
      const int64_t n = std::min(chunk, count - r0);
      gather_rows<T>(x.value().data<T>(), C, rows->data() + r0, n, xb.data());
      chunk_logits<T>(w.value(), V, C, xb.data(), n, logits.data());
      const int32_t* tg = tgt->data() + r0;
      kernels::parallel_rows(n, kernels::grain_for(V), [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) {
          T* row = logits.data() + i * V;
          const T m = kernels::row_max(row, V);
          const T at_target = row[tg[i]];
          kernels::exp_shifted(row, V, m, row);  // the logits are not needed after this
          L[r0 + i] = m + std::log(kernels::row_sum(row, V));
          rowloss[i] = L[r0 + i] - at_target;
        }
      });
      for (int64_t i = 0; i < n; ++i) sum += rowloss[i];
    }
    y.data<T>()[0] = static_cast<T>(count ? sum / static_cast<double>(count) : 0.0);
  });
  const bool rg = needs_grad(t, {&x, &w});
  Var out(std::move(y), rg);
  if (rg && count > 0)
    t->record([t, x, w, out, rows, tgt, lse, count, chunk, V, C] {
      if (!out.has_grad()) return;
      dispatch(out.dtype(), [&](auto z) {
        using T = decltype(z);
        const T scale = static_cast<T>(out.grad().data<T>()[0] / static_cast<double>(count));
        std::vector<T> xb(static_cast<size_t>(chunk * C));
        std::vector<T> dxb(x.requires_grad() ? static_cast<size_t>(chunk * C) : 0);
        std::vector<T> g(static_cast<size_t>(chunk * V));  // logits, then dlogits in place
        T* dX = x.requires_grad() ? t->grad(x).data<T>() : nullptr;
        T* dW = w.requires_grad() ? t->grad(w).data<T>() : nullptr;
        const T* L = lse.data<T>();
        for (int64_t r0 = 0; r0 < count; r0 += chunk) {
          const int64_t n = std::min(chunk, count - r0);
          const int64_t* rw = rows->data() + r0;
          gather_rows<T>(x.value().data<T>(), C, rw, n, xb.data());
          const int32_t* tg = tgt->data() + r0;
          if (dX) std::fill_n(dxb.data(), n * C, T(0));
          // Per tile of W (converted once per chunk): its logits, turned in place into
          // (softmax − onehot)·scale with the saved lse, then dxb (n, C) += dlogits · W_tile.
          for_weight_blocks<T>(w.value(), V, C, [&](int64_t o0, int64_t o1, const T* Wb) {
            const int64_t vb = o1 - o0;
            kernels::gemm<T>(false, true, n, vb, C, T(1), xb.data(), C, Wb, C, T(0), g.data() + o0,
                             V);
            kernels::parallel_rows(n, kernels::grain_for(vb), [&](int64_t lo, int64_t hi) {
              for (int64_t i = lo; i < hi; ++i) {
                T* row = g.data() + i * V;
                const T l = L[r0 + i];
                kernels::exp_shifted(row + o0, o1 - o0, l, row + o0);
                for (int64_t j = o0; j < o1; ++j) row[j] *= scale;
                if (tg[i] >= o0 && tg[i] < o1) row[tg[i]] -= scale;
              }
            });
            if (dX)
              kernels::gemm<T>(false, false, n, C, vb, T(1), g.data() + o0, V, Wb, C, T(1),
                               dxb.data(), C);
          });
          if (dX) {  // scattered into dX's rows
            kernels::parallel_rows(n, kernels::grain_for(C), [&](int64_t lo, int64_t hi) {
              for (int64_t i = lo; i < hi; ++i) {
                T* d = dX + rw[i] * C;
                const T* s = dxb.data() + i * C;
                for (int64_t c = 0; c < C; ++c) d[c] += s[c];
              }
            });
          }
          if (dW)  // dW (V, C) += dlogitsᵀ (V, n) · xb (n, C)
            kernels::gemm<T>(true, false, V, C, n, T(1), g.data(), V, xb.data(), C, T(1), dW, C);
        }
      });
    });
  return out;
}

}  // namespace hone
