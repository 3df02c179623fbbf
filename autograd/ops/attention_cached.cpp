// Inference attention over a KV cache: the training kernel with Tq new rows over Tk cached rows.
#include <vector>

#include "autograd/kernels/attention.h"
#include "autograd/ops.h"

namespace hone {

Tensor attention_cached(const Tensor& q, const Tensor& k, const Tensor& v, int64_t n_heads,
                        int64_t n_kv_heads, int64_t head_dim) {
  const int64_t tq = q.dim(0), tk = k.dim(0);
  if (q.dtype() != DType::F32 || k.dtype() != DType::F32 || v.dtype() != DType::F32)
    throw Error("attention_cached: expects F32 tensors");
  if (q.dim(1) != n_heads * head_dim || k.dim(1) != n_kv_heads * head_dim ||
      v.shape() != k.shape() || tk < tq)
    throw Error("attention_cached: q " + shape_str(q.shape()) + ", k " + shape_str(k.shape()) +
                ", v " + shape_str(v.shape()) + " do not fit " + std::to_string(n_heads) + "/" +
                std::to_string(n_kv_heads) + " heads of " + std::to_string(head_dim));
  Tensor out = Tensor::empty(DType::F32, {tq, n_heads * head_dim});
  thread_local std::vector<float> lse;  // (Hq, Tq), not needed after the forward
  lse.resize(static_cast<size_t>(n_heads * tq));
  kernels::attention_fwd<float>(1, tq, tk, n_heads, n_kv_heads, head_dim, q.data<float>(),
                                k.data<float>(), v.data<float>(), out.data<float>(), lse.data());
  return out;
}

}  // namespace hone
