#include "autograd/kernels/blas.h"

#include <cblas.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <limits>
#include <string>
#include <type_traits>

#include "autograd/error.h"
#include "autograd/kernels/parallel.h"

namespace hone::kernels {

namespace {

void check_dims(const char* name, bool ta, bool tb, int64_t M, int64_t N, int64_t K, int64_t lda,
                int64_t ldb, int64_t ldc) {
  int64_t a_cols = ta ? M : K, b_cols = tb ? K : N;
  const int64_t big = std::numeric_limits<blasint>::max();  // OpenBLAS takes 32-bit dims
  if (M < 0 || N < 0 || K < 0 || lda < std::max<int64_t>(1, a_cols) || M > big || N > big ||
      K > big || lda > big || ldb > big || ldc > big || ldb < std::max<int64_t>(1, b_cols) ||
      ldc < std::max<int64_t>(1, N))
    throw Error(std::string(name) + ": bad dims M=" + std::to_string(M) + " N=" +
                std::to_string(N) + " K=" + std::to_string(K) + " lda=" + std::to_string(lda) +
                " ldb=" + std::to_string(ldb) + " ldc=" + std::to_string(ldc));
}

// C = beta·C for the K == 0 case, which BLAS implementations handle unevenly.
template <class T>
void scale_c(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
}

// One thread pool, not two: OpenBLAS runs single-threaded and hone splits each product over
// TBB's workers itself. With OpenBLAS's own pool beside TBB's, the idle side of each spins in
// sched_yield while the other works (15% of a 135M training step's samples on 2 cores).
// 0 = TBB's current limit (tbb::global_control), else set_blas_threads' value.
std::atomic<int> g_threads{0};
std::atomic<bool> g_split{true};
const bool g_single = [] {
  openblas_set_num_threads(1);
  return true;
}();

int split_threads() {
  const int limit = static_cast<int>(
      tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism));
  const int n = g_threads.load(std::memory_order_relaxed);
  return std::max(1, n > 0 ? std::min(n, limit) : limit);
}

// Below this many multiply-adds a product runs on the calling thread (splitting costs more).
constexpr double kSplitWork = 1 << 20;
// Row/column blocks are multiples of this (OpenBLAS's AVX-512 micro-tiles are 16 wide).
constexpr int64_t kSplitAlign = 16;

// C (M, N) = alpha·op(A)·op(B) + beta·C, split along the larger of M and N into split_parts
// blocks, each taken by whichever thread is free. No split runs along K, and the blocks depend
// only on the sizes and the thread count, so every element is the same sum whoever computes it.
template <class T, class Call>
void split_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda,
                const T* B, int64_t ldb, T* C, int64_t ldc, const Call& call) {
  (void)g_single;
  const int threads = gemm_threads(M, N, K);
  const bool by_rows = M >= N;
  const int64_t len = by_rows ? M : N;
  const Parts parts(len, kSplitAlign, split_parts(len, threads));
  for_parts(parts.count, [&](int64_t i) {
    const int64_t lo = parts.lo(i), hi = parts.lo(i + 1);
    if (lo >= hi) return;
    if (by_rows)  // rows [lo, hi) of C and of op(A)
      call(hi - lo, N, ta ? A + lo : A + lo * lda, B, C + lo * ldc);
    else  // columns [lo, hi) of C and of op(B)
      call(M, hi - lo, A, tb ? B + lo * ldb : B + lo, C + lo);
  });
}

}  // namespace

