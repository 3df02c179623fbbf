#include "recipes/parallel/grad_fold.h"

#include <cstring>

#include "autograd/error.h"

namespace hone {

Slice slice_of(int64_t n, int d, int r) {
  const int64_t first = n * r / d;
  return {first, n * (r + 1) / d - first};
}

void fold_gradients(Comm& comm, const std::vector<float*>& local, int64_t P, float* out) {
  const int d = comm.size();
  const size_t k = local.size();
  if (k == 0) throw Error("internal: fold_gradients with no micro-batch");
  auto add = [](float* acc, const float* g, int64_t n) {
    for (int64_t i = 0; i < n; ++i) acc[i] += g[i];
  };
  if (d == 1) {
    if (out != local[0]) std::memcpy(out, local[0], static_cast<size_t>(P) * sizeof(float));
    for (size_t j = 1; j < k; ++j) add(out, local[j], P);
    return;
  }
  // Slice j of every local gradient to rank j; the M pieces of our slice back, rank by rank,
  // each rank's k pieces in its micro-batch order: exactly micro-batch order.
  const int me = comm.rank();
  const Slice mine = slice_of(P, d, me);
  std::vector<float> pieces(k * static_cast<size_t>(d) * static_cast<size_t>(mine.count));
  std::vector<Comm::Piece> sends, recvs;
  for (int r = 0; r < d; ++r) {
    const Slice s = slice_of(P, d, r);
    for (size_t j = 0; j < k; ++j) {
      sends.push_back({r, local[j] + s.first, s.count});
      recvs.push_back(
          {r, pieces.data() + (static_cast<size_t>(r) * k + j) * mine.count, mine.count});
    }
  }
  comm.exchange(sends, recvs);
  float* acc = out + mine.first;
  std::memcpy(acc, pieces.data(), static_cast<size_t>(mine.count) * sizeof(float));
  for (size_t m = 1; m < k * static_cast<size_t>(d); ++m)
    add(acc, pieces.data() + m * static_cast<size_t>(mine.count), mine.count);
  std::vector<int64_t> counts(static_cast<size_t>(d));
  for (int r = 0; r < d; ++r) counts[static_cast<size_t>(r)] = slice_of(P, d, r).count;
  comm.allgatherv(out, counts);
}

namespace {

// acc += g, element by element: the one addition fold_gradients makes too.
template <typename T>
void add_into(T* acc, const T* g, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += g[i];
}

}  // namespace

StepGradients::StepGradients(Tensor& grads, int64_t k, int ranks)
    : grads_(grads), k_(k), ranks_(ranks) {
  if (ranks > 1 && grads.dtype() != DType::F32)
    throw Error("internal: data parallel needs f32 adapter gradients");
  grads_.fill_zero();
  if (ranks > 1) kept_.resize(static_cast<size_t>(k));
}

void StepGradients::begin() {
  if (!(ranks_ == 1 && k_ == 1)) grads_.fill_zero();
}

void StepGradients::end() {
  const int64_t P = grads_.numel();
  const int64_t j = done_++;
  if (ranks_ > 1) {
    const float* g = grads_.data<float>();
    kept_[static_cast<size_t>(j)].assign(g, g + P);
  } else if (k_ > 1) {
    if (j == 0)
      acc_ = grads_.clone();
    else if (grads_.dtype() == DType::F64)
      add_into(acc_.data<double>(), grads_.data<double>(), P);
    else
      add_into(acc_.data<float>(), grads_.data<float>(), P);
  }
}

void StepGradients::finish(Comm& dp) {
  if (done_ != k_) throw Error("internal: StepGradients finished before every micro-batch");
  if (ranks_ == 1) {
    if (k_ > 1) std::memcpy(grads_.raw(), acc_.raw(), grads_.nbytes());
    return;
  }
  std::vector<float*> local;
  for (auto& v : kept_) local.push_back(v.data());
  fold_gradients(dp, local, grads_.numel(), grads_.data<float>());
}

}  // namespace hone
