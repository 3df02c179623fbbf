// lm_head_cross_entropy: the LM head (x·Wᵀ) and the mean cross-entropy fused and tiled, so the
// (N, V) logits never exist. Only rows whose target is not ignored are computed: they are
// gathered once into (count, C), and W is walked tile by tile (each tile converted once per pass
// when stored as BF16/F16/Q8_0/Q4_0), a chunk of rows × a tile of logits at a time, each row's
// log-sum-exp accumulated online. The backward recomputes each tile's logits, turns them in
// place into (softmax − onehot)·scale and multiplies back by the tile (and xᵀ). Saves x (shared),
// the valid rows, their targets and their log-sum-exps: O(N) beyond x.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "autograd/block_cache.h"
#include "autograd/kernels/blas.h"
#include "autograd/kernels/parallel.h"
#include "autograd/kernels/vmath.h"
#include "autograd/ops.h"
#include "autograd/ops/bf16_products.h"
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

// Logits held at once: (rows of a chunk) × (rows of a W tile) <= this many elements (16 MB f32).
constexpr int64_t kScratchElems = int64_t{1} << 22;

// The walk both passes share: for each tile [o0, o1) of W's rows (converted once when W is not
// stored in T) and each chunk [r0, r0 + n) of the gathered rows xb (count, C), the logits
// S (n, o1 − o0) = xb[r0 : r0 + n]·W_tileᵀ, then fn(o0, o1, W_tile, W_tile_bf16, r0, n, S).
// With xh (the rows xb rounded to bf16, f32 compute only) the logits are a bf16 product and
// W's tiles come as bf16 (W_tile null); otherwise as T (W_tile_bf16 null).
template <class T, class F>
void for_logit_blocks(const Tensor& W, int64_t V, int64_t C, const T* xb, const uint16_t* xh,
                      int64_t count, int64_t chunk, int64_t tile, T* S, const F& fn) {
  if constexpr (std::is_same_v<T, float>) {
    if (xh) {
      for_weight_blocks_bf16(
          W, V, C,
          [&](int64_t o0, int64_t o1, const uint16_t* Wh) {
            for (int64_t r0 = 0; r0 < count; r0 += chunk) {
              const int64_t n = std::min(chunk, count - r0);
              kernels::gemm_bf16(true, n, o1 - o0, C, xh + r0 * C, C, Wh, C, 0.0f, S, o1 - o0);
              fn(o0, o1, static_cast<const T*>(nullptr), Wh, r0, n, S);
            }
          },
          tile);
      return;
    }
  }
  for_weight_blocks<T>(
      W, V, C,
      [&](int64_t o0, int64_t o1, const T* Wb) {
        for (int64_t r0 = 0; r0 < count; r0 += chunk) {
          const int64_t n = std::min(chunk, count - r0);
          kernels::gemm<T>(false, true, n, o1 - o0, C, T(1), xb + r0 * C, C, Wb, C, T(0), S,
                           o1 - o0);
          fn(o0, o1, Wb, static_cast<const uint16_t*>(nullptr), r0, n, S);
        }
      },
      tile);
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
  // Tile-outer: W is visited (and, when stored as BF16/Q8_0/..., converted) once per pass, in
  // tiles of `tile` rows; for each tile, the valid rows go through in chunks of `chunk`, so the
  // logits held at once are (chunk, tile) <= kScratchElems. A row's log-sum-exp builds up across
  // tiles online (running max and rescaled sum).
  const int64_t tile = std::max<int64_t>(1, std::min(V, kWorkspaceElems / std::max<int64_t>(C, 1)));
  const int64_t chunk = std::max<int64_t>(
      1, std::min({chunk_rows, std::max<int64_t>(count, 1), kScratchElems / tile}));
  Tensor lse = Tensor::empty(ct, {count});
  Tensor y = Tensor::empty(ct, {1});
  // bf16 products (f32 compute, frozen W): decided once, the backward follows the forward.
  const bool bf16 = ct == DType::F32 && bf16_product_for(w);
  dispatch(ct, [&](auto z) {
    using T = decltype(z);
    std::vector<T> xb(static_cast<size_t>(count * C));
    gather_rows<T>(x.value().data<T>(), C, rows->data(), count, xb.data());
    const ScopedBlock<uint16_t> xh(bf16 ? static_cast<size_t>(count * C) : 0);  // xb rounded
    if constexpr (std::is_same_v<T, float>)
      if (bf16) round_rows_to_bf16(xb.data(), count, C, xh.data());
    std::vector<T> S(static_cast<size_t>(count ? chunk * tile : 0));
    std::vector<T> m(static_cast<size_t>(count), -std::numeric_limits<T>::infinity());
    std::vector<T> sum(static_cast<size_t>(count), T(0)), at_target(static_cast<size_t>(count));
    for_logit_blocks<T>(
        w.value(), V, C, xb.data(), bf16 ? xh.data() : nullptr, count, chunk, tile, S.data(),
        [&](int64_t o0, int64_t o1, const T*, const uint16_t*, int64_t r0, int64_t n, T* Sb) {
          const int64_t vb = o1 - o0;
          kernels::parallel_rows(n, kernels::grain_for(vb), [&](int64_t lo, int64_t hi) {
            for (int64_t i = lo; i < hi; ++i) {
              T* row = Sb + i * vb;
              const int64_t r = r0 + i;
              const int32_t tg = (*tgt)[r];
              if (tg >= o0 && tg < o1) at_target[r] = row[tg - o0];
              const T mt = kernels::row_max(row, vb);
              const T mn = std::max(m[r], mt);
              kernels::exp_shifted(row, vb, mn, row);
              sum[r] = sum[r] * std::exp(m[r] - mn) + kernels::row_sum(row, vb);
              m[r] = mn;
            }
          });
        });
    T* L = lse.data<T>();
    double total = 0;  // sequential, in double, in row order: as cross_entropy sums
    for (int64_t r = 0; r < count; ++r) {
      L[r] = m[r] + std::log(sum[r]);
      total += L[r] - at_target[r];
    }
    y.data<T>()[0] = static_cast<T>(count ? total / static_cast<double>(count) : 0.0);
  });
  const bool rg = needs_grad(t, {&x, &w});
  Var out(std::move(y), rg);
  if (rg && count > 0)
    t->record([t, x, w, out, rows, tgt, lse, count, chunk, tile, V, C, bf16] {
      if (!out.has_grad()) return;
      dispatch(out.dtype(), [&](auto z) {
        using T = decltype(z);
        const T scale = static_cast<T>(out.grad().data<T>()[0] / static_cast<double>(count));
        std::vector<T> xb(static_cast<size_t>(count * C));
        gather_rows<T>(x.value().data<T>(), C, rows->data(), count, xb.data());
        // bf16 rows, and dlogits of a chunk
        const ScopedBlock<uint16_t> xh(bf16 ? static_cast<size_t>(count * C) : 0);
        const ScopedBlock<uint16_t> gh(bf16 && x.requires_grad() ? static_cast<size_t>(chunk * tile)
                                                                 : 0);
        if constexpr (std::is_same_v<T, float>)
          if (bf16) round_rows_to_bf16(xb.data(), count, C, xh.data());
        std::vector<T> dxb(x.requires_grad() ? static_cast<size_t>(count * C) : 0, T(0));
        std::vector<T> g(static_cast<size_t>(chunk * tile));  // logits, then dlogits in place
        T* dW = w.requires_grad() ? t->grad(w).data<T>() : nullptr;
        const T* L = lse.data<T>();
        // Per tile of W (converted once): each chunk's logits, turned in place into
        // (softmax − onehot)·scale with the saved lse, then dxb += dlogits·W_tile and
        // dW_tile += dlogitsᵀ·xb.
        for_logit_blocks<T>(
            w.value(), V, C, xb.data(), bf16 ? xh.data() : nullptr, count, chunk, tile, g.data(),
            [&](int64_t o0, int64_t o1, const T* Wb, const uint16_t* Wh, int64_t r0, int64_t n,
                T* gb) {
              const int64_t vb = o1 - o0;
              const T* xr = xb.data() + r0 * C;
              kernels::parallel_rows(n, kernels::grain_for(vb), [&](int64_t lo, int64_t hi) {
                for (int64_t i = lo; i < hi; ++i) {
                  T* row = gb + i * vb;
                  kernels::exp_shifted(row, vb, L[r0 + i], row);
                  for (int64_t j = 0; j < vb; ++j) row[j] *= scale;
                  const int32_t tg = (*tgt)[r0 + i];
                  if (tg >= o0 && tg < o1) row[tg - o0] -= scale;
                }
              });
              if (!dxb.empty()) {
                if constexpr (std::is_same_v<T, float>) {
                  if (Wh) {  // the dlogits enter the bf16 product rounded, as x did
                    round_rows_to_bf16(gb, n, vb, gh.data());
                    kernels::gemm_bf16(false, n, C, vb, gh.data(), vb, Wh, C, 1.0f,
                                       dxb.data() + r0 * C, C);
                  }
                }
                if (Wb)
                  kernels::gemm<T>(false, false, n, C, vb, T(1), gb, vb, Wb, C, T(1),
                                   dxb.data() + r0 * C, C);
              }
              if (dW)  // dW rows [o0, o1) += dlogitsᵀ (vb, n) · xb (n, C)
                kernels::gemm<T>(true, false, vb, C, n, T(1), gb, vb, xr, C, T(1), dW + o0 * C, C);
            });
        if (!dxb.empty()) {  // scattered into dX's rows
          T* dX = t->grad(x).data<T>();
          kernels::parallel_rows(count, kernels::grain_for(C), [&](int64_t lo, int64_t hi) {
            for (int64_t i = lo; i < hi; ++i) {
              T* d = dX + (*rows)[i] * C;
              const T* s = dxb.data() + i * C;
              for (int64_t c = 0; c < C; ++c) d[c] += s[c];
            }
          });
        }
      });
    });
  return out;
}

}  // namespace hone
