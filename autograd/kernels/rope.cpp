#include "autograd/kernels/rope.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "autograd/kernels/parallel.h"

namespace hone::kernels {

namespace {

// cos and sin of pos·inv_freq[i] (in T, rounded from double) for positions 0..npos−1: every
// layer's forward and backward rotate by the same angles, so the calling thread keeps the last
// table and rebuilds it only when the frequencies change or a position is past its end
// (sincos had been ~1% of a 135M training step).
template <class T>
struct RopeTable {
  std::vector<double> inv_freq;
  int64_t npos = 0;
  std::vector<T> cs;  // (npos, 2·half): cos then sin
};

template <class T>
const T* rope_table(const double* inv_freq, int64_t half, int64_t npos) {
  thread_local RopeTable<T> t;
  const bool same = static_cast<int64_t>(t.inv_freq.size()) == half &&
                    std::equal(t.inv_freq.begin(), t.inv_freq.end(), inv_freq);
  if (!same || npos > t.npos) {
    t.inv_freq.assign(inv_freq, inv_freq + half);
    t.npos = std::max(npos, same ? t.npos : int64_t{0});
    t.cs.resize(static_cast<size_t>(t.npos * 2 * half));
    // Not `t` inside the loop: on a worker thread that name is the worker's own table.
    T* cs = t.cs.data();
    parallel_rows(t.npos, grain_for(2 * half, 1 << 12), [&](int64_t lo, int64_t hi) {
      for (int64_t p = lo; p < hi; ++p)
        for (int64_t i = 0; i < half; ++i) {
          const double a = static_cast<double>(p) * inv_freq[i];
          cs[p * 2 * half + i] = static_cast<T>(std::cos(a));
          cs[p * 2 * half + half + i] = static_cast<T>(std::sin(a));
        }
    });
  }
  return t.cs.data();
}

// sign = +1: forward rotation (y = R(a)·x, written); sign = −1: backward (dx += R(−a)·dy).
template <class T, bool kAccumulate>
void rope_apply(int64_t N, int64_t H, int64_t D, const T* x, const int32_t* pos,
                const double* inv_freq, T* y, T sign) {
  const int64_t half = D / 2;
  int32_t max_pos = 0;
  bool negative = false;
  for (int64_t n = 0; n < N; ++n) {
    max_pos = std::max(max_pos, pos[n]);
    negative = negative || pos[n] < 0;
  }
  // Long contexts (past 64k positions) compute their angles directly rather than hold a table.
  const bool tabled = !negative && N > 0 && max_pos < (1 << 16);
  const T* table = tabled ? rope_table<T>(inv_freq, half, max_pos + 1) : nullptr;
  parallel_rows(N, grain_for(H * D), [&](int64_t lo, int64_t hi) {
    std::vector<T> cs(static_cast<size_t>(2 * half));  // once per chunk, not per row
    T* cos_a = cs.data();
    T* sin_a = cs.data() + half;
    for (int64_t n = lo; n < hi; ++n) {
      if (table) {
        const T* row = table + pos[n] * 2 * half;  // cos, then sin
        for (int64_t i = 0; i < half; ++i) {
          cos_a[i] = row[i];
          sin_a[i] = sign * row[half + i];
        }
      } else {
        for (int64_t i = 0; i < half; ++i) {
          const double a = static_cast<double>(pos[n]) * inv_freq[i];
          cos_a[i] = static_cast<T>(std::cos(a));
          sin_a[i] = sign * static_cast<T>(std::sin(a));
        }
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
              const double* inv_freq, T* dx, bool store) {
  if (store)
    rope_apply<T, false>(N, H, D, dy, pos, inv_freq, dx, T(-1));
  else
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
HONE_INST(rope_fwd_ref)
HONE_INST(rope_bwd_ref)
#undef HONE_INST
template void rope_bwd<float>(int64_t, int64_t, int64_t, const float*, const int32_t*,
                              const double*, float*, bool);
template void rope_bwd<double>(int64_t, int64_t, int64_t, const double*, const int32_t*,
                               const double*, double*, bool);

}  // namespace hone::kernels
