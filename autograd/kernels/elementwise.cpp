#include "autograd/kernels/elementwise.h"

#include <cmath>

#include "autograd/kernels/parallel.h"
#include "autograd/kernels/vmath.h"

namespace hone::kernels {

namespace {

constexpr int64_t kGrain = 1 << 14;

template <class T>
inline T sigmoid(T x) {
  if constexpr (std::is_same_v<T, float>)
    return 1.0f / (1.0f + exp_poly(-x));  // vectorizes
  else
    return T(1) / (T(1) + std::exp(-x));
}

// d silu / dx = s·(1 + x·(1 − s)), s = sigmoid(x).
template <class T>
inline T dsilu(T x) {
  T s = sigmoid(x);
  return s * (T(1) + x * (T(1) - s));
}

}  // namespace

template <class T>
void add_fwd(int64_t n, const T* a, const T* b, T* y) {
  parallel_rows(n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) y[i] = a[i] + b[i];
  });
}

template <class T>
void mul_fwd(int64_t n, const T* a, const T* b, T* y) {
  parallel_rows(n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) y[i] = a[i] * b[i];
  });
}

template <class T>
void scale_fwd(int64_t n, T s, const T* a, T* y) {
  parallel_rows(n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) y[i] = s * a[i];
  });
}

template <class T>
void axpy(int64_t n, T s, const T* dy, T* dx) {
  parallel_rows(n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) dx[i] += s * dy[i];
  });
}

// d[i] = v into a fresh buffer, else d[i] += v. The flags are template arguments so that each
// loop stays one vectorised body (a runtime flag inside cost swiglu_bwd 4× its time).
template <bool kStore, class T>
inline void put(T* d, int64_t i, T v) {
  if constexpr (kStore)
    d[i] = v;
  else
    d[i] += v;
}

// Calls f.template operator()<sa, sb>() with the two flags as constants.
template <class F>
void with_flags(bool a, bool b, const F& f) {
  if (a && b)
    f.template operator()<true, true>();
  else if (a)
    f.template operator()<true, false>();
  else if (b)
    f.template operator()<false, true>();
  else
    f.template operator()<false, false>();
}

template <class T>
void mul_bwd(int64_t n, const T* a, const T* b, const T* dy, T* da, T* db, bool store_a,
             bool store_b) {
  with_flags(store_a, store_b, [&]<bool kA, bool kB>() {
    parallel_rows(n, kGrain, [&](int64_t lo, int64_t hi) {
      // Read both inputs before writing: da may alias db when a and b are the same Var (then
      // the first write may store, the second adds).
      for (int64_t i = lo; i < hi; ++i) {
        T ga = dy[i] * b[i], gb = dy[i] * a[i];
        if (da) put<kA>(da, i, ga);
        if (db) put<kB>(db, i, gb);
      }
    });
  });
}

template <class T>
void silu_fwd(int64_t n, const T* x, T* y) {
  parallel_rows(n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) y[i] = x[i] * sigmoid(x[i]);
  });
}

template <class T>
void silu_bwd(int64_t n, const T* x, const T* dy, T* dx) {
  parallel_rows(n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) dx[i] += dy[i] * dsilu(x[i]);
  });
}

template <class T>
void swiglu_fwd(int64_t n, const T* gate, const T* up, T* y) {
  parallel_rows(n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) y[i] = gate[i] * sigmoid(gate[i]) * up[i];
  });
}

template <class T>
void swiglu_bwd(int64_t n, const T* gate, const T* up, const T* dy, T* dgate, T* dup,
                bool store_gate, bool store_up) {
  with_flags(store_gate, store_up, [&]<bool kG, bool kU>() {
    parallel_rows(n, kGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        T g = gate[i], s = sigmoid(g);
        T gg = dy[i] * up[i] * s * (T(1) + g * (T(1) - s));
        T gu = dy[i] * g * s;
        if (dgate) put<kG>(dgate, i, gg);
        if (dup) put<kU>(dup, i, gu);
      }
    });
  });
}

template <class T>
void silu_fwd_ref(int64_t n, const T* x, T* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<T>(x[i] / (1.0 + std::exp(-double(x[i]))));
}

template <class T>
void silu_bwd_ref(int64_t n, const T* x, const T* dy, T* dx) {
  for (int64_t i = 0; i < n; ++i) {
    double s = 1.0 / (1.0 + std::exp(-double(x[i])));
    dx[i] += static_cast<T>(dy[i] * (s + x[i] * s * (1.0 - s)));
  }
}

template <class T>
void swiglu_fwd_ref(int64_t n, const T* gate, const T* up, T* y) {
  for (int64_t i = 0; i < n; ++i)
    y[i] = static_cast<T>(gate[i] / (1.0 + std::exp(-double(gate[i]))) * up[i]);
}

template <class T>
void swiglu_bwd_ref(int64_t n, const T* gate, const T* up, const T* dy, T* dgate, T* dup) {
  for (int64_t i = 0; i < n; ++i) {
    double s = 1.0 / (1.0 + std::exp(-double(gate[i])));
    if (dgate) dgate[i] += static_cast<T>(dy[i] * up[i] * (s + gate[i] * s * (1.0 - s)));
    if (dup) dup[i] += static_cast<T>(dy[i] * gate[i] * s);
  }
}

#define HONE_INST(T)                                                                      \
  template void add_fwd<T>(int64_t, const T*, const T*, T*);                              \
  template void mul_fwd<T>(int64_t, const T*, const T*, T*);                              \
  template void scale_fwd<T>(int64_t, T, const T*, T*);                                   \
  template void axpy<T>(int64_t, T, const T*, T*);                                        \
  template void mul_bwd<T>(int64_t, const T*, const T*, const T*, T*, T*, bool, bool);    \
  template void silu_fwd<T>(int64_t, const T*, T*);                                       \
  template void silu_bwd<T>(int64_t, const T*, const T*, T*);                             \
  template void swiglu_fwd<T>(int64_t, const T*, const T*, T*);                           \
  template void swiglu_bwd<T>(int64_t, const T*, const T*, const T*, T*, T*, bool, bool); \
  template void silu_fwd_ref<T>(int64_t, const T*, T*);                                   \
  template void silu_bwd_ref<T>(int64_t, const T*, const T*, T*);                         \
  template void swiglu_fwd_ref<T>(int64_t, const T*, const T*, T*);                       \
  template void swiglu_bwd_ref<T>(int64_t, const T*, const T*, const T*, T*, T*);
HONE_INST(float)
HONE_INST(double)
#undef HONE_INST

}  // namespace hone::kernels
