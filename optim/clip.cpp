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

double clip_grad_norm(Tensor& grads, double max_norm) {
  if (std::isnan(max_norm)) throw Error("clip_grad_norm: max_norm is NaN");
  const double norm = grad_norm(grads);
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
