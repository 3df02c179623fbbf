#include "autograd/kernels/rope.h"

#include <cmath>
#include <vector>

#include "autograd/kernels/parallel.h"

namespace hone::kernels {

namespace {

// sign = +1: forward rotation (y = R(a)·x, written); sign = −1: backward (dx += R(−a)·dy).
template <class T, bool kAccumulate>
void rope_apply(int64_t N, int64_t H, int64_t D, const T* x, const int32_t* pos,
                const double* inv_freq, T* y, T sign) {
  const int64_t half = D / 2;
  parallel_rows(N, grain_for(H * D), [&](int64_t lo, int64_t hi) {
    std::vector<T> cs(static_cast<size_t>(2 * half));  // once per chunk, not per row
    T* cos_a = cs.data();
    T* sin_a = cs.data() + half;
    for (int64_t n = lo; n < hi; ++n) {
      for (int64_t i = 0; i < half; ++i) {
        double a = static_cast<double>(pos[n]) * inv_freq[i];
        cos_a[i] = static_cast<T>(std::cos(a));
        sin_a[i] = sign * static_cast<T>(std::sin(a));
      }
      for (int64_t h = 0; h < H; ++h) {
        const T* xr = x + n * H * D + h * D;
        T* yr = y + n * H * D + h * D;
        for (int64_t i = 0; i < half; ++i) {
          T x1 = xr[i], x2 = xr[i + half];
          T y1 = x1 * cos_a[i] - x2 * sin_a[i];
          T y2 = x2 * cos_a[i] + x1 * sin_a[i];
          if constexpr (kAccumulate) {
            yr[i] += y1;
            yr[i + half] += y2;
          } else {
            yr[i] = y1;
            yr[i + half] = y2;
          }
        }
      }
    }
  });
}

template <class T>
void rope_ref(int64_t N, int64_t H, int64_t D, const T* x, const int32_t* pos,
              const double* inv_freq, T* y, double sign, bool acc) {
  int64_t half = D / 2;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < half; ++i) {
        double a = pos[n] * inv_freq[i];
        double c = std::cos(a), s = sign * std::sin(a);
        int64_t o = n * H * D + h * D;
        double x1 = x[o + i], x2 = x[o + i + half];
        double y1 = x1 * c - x2 * s, y2 = x2 * c + x1 * s;
        y[o + i] = static_cast<T>(acc ? y[o + i] + y1 : y1);
        y[o + i + half] = static_cast<T>(acc ? y[o + i + half] + y2 : y2);
      }
}

}  // namespace

template <class T>
void rope_fwd(int64_t N, int64_t H, int64_t D, const T* x, const int32_t* pos,
              const double* inv_freq, T* y) {
  rope_apply<T, false>(N, H, D, x, pos, inv_freq, y, T(1));
}
template <class T>
void rope_bwd(int64_t N, int64_t H, int64_t D, const T* dy, const int32_t* pos,
              const double* inv_freq, T* dx) {
  rope_apply<T, true>(N, H, D, dy, pos, inv_freq, dx, T(-1));
}
template <class T>
void rope_fwd_ref(int64_t N, int64_t H, int64_t D, const T* x, const int32_t* pos,
                  const double* inv_freq, T* y) {
  rope_ref(N, H, D, x, pos, inv_freq, y, 1.0, false);
}
template <class T>
void rope_bwd_ref(int64_t N, int64_t H, int64_t D, const T* dy, const int32_t* pos,
                  const double* inv_freq, T* dx) {
  rope_ref(N, H, D, dy, pos, inv_freq, dx, -1.0, true);
}

#define HONE_INST(F)                                                                               \
  template void F<float>(int64_t, int64_t, int64_t, const float*, const int32_t*, const double*,   \
                         float*);                                                                  \
  template void F<double>(int64_t, int64_t, int64_t, const double*, const int32_t*, const double*, \
                          double*);
HONE_INST(rope_fwd)
HONE_INST(rope_bwd)
HONE_INST(rope_fwd_ref)
HONE_INST(rope_bwd_ref)
#undef HONE_INST

}  // namespace hone::kernels
