// The vectorized row primitives against plain-loop references: exp within 2 ulp of std::exp over
// its whole range (and its documented edges), lane sums and maxima on odd lengths.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "autograd/kernels/vmath.h"
#include "autograd/rng.h"
#include "rounding.h"

using namespace hone;
using namespace hone::kernels;

namespace {

TEST(Vmath, ExpWithinTwoUlpOfStdExp) {
  double worst = 0;
  for (float x = -87.3f; x < 88.0f; x = std::nextafter(x + 1e-3f * std::fabs(x), 100.0f)) {
    const double want = std::exp(static_cast<double>(x));
    const double got = exp_poly(x);
    const double ulp =
        std::nextafter(static_cast<float>(want), INFINITY) - static_cast<float>(want);
    worst = std::max(worst, std::fabs(got - want) / ulp);
  }
  EXPECT_LE(worst, 2.0);
  EXPECT_EQ(exp_poly(0.0f), 1.0f);
  EXPECT_EQ(exp_poly(-100.0f), 0.0f);
  EXPECT_EQ(exp_poly(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_TRUE(std::isfinite(exp_poly(1000.0f)));
  EXPECT_TRUE(std::isnan(exp_poly(std::numeric_limits<float>::quiet_NaN())));
}

TEST(Vmath, RowOpsMatchPlainLoopsOnOddSizes) {
  Rng r(3);
  for (int64_t n : {0, 1, 3, 7, 15, 16, 17, 31, 33, 1000, 1023}) {
    std::vector<float> x(static_cast<size_t>(n)), y(x.size());
    for (auto& v : x) v = static_cast<float>(r.normal() * 4);
    double sum = 0, sum_abs = 0;
    float mx = -std::numeric_limits<float>::infinity();
    for (float v : x) {
      sum += v;
      sum_abs += std::fabs(v);
      mx = std::max(mx, v);
    }
    EXPECT_EQ(row_max(x.data(), n), mx) << n;
    // Each element meets at most ⌈n/16⌉ adds in its lane and 16 joining the lanes, in f32;
    // the f64 sum of at most 1023 floats is exact to far below that (+1).
    EXPECT_NEAR(row_sum(x.data(), n), sum, test::gamma_n(double(n / 16 + 18)) * sum_abs) << n;
    exp_shifted(x.data(), n, 1.5f, y.data());
    for (int64_t i = 0; i < n; ++i) {
      const double want = std::exp(static_cast<double>(x[i] - 1.5f));  // the float difference
      // exp_poly's 2 ulp; one ulp of a float is at most 2u of its value.
      EXPECT_NEAR(y[i], want, 4 * test::kUnitF32 * want) << n << " " << i;
    }
    std::vector<double> xd(x.begin(), x.end());
    EXPECT_EQ(row_max(xd.data(), n), static_cast<double>(mx));
  }
  std::vector<float> with_nan = {1, 2, std::numeric_limits<float>::quiet_NaN(), 3};
  EXPECT_TRUE(std::isnan(row_max(with_nan.data(), 4)));
  std::vector<float> with_inf(20, 1.0f);
  with_inf[17] = std::numeric_limits<float>::infinity();
  EXPECT_EQ(row_max(with_inf.data(), 20), std::numeric_limits<float>::infinity());
}

}  // namespace
