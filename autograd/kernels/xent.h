// Fused softmax cross-entropy over rows of logits (N, V).
#pragma once

#include <cstdint>

namespace hone::kernels {

// Per row: lse[n] = log Σ exp(logits[n]); loss[n] = lse[n] − logits[n, target[n]], or 0 (and
// lse 0) for rows whose target == ignore_index. Targets must be in [0, V) otherwise.
template <class T>
void xent_fwd(int64_t N, int64_t V, const T* logits, const int32_t* targets, int32_t ignore_index,
              T* lse, T* loss);
// dlogits[n] += (softmax(logits[n]) − onehot(target[n])) · scale; ignored rows get nothing.
// store: dlogits is a fresh buffer, written (ignored rows with zeros) instead of added to.
template <class T>
void xent_bwd(int64_t N, int64_t V, const T* logits, const int32_t* targets, int32_t ignore_index,
              const T* lse, T scale, T* dlogits, bool store = false);

template <class T>
void xent_fwd_ref(int64_t N, int64_t V, const T* logits, const int32_t* targets,
                  int32_t ignore_index, T* lse, T* loss);
template <class T>
void xent_bwd_ref(int64_t N, int64_t V, const T* logits, const int32_t* targets,
                  int32_t ignore_index, const T* lse, T scale, T* dlogits);

}  // namespace hone::kernels
