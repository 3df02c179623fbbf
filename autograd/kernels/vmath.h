// Row primitives of the softmax-like kernels (attention, cross-entropy, SwiGLU), written so the
// compiler vectorizes them: exp over a row as a branch-free polynomial, and max/sum reductions
// in 16 fixed lanes. The lane order is fixed, so results are bitwise the same on every call and
// thread count. Double rows (gradient checks) use std::exp and a plain sum: precision first.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

namespace hone::kernels {

// exp(x) for float, within 2 ulp of std::exp on [-87.3, 88]; 0 below (e^-87.3 is the smallest
// normal float), e^88 above (n must stay <= 127); NaN stays NaN. exp(x) = 2^n · e^r with n =
// round(x / ln 2) and r = x − n·ln 2 (in two parts, so r is exact), e^r by a degree-6 polynomial on
// |r| <= ln2 / 2 (the classic Cephes expf coefficients).
inline float exp_poly(float x) {
  const bool under = x < -87.33654f;
  x = x > 88.0f ? 88.0f : x;
  x = x < -87.33654f ? -87.33654f : x;
  const float n = std::nearbyint(x * 1.44269504088896341f);
  float r = std::fma(n, -0.693359375f, x);
  r = std::fma(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = std::fma(p, r, 1.3981999507e-3f);
  p = std::fma(p, r, 8.3334519073e-3f);
  p = std::fma(p, r, 4.1665795894e-2f);
  p = std::fma(p, r, 1.6666665459e-1f);
  p = std::fma(p, r, 5.0000001201e-1f);
  p = std::fma(p, r * r, r) + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return under ? 0.0f : p * scale;
}

// y[i] = exp(x[i] − c) for i < n (y may be x).
template <class T>
inline void exp_shifted(const T* x, int64_t n, T c, T* y) {
  if constexpr (std::is_same_v<T, float>) {
    for (int64_t i = 0; i < n; ++i) y[i] = exp_poly(x[i] - c);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i] - c);
  }
}

constexpr int kLanes = 16;

// Σ x[i] in 16 interleaved partial sums, then those in order (float); plain in order (double).
template <class T>
inline T row_sum(const T* x, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    float acc[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
      for (int l = 0; l < kLanes; ++l) acc[l] += x[i + l];
    for (int l = 0; i < n; ++i, ++l) acc[l] += x[i];
    float s = 0;
    for (int l = 0; l < kLanes; ++l) s += acc[l];
    return s;
  } else {
    T s = 0;
    for (int64_t i = 0; i < n; ++i) s += x[i];
    return s;
  }
}

// max x[i] (−inf for n == 0). A NaN anywhere makes it NaN, so a diverged row stays visible.
// The 16 lanes are one GCC/Clang vector for float: written as 16 scalar lanes, GCC 12 at -O3
// unrolled them and left the loop scalar (half of attention's softmax time).
template <class T>
inline T row_max(const T* x, int64_t n) {
  T acc[kLanes], nan_seen[kLanes];  // nan_seen: 0, or NaN once a lane saw a NaN/inf
  int64_t i = 0;
  if constexpr (std::is_same_v<T, float>) {
    typedef float lanes __attribute__((vector_size(kLanes * sizeof(float))));
    lanes m = lanes{} - std::numeric_limits<float>::infinity(), bad = lanes{};
    for (; i + kLanes <= n; i += kLanes) {
      lanes v;
      std::memcpy(&v, x + i, sizeof v);
      m = v > m ? v : m;
      bad += v - v;
    }
    std::memcpy(acc, &m, sizeof m);
    std::memcpy(nan_seen, &bad, sizeof bad);
  } else {
    for (int l = 0; l < kLanes; ++l) {
      acc[l] = -std::numeric_limits<T>::infinity();
      nan_seen[l] = 0;
    }
    for (; i + kLanes <= n; i += kLanes)
      for (int l = 0; l < kLanes; ++l) {
        const T v = x[i + l];
        acc[l] = v > acc[l] ? v : acc[l];
        nan_seen[l] += v - v;
      }
  }
  for (int l = 0; i < n; ++i, ++l) {
    const T v = x[i];
    acc[l] = v > acc[l] ? v : acc[l];
    nan_seen[l] += v - v;
  }
  T seen = 0;
  for (int l = 0; l < kLanes; ++l) seen += nan_seen[l];
  T m = acc[0];
  for (int l = 1; l < kLanes; ++l) m = acc[l] > m ? acc[l] : m;
  // inf − inf is NaN too: only a real NaN (not ±inf) should poison the max.
  if (seen != seen) {
    for (int64_t j = 0; j < n; ++j)
      if (x[j] != x[j]) return x[j];
  }
  return m;
}

}  // namespace hone::kernels
