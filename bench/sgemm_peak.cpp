// The machine's sgemm peak through the BLAS hone uses: the denominator of MFU figures. Measured
// both ways a product can be threaded here — split by hone over TBB (what hone runs) and by
// OpenBLAS's own pool — and the better one is the peak, so MFU is never flattered by a weaker
// denominator.
//   bench_sgemm_peak [n=2048] [reps=10]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "autograd/kernels/blas.h"

namespace {

double gflops(int64_t n, int reps, std::vector<float>& a, std::vector<float>& b,
              std::vector<float>& c) {
  auto run = [&] {
    hone::kernels::gemm<float>(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f,
                               c.data(), n);
  };
  run();  // warm-up
  auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) run();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return 2.0 * static_cast<double>(n) * n * n * reps / s / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  hone::kernels::blas_ensure_fast_kernel(argc, argv);
  const int64_t n = argc > 1 ? std::stoll(argv[1]) : 2048;
  const int reps = argc > 2 ? std::stoi(argv[2]) : 10;
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
  const double split = gflops(n, reps, a, b, c);
  hone::kernels::set_gemm_split(false);
  const double own = gflops(n, reps, a, b, c);
  hone::kernels::set_gemm_split(true);
  std::printf(
      "{\"bench\": \"sgemm\", \"n\": %lld, \"gflops\": %.1f, \"gflops_hone_split\": %.1f, "
      "\"gflops_openblas_threads\": %.1f, \"blas\": \"%s\"}\n",
      static_cast<long long>(n), std::max(split, own), split, own,
      hone::kernels::blas_info().c_str());
  return 0;
}
