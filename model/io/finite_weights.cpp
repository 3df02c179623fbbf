#include "model/io/finite_weights.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace hone {

namespace {

// Index of the first of n values (Stride bytes apart from p) whose exponent bits, of type U
// under `mask`, are all set, or -1. Chunked so the inner loop is a branch-free OR that vectorises.
template <class U, size_t Stride>
int64_t first_all_ones(const unsigned char* p, int64_t n, U mask) {
  constexpr int64_t kChunk = 4096;
  for (int64_t c = 0; c < n; c += kChunk) {
    const int64_t end = std::min(n, c + kChunk);
    bool bad = false;
    for (int64_t i = c; i < end; ++i) {
      U u;
      std::memcpy(&u, p + static_cast<size_t>(i) * Stride, sizeof u);
      bad |= (u & mask) == mask;
    }
    if (!bad) continue;
    for (int64_t i = c; i < end; ++i) {
      U u;
      std::memcpy(&u, p + static_cast<size_t>(i) * Stride, sizeof u);
      if ((u & mask) == mask) return i;
    }
  }
  return -1;
}

// First non-finite element of t (for block types: the first element of the block whose scale
// is not finite), or -1.
int64_t first_non_finite(const Tensor& t) {
  const auto* p = static_cast<const unsigned char*>(t.raw());
  const int64_t n = t.numel();
  switch (t.dtype()) {
    case DType::F32:
      return first_all_ones<uint32_t, 4>(p, n, 0x7f800000u);
    case DType::F64:
      return first_all_ones<uint64_t, 8>(p, n, 0x7ff0000000000000ull);
    case DType::BF16:
      return first_all_ones<uint16_t, 2>(p, n, 0x7f80);
    case DType::F16:
      return first_all_ones<uint16_t, 2>(p, n, 0x7c00);
    case DType::Q8_0:
    case DType::Q4_0: {
      // Each block starts with its f16 scale: 34 bytes per Q8_0 block, 18 per Q4_0 block.
      const int64_t blocks = n / 32;
      const int64_t b = t.dtype() == DType::Q8_0 ? first_all_ones<uint16_t, 34>(p, blocks, 0x7c00)
                                                 : first_all_ones<uint16_t, 18>(p, blocks, 0x7c00);
      return b < 0 ? -1 : b * 32;
    }
    default:
      return -1;
  }
}

}  // namespace

void check_finite_weights(const std::map<std::string, Tensor>& tensors, const std::string& source) {
  std::vector<const std::pair<const std::string, Tensor>*> list;
  for (const auto& kv : tensors) list.push_back(&kv);
  std::vector<int64_t> found(list.size(), -1);
  tbb::parallel_for(size_t{0}, list.size(), [&](size_t i) {
    if (list[i]->second.defined()) found[i] = first_non_finite(list[i]->second);
  });
  for (size_t i = 0; i < list.size(); ++i) {
    if (found[i] < 0) continue;
    const Tensor& t = list[i]->second;
    throw Error(source + ": tensor " + list[i]->first + ": non-finite value (" +
                std::to_string(t.item(found[i])) + ") at element " + std::to_string(found[i]) +
                " of " + std::to_string(t.numel()) +
                "; the base model's weights are damaged (re-download or re-convert it)");
  }
}

}  // namespace hone
