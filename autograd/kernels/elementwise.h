// Elementwise kernels on flat buffers of n elements. Backward kernels accumulate (+=) into their
// gradient outputs, as the tape expects; a null gradient pointer means "not needed".
#pragma once

#include <cstdint>

namespace hone::kernels {

template <class T>
void add_fwd(int64_t n, const T* a, const T* b, T* y);
template <class T>
void mul_fwd(int64_t n, const T* a, const T* b, T* y);
template <class T>
void scale_fwd(int64_t n, T s, const T* a, T* y);
// dx += s · dy (also the backward of add with s = 1, and of scale).
template <class T>
void axpy(int64_t n, T s, const T* dy, T* dx);
// da += dy·b, db += dy·a; store_a / store_b write instead of adding (a fresh gradient buffer,
// whose contents are garbage). da may alias db (a times itself) with at most store_a set.
template <class T>
void mul_bwd(int64_t n, const T* a, const T* b, const T* dy, T* da, T* db, bool store_a = false,
             bool store_b = false);

// y = x·sigmoid(x).
template <class T>
void silu_fwd(int64_t n, const T* x, T* y);
template <class T>
void silu_bwd(int64_t n, const T* x, const T* dy, T* dx);
// y = silu(gate)·up.
template <class T>
void swiglu_fwd(int64_t n, const T* gate, const T* up, T* y);
// dgate += dy·∂y/∂gate, dup += dy·∂y/∂up; store_* write instead of adding, as in mul_bwd.
template <class T>
void swiglu_bwd(int64_t n, const T* gate, const T* up, const T* dy, T* dgate, T* dup,
                bool store_gate = false, bool store_up = false);

// Plain single-threaded loops, the references for the tests.
template <class T>
void silu_fwd_ref(int64_t n, const T* x, T* y);
template <class T>
void silu_bwd_ref(int64_t n, const T* x, const T* dy, T* dx);
template <class T>
void swiglu_fwd_ref(int64_t n, const T* gate, const T* up, T* y);
template <class T>
void swiglu_bwd_ref(int64_t n, const T* gate, const T* up, const T* dy, T* dgate, T* dup);

}  // namespace hone::kernels
