// Mixed-precision products for the frozen base weights: bf16 inputs, f32 accumulation and f32
// output (PyTorch autocast's arithmetic, without its bf16 output). The products run through
// oneDNN's matmul (kernels/dnnl.cpp, the only file that touches oneDNN); a plain-loop reference
// and the f32 -> bf16 rounding (bf16_round.h) live beside them, so tests can round both sides the
// same way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "autograd/kernels/bf16_round.h"

namespace hone::kernels {

// Whether this build has the bf16 product (hone was built with oneDNN).
bool bf16_gemm_available();
// "oneDNN 2.6.3 (cpu runtime OpenMP, serial per task)" or why there is none.
std::string bf16_gemm_info();

// Row-major C (M, N) = A (M, K)·op(B) + beta·C with A and B bf16 bits and C f32; op(B) = Bᵀ
// when trans_b (B stored (N, K)), else B stored (K, N). beta is 0 (C overwritten, NaNs in C
// dropped) or 1. Runs on the calling thread; products of the same sizes sum in the same order.
// Throws Error when !bf16_gemm_available().
void gemm_bf16_serial(bool trans_b, int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda,
                      const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc);
// The same with op(A) = Aᵀ when trans_a (A stored (K, M)): attention's dV = Pᵀ·dO and dK.
void gemm_bf16_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                      const uint16_t* A, int64_t lda, const uint16_t* B, int64_t ldb, float beta,
                      float* C, int64_t ldc);
// The same product split over the threads along the larger of M and N (never along K), as
// gemm<float> splits: the parts depend only on the sizes and the thread count.
void gemm_bf16(bool trans_b, int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda,
               const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc);
// Plain loops, products of the bf16 values summed in double: the reference of the tests.
void gemm_bf16_ref(bool trans_b, int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda,
                   const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Which arithmetic the frozen-base products (x·Wᵀ and dy·W of frozen projections and the LM
// head) use: f32, or bf16 inputs with f32 accumulation. Process-wide, set once by the command
// from the recipe's training.compute_dtype (tests switch it with ScopedBf16Products).
void set_bf16_products(bool on);
bool bf16_products();

class ScopedBf16Products {
 public:
  explicit ScopedBf16Products(bool on) : old_(bf16_products()) { set_bf16_products(on); }
  ~ScopedBf16Products() { set_bf16_products(old_); }
  ScopedBf16Products(const ScopedBf16Products&) = delete;
  ScopedBf16Products& operator=(const ScopedBf16Products&) = delete;

 private:
  bool old_;
};

}  // namespace hone::kernels
