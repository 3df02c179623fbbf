// The parts of the bf16 product that do not touch oneDNN: the split over threads, the rounding,
// the plain-loop reference and the process-wide switch (the rounding is bf16_round.cpp).
#include "autograd/kernels/bf16_gemm.h"

#include <atomic>

#include "autograd/dtype.h"
#include "autograd/error.h"
#include "autograd/kernels/blas.h"
#include "autograd/kernels/parallel.h"

namespace hone::kernels {

namespace {

std::atomic<bool> g_bf16{false};

void check_dims(bool tb, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc,
                float beta) {
  const int64_t b_cols = tb ? K : N;
  if (M < 0 || N < 0 || K < 0 || lda < std::max<int64_t>(1, K) ||
      ldb < std::max<int64_t>(1, b_cols) || ldc < std::max<int64_t>(1, N) ||
      (beta != 0.0f && beta != 1.0f))
    throw Error("gemm_bf16: bad arguments M=" + std::to_string(M) + " N=" + std::to_string(N) +
                " K=" + std::to_string(K) + " lda=" + std::to_string(lda) +
                " ldb=" + std::to_string(ldb) + " ldc=" + std::to_string(ldc) +
                " beta=" + std::to_string(beta) + " (beta must be 0 or 1)");
}

}  // namespace

void gemm_bf16(bool tb, int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda,
               const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  check_dims(tb, M, N, K, lda, ldb, ldc, beta);
  const int threads = gemm_threads(M, N, K);
  const bool by_rows = M >= N;
  const int64_t len = by_rows ? M : N;
  const Parts parts(len, 16, split_parts(len, threads));
  for_parts(parts.count, [&](int64_t i) {
    const int64_t lo = parts.lo(i), hi = parts.lo(i + 1);
    if (lo >= hi) return;
    if (by_rows)
      gemm_bf16_serial(tb, hi - lo, N, K, A + lo * lda, lda, B, ldb, beta, C + lo * ldc, ldc);
    else
      gemm_bf16_serial(tb, M, hi - lo, K, A, lda, tb ? B + lo * ldb : B + lo, ldb, beta, C + lo,
                       ldc);
  });
}

void gemm_bf16_serial(bool tb, int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda,
                      const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm_bf16_serial(false, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
}

void gemm_bf16_ref(bool tb, int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda,
                   const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  check_dims(tb, M, N, K, lda, ldb, ldc, beta);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0;
      for (int64_t p = 0; p < K; ++p)
        acc += static_cast<double>(bf16_to_f32(A[i * lda + p])) *
               static_cast<double>(bf16_to_f32(tb ? B[j * ldb + p] : B[p * ldb + j]));
      float& c = C[i * ldc + j];
      c = static_cast<float>(acc + (beta == 0.0f ? 0.0 : static_cast<double>(c)));
    }
}

void set_bf16_products(bool on) {
  g_bf16.store(on, std::memory_order_relaxed);
}

bool bf16_products() {
  return g_bf16.load(std::memory_order_relaxed);
}

}  // namespace hone::kernels
