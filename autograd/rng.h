// A small counter-based generator: its whole state is one u64, so it checkpoints trivially and
// gives the same stream on every platform (std::uniform_*_distribution does not).
#pragma once

#include <cmath>
#include <cstdint>

namespace hone {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) : state_(seed) {}
  uint64_t state() const { return state_; }
  void set_state(uint64_t s) { state_ = s; }
  // Jumps over n draws of next_u64 in O(1) (the state is a counter): lets a long stream be
  // filled in parallel chunks with exactly the sequential values.
  void skip(uint64_t n) { state_ += n * kGamma; }

  // splitmix64
  uint64_t next_u64() {
    uint64_t z = (state_ += kGamma);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  // Uniform in [lo, hi).
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Standard normal (Box-Muller; one draw per call keeps the state simple).
  double normal() {
    double u1 = uniform();
    double u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  static constexpr uint64_t kGamma = 0x9e3779b97f4a7c15ull;
  uint64_t state_;
};

}  // namespace hone
