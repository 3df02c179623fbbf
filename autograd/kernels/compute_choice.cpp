#include "autograd/kernels/compute_choice.h"

#include <cstdint>
#include <cstring>

#include "autograd/error.h"
#include "autograd/kernels/bf16_gemm.h"

namespace hone::kernels {

namespace {

void cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
#if defined(__x86_64__)
  __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
#else
  r[0] = r[1] = r[2] = r[3] = 0;
  (void)leaf;
  (void)sub;
#endif
}

uint64_t xcr0() {
#if defined(__x86_64__)
  unsigned r[4];
  cpuid(1, 0, r);
  if (!((r[2] >> 27) & 1u)) return 0;  // no OSXSAVE
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
#else
  return 0;
#endif
}

}  // namespace

std::string CpuKind::describe() const {
  return vendor + " family " + std::to_string(family) + " model " + std::to_string(model) +
         (avx512_bf16 ? ", AVX512_BF16" : ", no AVX512_BF16") +
         (amx_bf16 ? ", AMX-BF16" : ", no AMX");
}

CpuKind cpu_kind() {
  CpuKind k;
  unsigned r[4];
  cpuid(0, 0, r);
  const unsigned max_leaf = r[0];
  char v[13] = {};
  std::memcpy(v, &r[1], 4);
  std::memcpy(v + 4, &r[3], 4);
  std::memcpy(v + 8, &r[2], 4);
  const std::string id = v;
  k.vendor = id == "AuthenticAMD" ? "AMD" : id == "GenuineIntel" ? "Intel" : id;
  if (max_leaf >= 1) {
    cpuid(1, 0, r);
    const unsigned base_family = (r[0] >> 8) & 0xf, base_model = (r[0] >> 4) & 0xf;
    k.family =
        static_cast<int>(base_family == 0xf ? base_family + ((r[0] >> 20) & 0xff) : base_family);
    k.model = static_cast<int>(base_family == 0xf || base_family == 6
                                   ? base_model + (((r[0] >> 16) & 0xf) << 4)
                                   : base_model);
  }
  if (max_leaf >= 7) {
    cpuid(7, 0, r);
    // CPUID.(7,0):EDX[22], and the OS saving the tile state (XCR0 bits 17, 18): a VM may show
    // the bit without letting a program use the tiles.
    k.amx_bf16 = ((r[3] >> 22) & 1u) && (xcr0() & 0x60000u) == 0x60000u;
    // EBX bits 16 (F), 17 (DQ), 30 (BW), 31 (VL); XCR0 bits 1, 2, 5, 6, 7 (SSE, AVX, opmask
    // and both halves of the zmm registers).
    k.avx512 = (r[1] & 0xc0030000u) == 0xc0030000u && (xcr0() & 0xe6u) == 0xe6u;
    cpuid(7, 1, r);
    k.avx512_bf16 = (r[0] >> 5) & 1u;  // CPUID.(7,1):EAX[5]
  }
  return k;
}

ComputeChoice choose_compute(const std::string& request, const CpuKind& cpu,
                             const std::string& field) {
  const bool can = cpu.avx512_bf16 || cpu.amx_bf16;
  if (request == "f32") return {false, "as asked"};
  if (request == "bf16") {
    if (!bf16_gemm_available()) throw Error(field + ": bf16 needs oneDNN: " + bf16_gemm_info());
    if (!can)
      throw Error(field + ": bf16 needs a CPU with AVX512_BF16 or AMX-BF16; this one is " +
                  cpu.describe() + " (use f32 or auto)");
    return {true, "as asked"};
  }
  if (request != "auto") throw Error(field + ": '" + request + "' is not one of auto, f32, bf16");
  if (!bf16_gemm_available()) return {false, "auto: hone was built without oneDNN"};
  if (cpu.amx_bf16) return {true, "auto: the CPU has AMX-BF16 tiles"};
  if (cpu.avx512_bf16 && cpu.vendor == "AMD")
    return {true, "auto: AMD with AVX512_BF16 runs bf16 dot products at twice its fp32 rate"};
  if (cpu.avx512_bf16)
    return {false, "auto: without AMX this CPU runs bf16 dot products at half its fp32 rate"};
  return {false, "auto: the CPU has no bf16 dot products"};
}

ComputeChoice apply_compute(const std::string& request, const std::string& field) {
  const ComputeChoice c = choose_compute(request, cpu_kind(), field);
  set_bf16_products(c.bf16);
  return c;
}

}  // namespace hone::kernels
