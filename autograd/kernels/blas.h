// Dense matrix products through OpenBLAS (the only file that touches cblas), plus a plain-loop
// reference, and the start-up check that makes sure OpenBLAS runs its AVX-512 kernels.
#pragma once

#include <cstdint>
#include <string>

namespace hone::kernels {

// Row-major C (M, N) = alpha · op(A) · op(B) + beta · C, op(X) = Xᵀ when trans_x.
// A is (M, K) or, transposed, stored (K, M); B is (K, N) or stored (N, K). lda/ldb/ldc are the
// row strides of the stored matrices (so a head's slice of a (T, H*D) tensor needs no copy).
// beta == 0 overwrites C (NaNs in C are not propagated).
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);
// The same product on the calling thread only: for kernels that already run in parallel at a
// coarser grain (e.g. attention, one task per head).
template <class T>
void gemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                 int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);
template <class T>
void gemm_ref(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
              int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// Threads one product is split over (n <= 0 leaves the default: TBB's limit, i.e. all cores or
// what a tbb::global_control allows). OpenBLAS itself runs single-threaded: gemm splits C into
// row or column blocks, one per TBB worker, so only one thread pool ever runs.
void set_blas_threads(int n);
int blas_threads();
// Threads a product of M·N·K multiply-adds is split over: 1 below the size where splitting
// costs more than it saves, else blas_threads(). For kernels that split a product themselves.
int gemm_threads(int64_t M, int64_t N, int64_t K);
// Parts a product split over `threads` threads goes in along a dimension of length `len`: a
// multiple of the thread count, up to four per thread while each part stays 512 long (narrower
// parts cost more in re-packing the shared operand than they win). Threads take parts as they
// finish: on a shared host one core is often slowed for a while, and with one part per thread
// the other waited for it.
int64_t split_parts(int64_t len, int threads);
// Off: products go to OpenBLAS whole, threaded by OpenBLAS's own pool (blas_threads() threads).
// For measuring the peak both ways (bench_sgemm_peak); hone itself always splits.
void set_gemm_split(bool on);

// "OpenBLAS 0.3.21 ..., core SkylakeX, 2 threads (split by hone over TBB)".
std::string blas_info();

// Debian 12's OpenBLAS 0.3.21 can mis-detect AVX-512 CPUs (or inherit OPENBLAS_CORETYPE=Haswell
// from the environment) and run sgemm 2-4x slower. The core is fixed when the library loads, so
// when the CPU has AVX-512 but the loaded core is not an AVX-512 one, this sets
// OPENBLAS_CORETYPE (Cooperlake with avx512_bf16, else SkylakeX) and re-executes the program
// once (guard HONE_BLAS_REEXEC=1). Opt out with HONE_KEEP_BLAS_CORETYPE=1. Call it first in
// main(); on any failure it returns silently and the program runs on the slower core.
void blas_ensure_fast_kernel(int argc, char** argv);

}  // namespace hone::kernels
