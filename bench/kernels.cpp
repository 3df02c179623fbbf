// Speed of the kernels a training step spends its time in, at the bench's shapes, so that a
// change to one of them can be timed with a repo command (the whole step swings too much on a
// shared host to show a few percent):
//   - causal grouped-query attention, forward and backward (kernels/attention.h), per head
//     layout of SmolLM2-135M / Qwen2.5-0.5B / Llama-3.2-1B at seq 512;
//   - the products with a frozen q8_0 weight (ops/weight_blocks.h): forward x·Wᵀ and input
//     gradient dY·W, each converting W part by part, for the shapes of those models;
//   - the f32 -> bf16 rounding of the bf16 products (kernels/bf16_round.h), on one thread, in
//     each way the CPU can run it (the plain loop first), on an L1-sized, a cache-sized (larger
//     than Zen 4's 1 MB L2) and a memory-sized array.
//
//   bench_kernels [--threads N] [--repeats R]
//
// Prints one JSON line per kernel and shape: the best of R timed repeats, and GFLOP/s of the
// useful work (attention: the causal triangle only, 2 products forward and 5 backward), or
// Gelem/s and GB/s (bytes read and written) of the rounding.
#include <tbb/global_control.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <vector>

#include "autograd/kernels/attention.h"
#include "autograd/kernels/bf16_gemm.h"
#include "autograd/kernels/bf16_round.h"
#include "autograd/kernels/blas.h"
#include "autograd/kernels/quant.h"
#include "autograd/ops/weight_blocks.h"
#include "autograd/rng.h"

using namespace hone;

namespace {

std::vector<float> random_floats(size_t n, uint64_t seed, float scale) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = scale * static_cast<float>(rng.normal());
  return v;
}

// Best wall time of `repeats` runs of fn (after one untimed run), in seconds.
template <class F>
double best_of(int repeats, const F& fn) {
  fn();
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// Attention with f32 products and, where the build has them, with bf16 products (what
// training.compute_dtype bf16 runs), at one shape, interleaved.
void bench_attention(const char* model, int64_t Hq, int64_t Hkv, int repeats) {
  constexpr int64_t T = 512, D = 64;
  const auto q = random_floats(T * Hq * D, 1, 1), dout = random_floats(T * Hq * D, 4, 1);
  const auto k = random_floats(T * Hkv * D, 2, 1), v = random_floats(T * Hkv * D, 3, 1);
  std::vector<float> out(q.size()), lse(Hq * T), dq(q.size()), dk(k.size()), dv(v.size());
  const double product = 2.0 * D * static_cast<double>(T * (T + 1) / 2) * Hq;  // one causal product
  for (bool bf16 : {false, true}) {
    if (bf16 && !kernels::bf16_gemm_available()) continue;
    const double fwd = best_of(repeats, [&] {
      if (bf16)
        kernels::attention_fwd_bf16(1, T, T, Hq, Hkv, D, q.data(), k.data(), v.data(), out.data(),
                                    lse.data());
      else
        kernels::attention_fwd<float>(1, T, T, Hq, Hkv, D, q.data(), k.data(), v.data(), out.data(),
                                      lse.data());
    });
    const double bwd = best_of(repeats, [&] {
      if (bf16)
        kernels::attention_bwd_bf16(1, T, T, Hq, Hkv, D, q.data(), k.data(), v.data(), out.data(),
                                    lse.data(), dout.data(), dq.data(), dk.data(), dv.data(),
                                    nullptr, true, true, true);
      else
        kernels::attention_bwd<float>(1, T, T, Hq, Hkv, D, q.data(), k.data(), v.data(), out.data(),
                                      lse.data(), dout.data(), dq.data(), dk.data(), dv.data(),
                                      nullptr, true, true, true);
    });
    std::printf(
        "{\"bench\": \"attention\", \"products\": \"%s\", \"shape\": \"%s\", \"heads\": %lld, "
        "\"kv_heads\": %lld, \"head_dim\": %lld, \"seq\": %lld, \"fwd_ms\": %.3f, \"bwd_ms\": "
        "%.3f, \"fwd_gflops\": %.1f, \"bwd_gflops\": %.1f}\n",
        bf16 ? "bf16" : "f32", model, static_cast<long long>(Hq), static_cast<long long>(Hkv),
        static_cast<long long>(D), static_cast<long long>(T), fwd * 1e3, bwd * 1e3,
        2 * product / fwd / 1e9, 5 * product / bwd / 1e9);
  }
}

void bench_converted(const char* what, int64_t out, int64_t in, int repeats) {
  constexpr int64_t N = 512;
  const auto w = random_floats(static_cast<size_t>(out * in), 5, 0.02f);
  Tensor W = Tensor::empty(DType::Q8_0, {out, in});
  kernels::quantize(w.data(), W.raw(), DType::Q8_0, out * in);
  const auto x = random_floats(static_cast<size_t>(N * in), 6, 1);
  const auto dy = random_floats(static_cast<size_t>(N * out), 7, 1);
  std::vector<float> y(static_cast<size_t>(N * out)), dx(static_cast<size_t>(N * in));
  const double fwd = best_of(
      repeats, [&] { ops_detail::converted_xwt<float>(W, out, in, x.data(), N, 0.0f, y.data()); });
  const double bwd = best_of(repeats, [&] {
    ops_detail::converted_dyw<float>(W, out, in, dy.data(), N, 0.0f, dx.data());
  });
  const double flops = 2.0 * N * static_cast<double>(out) * static_cast<double>(in);
  std::printf(
      "{\"bench\": \"converted_q8_0\", \"shape\": \"%s\", \"out\": %lld, \"in\": %lld, "
      "\"tokens\": %lld, \"xwt_ms\": %.3f, \"dyw_ms\": %.3f, \"xwt_gflops\": %.1f, "
      "\"dyw_gflops\": %.1f}\n",
      what, static_cast<long long>(out), static_cast<long long>(in), static_cast<long long>(N),
      fwd * 1e3, bwd * 1e3, flops / fwd / 1e9, flops / bwd / 1e9);
}

void bench_rounding(const char* what, size_t n, int repeats) {
  const auto x = random_floats(n, 8, 1);
  std::vector<uint16_t> y(n);
  const int calls = static_cast<int>(std::max<size_t>(1, (size_t{1} << 24) / n));  // ~16M values
  for (kernels::Bf16Rounding how : kernels::bf16_roundings()) {
    const double t = best_of(repeats, [&] {
      for (int c = 0; c < calls; ++c) kernels::round_to_bf16(how, x.data(), y.data(), n);
    });
    const double per_s = static_cast<double>(n) * calls / t;
    std::printf(
        "{\"bench\": \"round_to_bf16\", \"way\": \"%s\", \"size\": \"%s\", \"elems\": %zu, "
        "\"gelem_per_s\": %.2f, \"gb_per_s\": %.1f}\n",
        kernels::bf16_rounding_name(how), what, n, per_s / 1e9, per_s * 6 / 1e9);
  }
}

}  // namespace