namespace {

template <class T>
void blas_call(bool ta, bool tb, int64_t m, int64_t n, int64_t K, T alpha, const T* a, int64_t lda,
               const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  const auto TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
  const auto M_ = static_cast<blasint>(m), N_ = static_cast<blasint>(n),
             K_ = static_cast<blasint>(K);
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, TA, TB, M_, N_, K_, alpha, a, static_cast<blasint>(lda), b,
                static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
  else
    cblas_dgemm(CblasRowMajor, TA, TB, M_, N_, K_, alpha, a, static_cast<blasint>(lda), b,
                static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
}

template <class T>
void gemm_impl(bool serial, bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
               int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  check_dims("gemm", ta, tb, M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_c(M, N, beta, C, ldc);
  auto call = [&](int64_t m, int64_t n, const T* a, const T* b, T* c) {
    blas_call<T>(ta, tb, m, n, K, alpha, a, lda, b, ldb, beta, c, ldc);
  };
  if (serial)
    call(M, N, A, B, C);
  else if (!g_split.load(std::memory_order_relaxed))
    call(M, N, A, B, C);  // OpenBLAS threads it
  else
    split_gemm<T>(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, call);
}

}  // namespace

template <class T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  gemm_impl<T>(false, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <class T>
void gemm_serial(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                 int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  gemm_impl<T>(true, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                          const float*, int64_t, float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                           const double*, int64_t, double, double*, int64_t);
template void gemm_serial<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*,
                                 int64_t, const float*, int64_t, float, float*, int64_t);
template void gemm_serial<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*,
                                  int64_t, const double*, int64_t, double, double*, int64_t);

template <class T>
void gemm_ref(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
              const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  check_dims("gemm_ref", ta, tb, M, N, K, lda, ldb, ldc);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0;
      for (int64_t p = 0; p < K; ++p) {
        double a = ta ? A[p * lda + i] : A[i * lda + p];
        double b = tb ? B[j * ldb + p] : B[p * ldb + j];
        acc += a * b;
      }
      T& c = C[i * ldc + j];
      c = static_cast<T>(alpha * acc + (beta == T(0) ? 0.0 : static_cast<double>(beta) * c));
    }
}

template void gemm_ref<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                              const float*, int64_t, float, float*, int64_t);
template void gemm_ref<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*,
                               int64_t, const double*, int64_t, double, double*, int64_t);

void set_blas_threads(int n) {
  if (n > 0) g_threads.store(n, std::memory_order_relaxed);
}

int blas_threads() {
  return split_threads();
}

int gemm_threads(int64_t M, int64_t N, int64_t K) {
  const double work = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  return work < kSplitWork ? 1 : split_threads();
}

int64_t split_parts(int64_t len, int threads) {
  constexpr int64_t kMinPart = 512;
  if (threads <= 1) return 1;
  return threads * std::max<int64_t>(1, std::min<int64_t>(4, len / (threads * kMinPart)));
}

void set_gemm_split(bool on) {
  g_split.store(on, std::memory_order_relaxed);
  openblas_set_num_threads(on ? 1 : split_threads());
}

std::string blas_info() {
  std::string config = openblas_get_config() ? openblas_get_config() : "OpenBLAS";
  while (!config.empty() && std::isspace(static_cast<unsigned char>(config.back())))
    config.pop_back();
  const char* core = openblas_get_corename();
  return config + ", core " + (core ? core : "?") + ", " + std::to_string(blas_threads()) +
         " threads (split by hone over TBB)";
}

namespace {

bool has_avx512_bf16() {
#if defined(__x86_64__)
  unsigned eax = 7, ebx = 0, ecx = 1, edx = 0;
  unsigned max_leaf = 0;
  __asm__ volatile("cpuid" : "=a"(max_leaf), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(0), "c"(0));
  if (max_leaf < 7) return false;
  eax = 7;
  ecx = 1;
  __asm__ volatile("cpuid" : "+a"(eax), "=b"(ebx), "+c"(ecx), "=d"(edx));
  return (eax >> 5) & 1u;  // CPUID.(EAX=7,ECX=1):EAX[5] = AVX512_BF16
#else
  return false;
#endif
}

bool env_is(const char* name, const char* value) {
  const char* v = std::getenv(name);
  return v && std::string(v) == value;
}

}  // namespace

void blas_ensure_fast_kernel(int argc, char** argv) {
#if defined(__x86_64__)
  if (argc < 1 || !argv || env_is("HONE_KEEP_BLAS_CORETYPE", "1") ||
      env_is("HONE_BLAS_REEXEC", "1"))
    return;
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f")) return;
  const char* core_c = openblas_get_corename();
  std::string core = core_c ? core_c : "";
  std::transform(core.begin(), core.end(), core.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (core == "skylakex" || core == "cooperlake" || core == "sapphirerapids") return;
  if (setenv("OPENBLAS_CORETYPE", has_avx512_bf16() ? "Cooperlake" : "SkylakeX", 1) != 0) return;
  if (setenv("HONE_BLAS_REEXEC", "1", 1) != 0) return;
  execv("/proc/self/exe", argv);  // returns only on failure: carry on with the current core
#else
  (void)argc;
  (void)argv;
#endif
}

}  // namespace hone::kernels
