// A 64-bit checksum for catching corrupted files (bit rot, torn or zeroed blocks, stray writes;
// not an adversary). Four independent multiply-rotate lanes over 8-byte words, so it runs at
// memory speed on a multi-GB optimizer state. Every step is a bijection of the lane's state and of
// the input word, so a change confined to one 8-byte word (any single flipped bit) always changes
// the result; other changes go unnoticed with odds of about 2^-64.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace hone {

uint64_t checksum64(const void* data, size_t n, uint64_t seed = 0);
inline uint64_t checksum64(const std::string& s, uint64_t seed = 0) {
  return checksum64(s.data(), s.size(), seed);
}

}  // namespace hone
