// Which arithmetic the frozen-base products use on this CPU (training.compute_dtype, hone eval /
// generate --compute-dtype): f32, or bf16 inputs with f32 accumulation (bf16_gemm.h). "auto"
// picks bf16 only where the CPU runs it faster than f32, from a table keyed by what the CPU
// reports (no timing at start-up, so the choice, and with it the adapter, is the same on every
// run on the same kind of machine):
//   AMX-BF16 (Intel Sapphire Rapids and later)     bf16: tile products, several times fp32
//   AVX512_BF16 on AMD (Zen 4, Zen 5)              bf16: vdpbf16ps at twice the fp32 FMA rate
//   AVX512_BF16 on Intel without AMX (Cooper Lake,
//     or a VM hiding AMX)                          f32: vdpbf16ps at half the fp32 FMA rate
//   no bf16 dot products, or no oneDNN             f32
// bench/roofline measures both rates on the machine it runs on (bench/RESULTS.md).
#pragma once

#include <string>

namespace hone::kernels {

// What the CPU reports (cpuid), as the table reads it.
struct CpuKind {
  std::string vendor;  // "AMD", "Intel" or what cpuid says
  int family = 0, model = 0;
  bool avx512_bf16 = false, amx_bf16 = false;
  // AVX-512 F, BW, VL and DQ with the OS saving the zmm state: what the AVX-512 kernels need.
  bool avx512 = false;
  std::string describe() const;  // "AMD family 25 model 17, AVX512_BF16, no AMX"
};
CpuKind cpu_kind();

struct ComputeChoice {
  bool bf16 = false;
  std::string reason;  // why: "as asked", or "auto: <what the CPU has>"
  const char* name() const { return bf16 ? "bf16" : "f32"; }
  // "bf16 products (auto: AMD with AVX512_BF16 runs ...)"
  std::string describe() const {
    return std::string(bf16 ? "bf16 products" : "f32") + " (" + reason + ")";
  }
};

// request: "auto", "f32" or "bf16". An explicit bf16 is refused (Error naming `field`) where
// the product cannot run: hone built without oneDNN, or a CPU without AVX512_BF16 or AMX.
ComputeChoice choose_compute(const std::string& request, const CpuKind& cpu,
                             const std::string& field = "compute_dtype");
// The same for this machine, and set_bf16_products() to the answer.
ComputeChoice apply_compute(const std::string& request, const std::string& field = "compute_dtype");

}  // namespace hone::kernels
