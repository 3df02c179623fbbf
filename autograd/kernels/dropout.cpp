#include "autograd/kernels/dropout.h"

#include "autograd/rng.h"

namespace hone::kernels {

template <class T>
uint64_t dropout_fwd(int64_t n, double p, uint64_t state, const T* x, T* y) {
  Rng rng(state);
  const T keep_scale = static_cast<T>(1.0 / (1.0 - p));
  for (int64_t i = 0; i < n; ++i) y[i] = rng.uniform() >= p ? x[i] * keep_scale : T(0);
  return rng.state();
}

template <class T>
void dropout_bwd(int64_t n, double p, uint64_t state, const T* dy, T* dx) {
  Rng rng(state);
  const T keep_scale = static_cast<T>(1.0 / (1.0 - p));
  for (int64_t i = 0; i < n; ++i)
    if (rng.uniform() >= p) dx[i] += dy[i] * keep_scale;
}

#define HONE_INST(T)                                                         \
  template uint64_t dropout_fwd<T>(int64_t, double, uint64_t, const T*, T*); \
  template void dropout_bwd<T>(int64_t, double, uint64_t, const T*, T*);
HONE_INST(float)
HONE_INST(double)
#undef HONE_INST

}  // namespace hone::kernels
