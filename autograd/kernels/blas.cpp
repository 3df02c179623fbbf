#include "autograd/kernels/blas.h"

#include <cblas.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <limits>
#include <string>

#include "autograd/error.h"

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

}  // namespace

template <>
void gemm<float>(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  check_dims("gemm", ta, tb, M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_c(M, N, beta, C, ldc);
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(M), static_cast<blasint>(N), static_cast<blasint>(K), alpha, A,
              static_cast<blasint>(lda), B, static_cast<blasint>(ldb), beta, C,
              static_cast<blasint>(ldc));
}

template <>
void gemm<double>(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
                  int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  check_dims("gemm", ta, tb, M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_c(M, N, beta, C, ldc);
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(M), static_cast<blasint>(N), static_cast<blasint>(K), alpha, A,
              static_cast<blasint>(lda), B, static_cast<blasint>(ldb), beta, C,
              static_cast<blasint>(ldc));
}

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
  if (n > 0) openblas_set_num_threads(n);
}

int blas_threads() { return openblas_get_num_threads(); }

std::string blas_info() {
  std::string config = openblas_get_config() ? openblas_get_config() : "OpenBLAS";
  while (!config.empty() && std::isspace(static_cast<unsigned char>(config.back())))
    config.pop_back();
  const char* core = openblas_get_corename();
  return config + ", core " + (core ? core : "?") + ", " +
         std::to_string(openblas_get_num_threads()) + " threads";
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
