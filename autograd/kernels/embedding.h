// Embedding gather (converting the table's storage dtype) and scatter-add.
#pragma once

#include <cstdint>

#include "autograd/dtype.h"

namespace hone::kernels {

// out (N, C) = table[ids] converted to T; table (V, C) stored as F32, F64, BF16, F16, or Q8_0 /
// Q4_0 (C a multiple of 32).
// ids must be in [0, V) (checked by the op).
template <class T>
void embedding_fwd(int64_t N, int64_t C, const void* table, DType table_dtype, const int32_t* ids,
                   T* out);
// dtable[ids[n]] += dy[n], sequential in n so repeated ids sum in a fixed order.
template <class T>
void embedding_bwd(int64_t N, int64_t C, const int32_t* ids, const T* dy, T* dtable);

template <class T>
void embedding_fwd_ref(int64_t N, int64_t C, const void* table, DType table_dtype,
                       const int32_t* ids, T* out);

}  // namespace hone::kernels
