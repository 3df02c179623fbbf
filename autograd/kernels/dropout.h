// Inverted dropout with a mask drawn sequentially from hone::Rng's splitmix64 stream.
#pragma once

#include <cstdint>

namespace hone::kernels {

// Inverted dropout driven by a splitmix64 stream starting at `state` (hone::Rng): element i is
// kept when the i-th uniform() >= p, and scaled by 1/(1−p). Sequential, so the mask depends only
// on state. Returns the stream's state after n draws. The backward regenerates the same mask
// from the same state instead of storing it.
template <class T>
uint64_t dropout_fwd(int64_t n, double p, uint64_t state, const T* x, T* y);
// dx += mask·dy for the mask that dropout_fwd(n, p, state, ...) drew.
template <class T>
void dropout_bwd(int64_t n, double p, uint64_t state, const T* dy, T* dx);

}  // namespace hone::kernels