int main(int argc, char** argv) {
  kernels::blas_ensure_fast_kernel(argc, argv);
  int threads = 0, repeats = 10;
  CLI::App app{
      "bench_kernels: attention, frozen-q8_0 products and the bf16 rounding at the bench's shapes"};
  app.add_option("--threads", threads, "0 = all cores")->capture_default_str();
  app.add_option("--repeats", repeats, "timed repeats (best kept)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  std::unique_ptr<tbb::global_control> limit;
  if (threads > 0) {
    kernels::set_blas_threads(threads);
    limit = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                  static_cast<size_t>(threads));
  }
  bench_rounding("L1", 4096, repeats);
  bench_rounding("L2-L3 (135M activation rows, 1.2 MB)", 512 * 576, repeats);
  bench_rounding("memory (0.5B gate_proj weight)", 4864 * 896, repeats);
  bench_attention("smollm2-135m", 9, 3, repeats);
  bench_attention("qwen2.5-0.5b", 14, 2, repeats);
  bench_attention("llama3.2-1b", 32, 8, repeats);
  struct Shape {
    const char* what;
    int64_t out, in;
  };
  for (const Shape& s :
       {Shape{"smollm2-135m q_proj", 576, 576}, Shape{"smollm2-135m k_proj", 192, 576},
        Shape{"smollm2-135m gate_proj", 1536, 576}, Shape{"smollm2-135m down_proj", 576, 1536},
        Shape{"smollm2-135m lm_head", 49152, 576}, Shape{"qwen2.5-0.5b gate_proj", 4864, 896},
        Shape{"qwen2.5-0.5b down_proj", 896, 4864}, Shape{"llama3.2-1b gate_proj", 8192, 2048},
        Shape{"llama3.2-1b down_proj", 2048, 8192}, Shape{"llama3.2-1b lm_head", 128256, 2048}})
    bench_converted(s.what, s.out, s.in, repeats);
  return 0;
}
