// The machine's sgemm peak through the BLAS hone uses: the denominator of MFU figures.
//   bench_sgemm_peak [n=2048] [reps=10]
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "autograd/kernels/blas.h"

int main(int argc, char** argv) {
  hone::kernels::blas_ensure_fast_kernel(argc, argv);
  const int64_t n = argc > 1 ? std::stoll(argv[1]) : 2048;
  const int reps = argc > 2 ? std::stoi(argv[2]) : 10;
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
  hone::kernels::gemm<float>(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(),
                             n);  // warm-up
  auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r)
    hone::kernels::gemm<float>(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f,
                               c.data(), n);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("{\"bench\": \"sgemm\", \"n\": %lld, \"gflops\": %.1f, \"blas\": \"%s\"}\n",
              static_cast<long long>(n), 2.0 * n * n * n * reps / s / 1e9,
              hone::kernels::blas_info().c_str());
  return 0;
}
