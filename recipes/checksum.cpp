#include "recipes/checksum.h"

#include <cstring>

namespace hone {

namespace {

// Odd 64-bit constants with well-spread bits (multiplication by an odd number is invertible).
constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull;
constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4Full;
constexpr uint64_t kP3 = 0x165667B19E3779F9ull;

uint64_t rotl(uint64_t x, int r) {
  return (x << r) | (x >> (64 - r));
}

// Bijective in `acc` for a fixed word and in `word` for a fixed acc.
uint64_t round(uint64_t acc, uint64_t word) {
  return rotl(acc + word * kP2, 31) * kP1;
}

uint64_t load(const unsigned char* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}

}  // namespace

uint64_t checksum64(const void* data, size_t n, uint64_t seed) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t v[4] = {seed + kP1 + kP2, seed + kP2, seed, seed - kP1};
  size_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int k = 0; k < 4; ++k) v[k] = round(v[k], load(p + i + 8 * k));
  if (i < n) {  // the tail, zero-padded to a full stripe; the length below tells pads apart
    unsigned char last[32] = {};
    std::memcpy(last, p + i, n - i);
    for (int k = 0; k < 4; ++k) v[k] = round(v[k], load(last + 8 * k));
  }
  // Each lane enters through a bijection, so a difference in one lane survives the sum.
  uint64_t h = rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18);
  h = round(h, static_cast<uint64_t>(n));
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

}  // namespace hone
