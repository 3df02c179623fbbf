// Causal GQA attention. Saves q, k, v, the output and the per-row log-sum-exp (B, Hq, T); the
// backward recomputes the probabilities from them.
#include "autograd/kernels/attention.h"

#include <memory>
#include <type_traits>

#include "autograd/kernels/bf16_gemm.h"
#include "autograd/ops.h"
#include "autograd/ops/common.h"

namespace hone {

using namespace ops_detail;

Var attention(Tape* t, const Var& q, const Var& k, const Var& v, int64_t batch, int64_t n_heads,
              int64_t n_kv_heads, int64_t head_dim, const std::vector<int32_t>* segment_start) {
  require_compute("attention", "q", q);
  require_compute("attention", "k", k);
  require_compute("attention", "v", v);
  const DType ct = q.dtype();
  if (k.dtype() != ct || v.dtype() != ct)
    fail("attention", "dtypes differ: " + desc("q", q) + ", " + desc("k", k) + ", " + desc("v", v));
  if (batch <= 0 || n_heads <= 0 || n_kv_heads <= 0 || head_dim <= 0 || n_heads % n_kv_heads != 0)
    fail("attention",
         "bad heads: batch=" + std::to_string(batch) + " n_heads=" + std::to_string(n_heads) +
             " n_kv_heads=" + std::to_string(n_kv_heads) + " head_dim=" + std::to_string(head_dim));
  const int64_t rows = q.value().ndim() == 2 ? q.shape()[0] : -1;
  const Shape want_q{rows, n_heads * head_dim}, want_kv{rows, n_kv_heads * head_dim};
  if (rows < 0 || rows % batch != 0 || q.shape() != want_q || k.shape() != want_kv ||
      v.shape() != want_kv)
    fail("attention", "shapes q " + shape_str(q.shape()) + ", k " + shape_str(k.shape()) + ", v " +
                          shape_str(v.shape()) + " do not fit batch=" + std::to_string(batch) +
                          ", q (B*T, " + std::to_string(n_heads * head_dim) + "), k/v (B*T, " +
                          std::to_string(n_kv_heads * head_dim) + ")");
  const int64_t T = rows / batch;
  // Shared with the backward closure; null when examples are not packed.
  std::shared_ptr<const std::vector<int32_t>> starts;
  if (segment_start) {
    if (static_cast<int64_t>(segment_start->size()) != rows)
      fail("attention", "segment_start has " + std::to_string(segment_start->size()) +
                            " entries for " + std::to_string(rows) + " rows");
    for (int64_t r = 0; r < rows; ++r) {
      const int32_t st = (*segment_start)[r];
      if (st < 0 || st > r % T)
        fail("attention", "segment_start[" + std::to_string(r) + "] = " + std::to_string(st) +
                              " is not in [0, " + std::to_string(r % T) + "]");
    }
    starts = std::make_shared<const std::vector<int32_t>>(*segment_start);
  }
  const int32_t* ks = starts ? starts->data() : nullptr;
  Tensor y = Tensor::empty(ct, q.shape());
  Tensor lse = Tensor::empty(ct, {batch, n_heads, T});
  // f32 attention runs its products in bf16 when the frozen-base products do
  // (training.compute_dtype); the backward follows the forward's choice.
  const bool bf16 = ct == DType::F32 && kernels::bf16_products();
  if (bf16)
    kernels::attention_fwd_bf16(batch, T, T, n_heads, n_kv_heads, head_dim, q.value().data<float>(),
                                k.value().data<float>(), v.value().data<float>(), y.data<float>(),
                                lse.data<float>(), ks);
  else
    dispatch(ct, [&](auto z) {
      using E = decltype(z);
      kernels::attention_fwd<E>(batch, T, T, n_heads, n_kv_heads, head_dim, q.value().data<E>(),
                                k.value().data<E>(), v.value().data<E>(), y.data<E>(),
                                lse.data<E>(), ks);
    });
  const bool rg = needs_grad(t, {&q, &k, &v});
  Var out(std::move(y), rg);
  if (rg)
    t->record([t, q, k, v, out, lse, starts, batch, T, n_heads, n_kv_heads, head_dim, bf16] {
      if (!out.has_grad()) return;
      dispatch(out.dtype(), [&](auto z) {
        using E = decltype(z);
        // First gradients are stored into their fresh buffers. q, k and v are distinct
        // tensors here (their shapes differ under GQA); should two be one Var, the second
        // request finds the buffer made (not fresh) and adds.
        bool fq = false, fk = false, fv = false;
        E* dq = q.requires_grad() ? t->grad(q, &fq).data<E>() : nullptr;
        E* dk = k.requires_grad() ? t->grad(k, &fk).data<E>() : nullptr;
        E* dv = v.requires_grad() ? t->grad(v, &fv).data<E>() : nullptr;
        if constexpr (std::is_same_v<E, float>)
          if (bf16) {
            kernels::attention_bwd_bf16(
                batch, T, T, n_heads, n_kv_heads, head_dim, q.value().data<E>(),
                k.value().data<E>(), v.value().data<E>(), out.value().data<E>(), lse.data<E>(),
                out.grad().data<E>(), dq, dk, dv, starts ? starts->data() : nullptr, fq, fk, fv);
            return;
          }
        kernels::attention_bwd<E>(batch, T, T, n_heads, n_kv_heads, head_dim, q.value().data<E>(),
                                  k.value().data<E>(), v.value().data<E>(), out.value().data<E>(),
                                  lse.data<E>(), out.grad().data<E>(), dq, dk, dv,
                                  starts ? starts->data() : nullptr, fq, fk, fv);
      });
    });
  return out;
}

}  // namespace hone
