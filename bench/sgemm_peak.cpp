// The machine's sgemm peak through the BLAS hone uses: the denominator of MFU figures. Measured
// both ways a product can be threaded here — split by hone over TBB (what hone runs) and by
// OpenBLAS's own pool — and the better one is the peak, so MFU is never flattered by a weaker
// denominator. Also the FMA roof in the same run: every thread running independent AVX-512
// FMAs on registers only, what no product with memory traffic can beat (the sgemm peak is a
// fraction of it, and the host's phases move both).
//   bench_sgemm_peak [n=2048] [reps=10]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "autograd/kernels/bf16_gemm.h"
#include "autograd/kernels/blas.h"
#include "autograd/kernels/compute_choice.h"

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

#if defined(__AVX512F__)
// 12 independent accumulator chains (FMA latency 4 × 2 ports needs 8), each advanced by
// r = step(r) `turns` times on registers only; their lanes' sum is returned so the work is kept.
constexpr int kChains = 12;

template <class Step>
inline float register_chains(int64_t turns, Step step) {
  __m512 r[kChains];
  for (int i = 0; i < kChains; ++i) r[i] = _mm512_set1_ps(1.0f + 1e-3f * static_cast<float>(i));
  for (int64_t t = 0; t < turns; ++t) {
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) r[i] = step(r[i]);
  }
  __m512 s = r[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, r[i]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, s);
  float sum = 0;
  for (float v : lanes) sum += v;
  return sum;
}

// GFLOP/s of `threads` threads each running chains(turns), at flops_per_lane flops a lane a step.
double roof_gflops(int threads, float (*chains)(int64_t), int flops_per_lane) {
  const int64_t turns = 100'000'000;
  std::vector<float> sink(static_cast<size_t>(threads));
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) pool.emplace_back([&, i] { sink[i] = chains(turns); });
  for (auto& t : pool) t.join();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  volatile float keep = sink[0];  // the chains' result is used, so they are computed
  (void)keep;
  return threads * static_cast<double>(turns) * kChains * 16 * flops_per_lane / s / 1e9;
}

// a·b + c: 2 flops a lane.
__attribute__((noinline)) float fma_chains(int64_t turns) {
  const __m512 m = _mm512_set1_ps(0.999999f), k = _mm512_set1_ps(1e-7f);
  return register_chains(turns, [&](__m512 r) { return _mm512_fmadd_ps(r, m, k); });
}

double fma_roof(int threads) {
  return roof_gflops(threads, fma_chains, 2);
}
#else
double fma_roof(int) {
  return 0.0;  // not measured without AVX-512
}
#endif

#if defined(__AVX512BF16__)
// vdpbf16ps: each lane adds two bf16 products, 4 flops.
__attribute__((noinline)) float dpbf16_chains(int64_t turns) {
  const __m512bh m = (__m512bh)_mm512_set1_epi16(0x3f80), k = (__m512bh)_mm512_set1_epi16(0x3380);
  return register_chains(turns, [&](__m512 r) { return _mm512_dpbf16_ps(r, m, k); });
}

double bf16_roof(int threads) {
  return roof_gflops(threads, dpbf16_chains, 4);
}
#else
double bf16_roof(int) {
  return 0.0;  // no AVX512_BF16
}
#endif

// The bf16 product hone runs (oneDNN, split by hone over TBB): n³, bf16 in, f32 out.
double bf16_gemm_gflops(int64_t n, int reps) {
  if (!hone::kernels::bf16_gemm_available()) return 0.0;
  std::vector<uint16_t> a(static_cast<size_t>(n * n), 0x3f00),
      b(static_cast<size_t>(n * n), 0x3e80);
  std::vector<float> c(static_cast<size_t>(n * n));
  auto run = [&] {
    hone::kernels::gemm_bf16(true, n, n, n, a.data(), n, b.data(), n, 0.0f, c.data(), n);
  };
  run();
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
  const double roof = fma_roof(hone::kernels::blas_threads());
  const double roof16 = bf16_roof(hone::kernels::blas_threads());
  const double bf16 = bf16_gemm_gflops(n, reps);
  std::printf(
      "{\"bench\": \"sgemm\", \"n\": %lld, \"gflops\": %.1f, \"gflops_hone_split\": %.1f, "
      "\"gflops_openblas_threads\": %.1f, \"fma_roof_gflops\": %.1f, "
      "\"bf16_gemm_gflops\": %.1f, \"bf16_dot_roof_gflops\": %.1f, \"cpu\": \"%s\", "
      "\"blas\": \"%s\"}\n",
      static_cast<long long>(n), std::max(split, own), split, own, roof, bf16, roof16,
      hone::kernels::cpu_kind().describe().c_str(), hone::kernels::blas_info().c_str());
  return 0;
}
