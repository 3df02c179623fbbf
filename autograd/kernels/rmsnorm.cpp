#include "autograd/kernels/rmsnorm.h"

#include <cmath>
#include <vector>

#include "autograd/kernels/parallel.h"

namespace hone::kernels {

template <class T>
void rmsnorm_fwd(int64_t rows, int64_t C, const T* x, const T* w, double eps, T* y, T* inv_rms) {
  parallel_rows(rows, grain_for(C), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const T* xr = x + r * C;
      T* yr = y + r * C;
      T ss = 0;
      for (int64_t c = 0; c < C; ++c) ss += xr[c] * xr[c];
      T inv = static_cast<T>(1.0 / std::sqrt(static_cast<double>(ss) / double(C) + eps));
      inv_rms[r] = inv;
      for (int64_t c = 0; c < C; ++c) yr[c] = xr[c] * inv * w[c];
    }
  });
}

template <class T>
void rmsnorm_bwd(int64_t rows, int64_t C, const T* x, const T* w, const T* inv_rms, const T* dy,
                 T* dx, T* dw) {
  // dx_j = r·w_j·dy_j − x_j · r³/C · Σ_k dy_k·w_k·x_k
  if (dx) {
    parallel_rows(rows, grain_for(C), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        const T* xr = x + r * C;
        const T* gr = dy + r * C;
        T* dxr = dx + r * C;
        T inv = inv_rms[r];
        T dot = 0;
        for (int64_t c = 0; c < C; ++c) dot += gr[c] * w[c] * xr[c];
        T k = dot * inv * inv * inv / static_cast<T>(C);
        for (int64_t c = 0; c < C; ++c) dxr[c] += inv * w[c] * gr[c] - xr[c] * k;
      }
    });
  }
  if (dw) {
    constexpr int64_t kChunk = 64;  // fixed, so the summation order never depends on threads
    int64_t chunks = (rows + kChunk - 1) / kChunk;
    std::vector<T> part(static_cast<size_t>(chunks * C), T(0));
    parallel_rows(chunks, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t ch = lo; ch < hi; ++ch) {
        T* p = part.data() + ch * C;
        int64_t r_end = std::min(rows, (ch + 1) * kChunk);
        for (int64_t r = ch * kChunk; r < r_end; ++r) {
          const T* xr = x + r * C;
          const T* gr = dy + r * C;
          T inv = inv_rms[r];
          for (int64_t c = 0; c < C; ++c) p[c] += gr[c] * xr[c] * inv;
        }
      }
    });
    for (int64_t ch = 0; ch < chunks; ++ch)
      for (int64_t c = 0; c < C; ++c) dw[c] += part[ch * C + c];
  }
}

template <class T>
void rmsnorm_fwd_ref(int64_t rows, int64_t C, const T* x, const T* w, double eps, T* y,
                     T* inv_rms) {
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t c = 0; c < C; ++c) ss += double(x[r * C + c]) * x[r * C + c];
    double inv = 1.0 / std::sqrt(ss / double(C) + eps);
    inv_rms[r] = static_cast<T>(inv);
    for (int64_t c = 0; c < C; ++c) y[r * C + c] = static_cast<T>(x[r * C + c] * inv * w[c]);
  }
}

template <class T>
void rmsnorm_bwd_ref(int64_t rows, int64_t C, const T* x, const T* w, const T* inv_rms, const T* dy,
                     T* dx, T* dw) {
  for (int64_t r = 0; r < rows; ++r) {
    double inv = inv_rms[r];
    double dot = 0;
    for (int64_t c = 0; c < C; ++c) dot += double(dy[r * C + c]) * w[c] * x[r * C + c];
    for (int64_t c = 0; c < C; ++c) {
      if (dx)
        dx[r * C + c] += static_cast<T>(inv * w[c] * dy[r * C + c] -
                                        x[r * C + c] * dot * inv * inv * inv / double(C));
      if (dw) dw[c] += static_cast<T>(double(dy[r * C + c]) * x[r * C + c] * inv);
    }
  }
}

#define HONE_INST(T)                                                                              \
  template void rmsnorm_fwd<T>(int64_t, int64_t, const T*, const T*, double, T*, T*);             \
  template void rmsnorm_bwd<T>(int64_t, int64_t, const T*, const T*, const T*, const T*, T*, T*); \
  template void rmsnorm_fwd_ref<T>(int64_t, int64_t, const T*, const T*, double, T*, T*);         \
  template void rmsnorm_bwd_ref<T>(int64_t, int64_t, const T*, const T*, const T*, const T*, T*,  \
                                   T*);
HONE_INST(float)
HONE_INST(double)
#undef HONE_INST

}  // namespace hone::kernels
