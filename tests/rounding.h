// Error bounds for float results that another CPU may compute in another order (OpenBLAS picks its
// kernel per CPU: other blocking, other summation order, fused multiply-adds or not; TBB splits
// work differently). Derived from the arithmetic, not fitted to one machine's measurement, so a
// test that uses them passes on every machine by construction and still fails on a real bug.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace hone::test {

// Unit roundoff: one correctly rounded operation is off by at most u·|result|.
inline constexpr double kUnitF32 = 0x1p-24;
inline constexpr double kUnitF64 = 0x1p-53;

// Higham's γ_n = n·u / (1 − n·u) (Accuracy and Stability of Numerical Algorithms, §3.1): a sum
// of n products computed in ANY order, blocked or split, with or without fused multiply-adds, is
// within γ_n·Σ|a_i·b_i| of the exact sum. Also covers n roundings applied one after another.
inline double gamma_n(double n, double u = kUnitF32) {
  return n * u / (1 - n * u);
}

// |computed − exact| for one element of a dot product of length n whose products' magnitudes add
// up to sum_abs_products (e.g. Σ|a_k|·|b_k|, a gemm on the absolute values).
inline double dot_bound(double n, double sum_abs_products, double u = kUnitF32) {
  return gamma_n(n, u) * sum_abs_products;
}

// S (M, N) = |A|·|B|ᵀ for row-major A (M, K) and B (N, K): each entry the Σ|a_k·b_k| that
// dot_bound takes, for a whole product at once (B (K, N) when b_is_kn).
inline std::vector<double> abs_products(const double* A, const double* B, int64_t M, int64_t N,
                                        int64_t K, bool b_is_kn = false) {
  std::vector<double> S(static_cast<size_t>(M * N), 0.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k)
        s += std::abs(A[i * K + k]) * std::abs(b_is_kn ? B[k * N + j] : B[j * K + k]);
      S[static_cast<size_t>(i * N + j)] = s;
    }
  return S;
}

// Largest |got − want| / bound over a set of elements; a test expects worst() <= 1 and prints
// where() so a failure says how far over its bound, and where, the worst element was.
class BoundCheck {
 public:
  void add(double got, double want, double bound, int64_t index) {
    const double err = std::abs(got - want);
    const double ratio = err == 0 ? 0 : (bound > 0 ? err / bound : INFINITY);
    if (!(ratio <= worst_)) {  // NaN counts as worst
      worst_ = std::isnan(ratio) ? INFINITY : ratio;
      at_ = index;
      got_ = got;
      want_ = want;
      bound_ = bound;
    }
  }
  double worst() const { return worst_; }
  std::string where() const {
    std::ostringstream s;
    s << "worst at [" << at_ << "]: got " << got_ << ", want " << want_ << ", |diff| "
      << std::abs(got_ - want_) << " vs bound " << bound_ << " (" << worst_ << " of it)";
    return s.str();
  }

 private:
  double worst_ = 0, got_ = 0, want_ = 0, bound_ = 0;
  int64_t at_ = -1;
};

}  // namespace hone::test
