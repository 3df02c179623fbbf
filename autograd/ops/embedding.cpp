// embedding: gather rows of the table (any float storage, or quantized Q8_0/Q4_0); backward
// scatter-adds into the table's gradient. Saves the ids.
#include "autograd/kernels/embedding.h"

#include <memory>

#include "autograd/ops.h"
#include "autograd/ops/common.h"

namespace hone {

using namespace ops_detail;

Var embedding(Tape* t, const Var& table, const std::vector<int32_t>& ids) {
  require_defined("embedding", "table", table);
  const DType ct = table.dtype() == DType::F64 ? DType::F64 : DType::F32;
  require_weight("embedding", "table", table, ct);
  if (table.value().ndim() != 2)
    fail("embedding", "table " + shape_str(table.shape()) + " must be (V, C)");
  const int64_t V = table.shape()[0], C = table.shape()[1];
  const int64_t N = static_cast<int64_t>(ids.size());
  for (int64_t n = 0; n < N; ++n)
    if (ids[n] < 0 || ids[n] >= V)
      fail("embedding", "id " + std::to_string(ids[n]) + " at position " + std::to_string(n) +
                            " is out of range for table " + shape_str(table.shape()));
  Tensor y = Tensor::empty(ct, {N, C});
  dispatch(ct, [&](auto z) {
    using T = decltype(z);
    kernels::embedding_fwd<T>(N, C, table.value().raw(), table.dtype(), ids.data(), y.data<T>());
  });
  const bool rg = needs_grad(t, {&table});
  Var out(std::move(y), rg);
  if (rg) {
    auto saved = std::make_shared<std::vector<int32_t>>(ids);
    t->record([t, table, out, saved, N, C] {
      if (!out.has_grad()) return;
      dispatch(out.dtype(), [&](auto z) {
        using T = decltype(z);
        kernels::embedding_bwd<T>(N, C, saved->data(), out.grad().data<T>(),
                                  t->grad(table).data<T>());
      });
    });
  }
  return out;
}

}  // namespace hone
