// The f32 -> bf16 rounding every bf16 product applies to its f32 inputs (activations as they
// enter the product, f32 frozen weights part by part), in the fastest way the CPU has, chosen
// once from cpu_kind() (compute_choice.h). Every way is bitwise equal to f32_to_bf16
// (autograd/dtype.h) on every input, so the choice never changes a result.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace hone::kernels {

// dst[i] = f32_to_bf16(src[i]) (round to nearest even, NaN kept a quiet NaN, subnormals kept).
void round_to_bf16(const float* src, uint16_t* dst, size_t n);

enum class Bf16Rounding {
  kPortable,    // plain loop, vectorised for the build's target
  kAvx512,      // AVX-512 (F, BW, VL, DQ) integer arithmetic, 16 values at a time
  kAvx512Bf16,  // vcvtne2ps2bf16, 32 values at a time; as it flushes subnormal inputs to zero,
                // 32 values holding a subnormal (or a zero) take the integer way instead
};
const char* bf16_rounding_name(Bf16Rounding how);
// The ways this CPU can run, slowest first; round_to_bf16 uses the last.
const std::vector<Bf16Rounding>& bf16_roundings();
// round_to_bf16 in a given way (tests and bench_kernels); throws Error when the CPU lacks it.
void round_to_bf16(Bf16Rounding how, const float* src, uint16_t* dst, size_t n);

}  // namespace hone::kernels
