// cross_entropy: mean over non-ignored rows of a fused log-softmax. Saves the logits (shared),
// the targets and the per-row log-sum-exp; the backward recomputes the softmax from them.
#include <memory>

#include "autograd/kernels/xent.h"
#include "autograd/ops.h"
#include "autograd/ops/common.h"

namespace hone {

using namespace ops_detail;

Var cross_entropy(Tape* t, const Var& logits, const std::vector<int32_t>& targets,
                  int32_t ignore_index) {
  require_compute("cross_entropy", "logits", logits);
  const DType ct = logits.dtype();
  if (logits.value().ndim() < 1 || logits.shape().back() == 0)
    fail("cross_entropy", "logits " + shape_str(logits.shape()) + " must be (N, V) with V > 0");
  const int64_t V = logits.shape().back(), N = logits.value().numel() / V;
  if (static_cast<int64_t>(targets.size()) != N)
    fail("cross_entropy", "logits " + shape_str(logits.shape()) + " has " + std::to_string(N) +
                              " rows but " + std::to_string(targets.size()) +
                              " targets were given");
  int64_t count = 0;
  for (int64_t n = 0; n < N; ++n) {
    if (targets[n] == ignore_index) continue;
    if (targets[n] < 0 || targets[n] >= V)
      fail("cross_entropy", "target " + std::to_string(targets[n]) + " at row " +
                                std::to_string(n) + " is out of range for V=" + std::to_string(V) +
                                " (ignore_index " + std::to_string(ignore_index) + ")");
    ++count;
  }
  Tensor lse = Tensor::empty(ct, {N});
  Tensor y = Tensor::empty(ct, {1});
  dispatch(ct, [&](auto z) {
    using T = decltype(z);
    Tensor rowloss = Tensor::empty(ct, {N});
    kernels::xent_fwd<T>(N, V, logits.value().data<T>(), targets.data(), ignore_index,
                         lse.data<T>(), rowloss.data<T>());
    double sum = 0;  // sequential, in double: the same loss whatever the thread count
    for (int64_t n = 0; n < N; ++n) sum += rowloss.data<T>()[n];
    y.data<T>()[0] = static_cast<T>(count ? sum / static_cast<double>(count) : 0.0);
  });
  const bool rg = needs_grad(t, {&logits});
  Var out(std::move(y), rg);
  if (rg && count > 0) {
    auto saved = std::make_shared<std::vector<int32_t>>(targets);
    t->record([t, logits, out, saved, lse, N, V, count, ignore_index] {
      if (!out.has_grad()) return;
      dispatch(out.dtype(), [&](auto z) {
        using T = decltype(z);
        const T scale = static_cast<T>(out.grad().data<T>()[0] / static_cast<double>(count));
        bool fresh = false;  // the usual case: the loss is the logits' only consumer
        T* dl = t->grad(logits, &fresh).data<T>();
        kernels::xent_bwd<T>(N, V, logits.value().data<T>(), saved->data(), ignore_index,
                             lse.data<T>(), scale, dl, fresh);
      });
    });
  }
  return out;
}

}  // namespace hone
