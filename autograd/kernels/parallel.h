// Row-parallel loops for the kernels. Every body must write only its own rows (or elements), so
// the result is bitwise the same whatever the thread count and partition: no cross-thread sums.
#pragma once

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <cstdint>

namespace hone::kernels {

// Calls body(begin, end) over [0, n) in chunks of at least `grain`; serial when n <= grain.
template <class F>
void parallel_rows(int64_t n, int64_t grain, const F& body) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  if (n <= grain) {
    body(int64_t{0}, n);
    return;
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, grain),
                    [&](const tbb::blocked_range<int64_t>& r) { body(r.begin(), r.end()); });
}

// Rows per chunk so that a chunk does roughly `work` element operations.
inline int64_t grain_for(int64_t row_len, int64_t work = 1 << 15) {
  int64_t g = row_len > 0 ? work / row_len : work;
  return g < 1 ? 1 : g;
}

}  // namespace hone::kernels
