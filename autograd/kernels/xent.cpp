#include "autograd/kernels/xent.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "autograd/kernels/parallel.h"
#include "autograd/kernels/vmath.h"

namespace hone::kernels {

template <class T>
void xent_fwd(int64_t N, int64_t V, const T* logits, const int32_t* targets, int32_t ignore_index,
              T* lse, T* loss) {
  parallel_rows(N, grain_for(V), [&](int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; ++n) {
      if (targets[n] == ignore_index) {
        lse[n] = 0;
        loss[n] = 0;
        continue;
      }
      const T* row = logits + n * V;
      // exp into a per-thread row buffer, then a lane sum: both vectorize.
      thread_local std::vector<T> e;
      if (e.size() < static_cast<size_t>(V)) e.resize(static_cast<size_t>(V));
      const T m = row_max(row, V);
      exp_shifted(row, V, m, e.data());
      lse[n] = m + std::log(row_sum(e.data(), V));
      loss[n] = lse[n] - row[targets[n]];
    }
  });
}

template <class T>
void xent_bwd(int64_t N, int64_t V, const T* logits, const int32_t* targets, int32_t ignore_index,
              const T* lse, T scale, T* dlogits, bool store) {
  parallel_rows(N, grain_for(V), [&](int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; ++n) {
      T* d = dlogits + n * V;
      if (targets[n] == ignore_index) {
        if (store) std::fill(d, d + V, T(0));
        continue;
      }
      const T* row = logits + n * V;
      if (store) {  // exp straight into the row, then scaled in place
        exp_shifted(row, V, lse[n], d);
        for (int64_t j = 0; j < V; ++j) d[j] *= scale;
      } else {
        thread_local std::vector<T> e;
        if (e.size() < static_cast<size_t>(V)) e.resize(static_cast<size_t>(V));
        exp_shifted(row, V, lse[n], e.data());
        for (int64_t j = 0; j < V; ++j) d[j] += e[j] * scale;
      }
      d[targets[n]] -= scale;
    }
  });
}

template <class T>
void xent_fwd_ref(int64_t N, int64_t V, const T* logits, const int32_t* targets,
                  int32_t ignore_index, T* lse, T* loss) {
  for (int64_t n = 0; n < N; ++n) {
    if (targets[n] == ignore_index) {
      lse[n] = loss[n] = 0;
      continue;
    }
    double m = -1e300, s = 0;
    for (int64_t j = 0; j < V; ++j) m = std::max(m, double(logits[n * V + j]));
    for (int64_t j = 0; j < V; ++j) s += std::exp(double(logits[n * V + j]) - m);
    lse[n] = static_cast<T>(m + std::log(s));
    loss[n] = static_cast<T>(m + std::log(s) - logits[n * V + targets[n]]);
  }
}

template <class T>
void xent_bwd_ref(int64_t N, int64_t V, const T* logits, const int32_t* targets,
                  int32_t ignore_index, const T* lse, T scale, T* dlogits) {
  for (int64_t n = 0; n < N; ++n) {
    if (targets[n] == ignore_index) continue;
    for (int64_t j = 0; j < V; ++j) {
      double p = std::exp(double(logits[n * V + j]) - lse[n]);
      dlogits[n * V + j] += static_cast<T>((p - (j == targets[n] ? 1.0 : 0.0)) * scale);
    }
  }
}

#define HONE_INST(T)                                                                              \
  template void xent_fwd<T>(int64_t, int64_t, const T*, const int32_t*, int32_t, T*, T*);         \
  template void xent_bwd<T>(int64_t, int64_t, const T*, const int32_t*, int32_t, const T*, T, T*, \
                            bool);                                                                \
  template void xent_fwd_ref<T>(int64_t, int64_t, const T*, const int32_t*, int32_t, T*, T*);     \
  template void xent_bwd_ref<T>(int64_t, int64_t, const T*, const int32_t*, int32_t, const T*, T, \
                                T*);
HONE_INST(float)
HONE_INST(double)
#undef HONE_INST

}  // namespace hone::kernels
