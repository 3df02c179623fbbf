// Row-parallel loops for the kernels. Every body must write only its own rows (or elements), so
// the result is bitwise the same whatever the thread count and partition: no cross-thread sums.
#pragma once

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
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

// Balanced parts of [0, len) in multiples of `align` (the last may be shorter), at most `parts`
// of them and at least one: part i is [lo(i), lo(i + 1)).
struct Parts {
  int64_t len, align, blocks, count;
  Parts(int64_t len_, int64_t align_, int64_t parts)
      : len(len_),
        align(align_),
        blocks((len_ + align_ - 1) / align_),
        count(std::max<int64_t>(1, std::min<int64_t>(parts, blocks))) {}
  int64_t lo(int64_t i) const { return std::min(len, blocks * i / count * align); }
};

// Runs body(i) for parts 0..count−1, one task per part, taken by whichever thread is free
// (inline when there is one). Which thread runs a part never changes what it computes.
template <class F>
void for_parts(int64_t count, const F& body) {
  if (count == 1) return body(int64_t{0});
  tbb::parallel_for(
      tbb::blocked_range<int64_t>(0, count, 1),
      [&](const tbb::blocked_range<int64_t>& r) {
        for (int64_t i = r.begin(); i < r.end(); ++i) body(i);
      },
      tbb::simple_partitioner());
}

// Rows per chunk so that a chunk does roughly `work` element operations.
inline int64_t grain_for(int64_t row_len, int64_t work = 1 << 15) {
  int64_t g = row_len > 0 ? work / row_len : work;
  return g < 1 ? 1 : g;
}

}  // namespace hone::kernels
