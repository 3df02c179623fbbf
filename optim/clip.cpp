#include "optim/clip.h"

#include <tbb/parallel_for.h>

#include <cmath>
#include <vector>

namespace hone {

namespace {
// Fixed, independent of the thread count: it decides the summation order.
constexpr int64_t kChunk = 1 << 14;
}  // namespace

double grad_norm(const Tensor& grads) {
  if (grads.dtype() != DType::F32)
    throw Error(std::string("grad_norm: grads must be F32 (got ") + dtype_name(grads.dtype()) +
                ")");
  const int64_t n = grads.numel();
  const float* g = grads.data<float>();
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(chunks));
  tbb::parallel_for(int64_t{0}, chunks, [&](int64_t c) {
    const int64_t end = std::min(n, (c + 1) * kChunk);
    double s = 0.0;
    for (int64_t i = c * kChunk; i < end; ++i) s += static_cast<double>(g[i]) * g[i];
    partial[static_cast<size_t>(c)] = s;
  });
  double total = 0.0;
  for (double s : partial) total += s;
  return std::sqrt(total);
}

std::vector<double> grad_norm_partials(const Tensor& grads, const std::vector<int64_t>& starts) {
  if (grads.dtype() != DType::F32)
    throw Error(std::string("grad_norm_partials: grads must be F32 (got ") +
                dtype_name(grads.dtype()) + ")");
  const int64_t n = grads.numel();
  // The chunks: [begin, end) pieces of at most kChunk, restarting at each segment start.
  std::vector<std::pair<int64_t, int64_t>> chunks;
  for (size_t i = 0; i < starts.size(); ++i) {
    const int64_t end = i + 1 < starts.size() ? starts[i + 1] : n;
    if (starts[i] < 0 || end > n || starts[i] > end)
      throw Error("grad_norm_partials: segment starts must be sorted offsets inside the arena");
    for (int64_t b = starts[i]; b < end; b += kChunk)
      chunks.push_back({b, std::min(end, b + kChunk)});
  }
  const float* g = grads.data<float>();
  std::vector<double> partial(chunks.size());
  tbb::parallel_for(size_t{0}, chunks.size(), [&](size_t c) {
    double s = 0.0;
    for (int64_t i = chunks[c].first; i < chunks[c].second; ++i)
      s += static_cast<double>(g[i]) * g[i];
    partial[c] = s;
  });
  return partial;
}

double clip_grad_norm(Tensor& grads, double max_norm) {
  return clip_to_norm(grads, grad_norm(grads), max_norm);
}

double clip_to_norm(Tensor& grads, double norm, double max_norm) {
  if (std::isnan(max_norm)) throw Error("clip_grad_norm: max_norm is NaN");
  if (max_norm <= 0 || !std::isfinite(norm)) return norm;
  const double coef = max_norm / (norm + 1e-6);
  if (coef >= 1.0) return norm;
  const float scale = static_cast<float>(coef);
  float* g = grads.data<float>();
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, grads.numel(), kChunk),
                    [&](const tbb::blocked_range<int64_t>& r) {
                      for (int64_t i = r.begin(); i < r.end(); ++i) g[i] *= scale;
                    });
  return norm;
}

}  // namespace hone
