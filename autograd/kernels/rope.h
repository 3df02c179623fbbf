// Rotate-half RoPE (Hugging Face convention). For each row n, head h and i < D/2, with
// a = pos[n]·inv_freq[i]: y[i] = x[i]·cos a − x[i+D/2]·sin a; y[i+D/2] = x[i+D/2]·cos a + x[i]·sin
// a. Angles are computed in double, once per row, and shared by the row's heads.
#pragma once

#include <cstdint>

namespace hone::kernels {

// x, y (N, H*D); pos (N); inv_freq (D/2). y may alias x.
template <class T>
void rope_fwd(int64_t N, int64_t H, int64_t D, const T* x, const int32_t* pos,
              const double* inv_freq, T* y);
// dx += rotation of dy by −a (the transpose of the forward rotation); store: dx = (a fresh
// gradient buffer).
template <class T>
void rope_bwd(int64_t N, int64_t H, int64_t D, const T* dy, const int32_t* pos,
              const double* inv_freq, T* dx, bool store = false);

template <class T>
void rope_fwd_ref(int64_t N, int64_t H, int64_t D, const T* x, const int32_t* pos,
                  const double* inv_freq, T* y);
template <class T>
void rope_bwd_ref(int64_t N, int64_t H, int64_t D, const T* dy, const int32_t* pos,
                  const double* inv_freq, T* dx);

}  // namespace hone::kernels
