// RMSNorm over the last dim: y = x · r · w with r = 1/sqrt(mean(x²) + eps), per row.
#pragma once

#include <cstdint>

namespace hone::kernels {

// x, y (rows, C); w (C); inv_rms (rows) receives r for the backward.
template <class T>
void rmsnorm_fwd(int64_t rows, int64_t C, const T* x, const T* w, double eps, T* y, T* inv_rms);
// dx (rows, C) += ∂/∂x; dw (C) += Σ_rows dy·x·r. Either may be null. The dw sum runs over fixed
// chunks of rows whose partials are added in chunk order: deterministic for any thread count.
template <class T>
void rmsnorm_bwd(int64_t rows, int64_t C, const T* x, const T* w, const T* inv_rms, const T* dy,
                 T* dx, T* dw);

template <class T>
void rmsnorm_fwd_ref(int64_t rows, int64_t C, const T* x, const T* w, double eps, T* y, T* inv_rms);
template <class T>
void rmsnorm_bwd_ref(int64_t rows, int64_t C, const T* x, const T* w, const T* inv_rms, const T* dy,
                     T* dx, T* dw);

}  // namespace hone::kernels
