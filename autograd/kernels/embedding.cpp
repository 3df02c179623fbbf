#include "autograd/kernels/embedding.h"

#include "autograd/error.h"
#include "autograd/kernels/parallel.h"
#include "autograd/kernels/quant.h"

namespace hone::kernels {

namespace {

template <class T>
void convert_row(const void* src, DType from, int64_t C, T* dst) {
  size_t n = static_cast<size_t>(C);
  if constexpr (std::is_same_v<T, float>)
    convert_to_f32(src, from, dst, n);
  else
    convert_to_f64(src, from, dst, n);
}

}  // namespace

template <class T>
void embedding_fwd(int64_t N, int64_t C, const void* table, DType table_dtype, const int32_t* ids,
                   T* out) {
  const size_t row_bytes = dtype_nbytes(table_dtype, C);  // Q8_0/Q4_0: C % 32 == 0
  parallel_rows(N, grain_for(C), [&](int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; ++n)
      convert_row(static_cast<const char*>(table) + static_cast<size_t>(ids[n]) * row_bytes,
                  table_dtype, C, out + n * C);
  });
}

template <class T>
void embedding_bwd(int64_t N, int64_t C, const int32_t* ids, const T* dy, T* dtable) {
  for (int64_t n = 0; n < N; ++n) {
    T* d = dtable + static_cast<int64_t>(ids[n]) * C;
    const T* g = dy + n * C;
    for (int64_t c = 0; c < C; ++c) d[c] += g[c];
  }
}

template <class T>
void embedding_fwd_ref(int64_t N, int64_t C, const void* table, DType table_dtype,
                       const int32_t* ids, T* out) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      int64_t i = static_cast<int64_t>(ids[n]) * C + c;
      double v = 0;
      switch (table_dtype) {
        case DType::F32:
          v = static_cast<const float*>(table)[i];
          break;
        case DType::F64:
          v = static_cast<const double*>(table)[i];
          break;
        case DType::BF16:
          v = bf16_to_f32(static_cast<const uint16_t*>(table)[i]);
          break;
        case DType::F16:
          v = f16_to_f32(static_cast<const uint16_t*>(table)[i]);
          break;
        case DType::Q8_0:
        case DType::Q4_0:
          v = dequantize_value_ref(table, table_dtype, i);
          break;
        default:
          throw Error(std::string("embedding: table dtype ") + dtype_name(table_dtype));
      }
      out[n * C + c] = static_cast<T>(v);
    }
}

#define HONE_INST(T)                                                                        \
  template void embedding_fwd<T>(int64_t, int64_t, const void*, DType, const int32_t*, T*); \
  template void embedding_bwd<T>(int64_t, int64_t, const int32_t*, const T*, T*);           \
  template void embedding_fwd_ref<T>(int64_t, int64_t, const void*, DType, const int32_t*, T*);
HONE_INST(float)
HONE_INST(double)
#undef HONE_INST

}  // namespace hone::kernels
