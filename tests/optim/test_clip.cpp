#include <gtest/gtest.h>
#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "autograd/rng.h"
#include "optim/clip.h"
#include "rounding.h"

using namespace hone;

namespace {

Tensor random_grads(int64_t n, uint64_t seed, double scale = 1.0) {
  Tensor g = Tensor::empty(DType::F32, {n});
  Rng rng(seed);
  for (int64_t i = 0; i < n; ++i) g.data<float>()[i] = static_cast<float>(rng.normal() * scale);
  return g;
}

// Straight from the definition, in long double, one element after another.
double direct_norm(const Tensor& g) {
  long double s = 0;
  for (int64_t i = 0; i < g.numel(); ++i)
    s += static_cast<long double>(g.data<float>()[i]) * g.data<float>()[i];
  return static_cast<double>(std::sqrt(s));
}

// grad_norm sums the squares (exact in f64) in some order: all terms are positive, so the sum is
// within γ_n of its value relatively and its square root within half that, plus a rounding.
// direct_norm (long double, n adds) is closer still: γ_{n+2} in f64 covers both.
double norm_bound(const Tensor& g) {
  return test::gamma_n(double(g.numel() + 2), test::kUnitF64) * direct_norm(g);
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

}  // namespace

TEST(Clip, NormMatchesDirectComputation) {
  for (int64_t n : {1, 3, 7, 16383, 16384, 16385, 100003}) {
    const Tensor g = random_grads(n, static_cast<uint64_t>(n));
    EXPECT_NEAR(grad_norm(g), direct_norm(g), norm_bound(g)) << n;
  }
  EXPECT_EQ(grad_norm(Tensor::zeros(DType::F32, {0})), 0.0);
  EXPECT_EQ(grad_norm(Tensor::from_f32({3, 4}, {2})), 5.0);
}

TEST(Clip, BelowMaxLeavesGradsUntouched) {
  Tensor g = random_grads(1037, 1);
  const Tensor before = g.clone();
  const double norm = direct_norm(g), tol = norm_bound(g);
  EXPECT_NEAR(clip_grad_norm(g, norm * 1.5), norm, tol);
  EXPECT_TRUE(same_bits(g, before));
  EXPECT_NEAR(clip_grad_norm(g, 0.0), norm, tol);  // max_norm <= 0: no clipping
  EXPECT_NEAR(clip_grad_norm(g, -1.0), norm, tol);
  EXPECT_TRUE(same_bits(g, before));
}

TEST(Clip, AboveMaxScalesToMaxNorm) {
  Tensor g = random_grads(100003, 2, 0.5);
  const Tensor before = g.clone();
  const double norm = direct_norm(g), tol = norm_bound(g);
  const double max_norm = 1.0;
  ASSERT_GT(norm, 10.0);
  EXPECT_NEAR(clip_grad_norm(g, max_norm), norm, tol);  // the pre-clip norm
  const float scale = static_cast<float>(max_norm / (norm + 1e-6));
  for (int64_t i = 0; i < g.numel(); ++i)
    ASSERT_EQ(g.data<float>()[i], before.data<float>()[i] * scale) << i;
  // Each element scaled by the f32 coefficient (u) and rounded (u): the norm moves by γ_2 of
  // itself from max_norm·norm / (norm + 1e-6), plus γ of its own computation.
  EXPECT_NEAR(direct_norm(g), max_norm * norm / (norm + 1e-6),
              (test::gamma_n(2) + test::gamma_n(double(g.numel() + 2), test::kUnitF64)) * max_norm);
}

TEST(Clip, NonFiniteNormIsReturnedAndGradsUntouched) {
  for (float bad : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                    std::numeric_limits<float>::quiet_NaN()}) {
    Tensor g = random_grads(40000, 3);
    g.data<float>()[20000] = bad;
    const Tensor before = g.clone();
    const double norm = clip_grad_norm(g, 1.0);
    if (std::isnan(bad))
      EXPECT_TRUE(std::isnan(norm));
    else
      EXPECT_EQ(norm, std::numeric_limits<double>::infinity());
    EXPECT_TRUE(same_bits(g, before));
  }
  // Large finite f32 values do not overflow the double accumulator.
  Tensor big = Tensor::from_f32({3e38f, 3e38f}, {2});
  EXPECT_TRUE(std::isfinite(grad_norm(big)));
}

TEST(Clip, SameResultWithOneAndFourThreads) {
  const int64_t n = 1000003;
  double norms[2];
  Tensor clipped[2];
  int k = 0;
  for (size_t threads : {size_t{1}, size_t{4}}) {
    tbb::global_control gc(tbb::global_control::max_allowed_parallelism, threads);
    // An arena of that size too, so 4 threads run even on a machine with fewer cores.
    tbb::task_arena arena(static_cast<int>(threads));
    clipped[k] = random_grads(n, 4);
    arena.execute([&] { norms[k] = clip_grad_norm(clipped[k], 0.5); });
    ++k;
  }
  EXPECT_EQ(std::memcmp(&norms[0], &norms[1], sizeof(double)), 0) << norms[0] << " " << norms[1];
  EXPECT_TRUE(same_bits(clipped[0], clipped[1]));
}

TEST(Clip, RejectsNonF32AndNanMaxNorm) {
  Tensor d = Tensor::zeros(DType::F64, {3});
  EXPECT_THROW(clip_grad_norm(d, 1.0), Error);
  Tensor g = random_grads(5, 5);
  EXPECT_THROW(clip_grad_norm(g, std::nan("")), Error);
}

// The chunk sums restart at every segment start, so an arena split at segment boundaries (a
// pipeline's stages) yields, part after part, exactly the whole arena's list; and their sum is
// the squared norm within the rounding of a double sum.
TEST(GradNormPartials, StagesSplitAtSegmentsGiveTheWholeListBitwise) {
  const int64_t n = 70000;
  Tensor g = Tensor::empty(DType::F32, {n});
  Rng r(3);
  for (int64_t i = 0; i < n; ++i) g.data<float>()[i] = static_cast<float>(r.normal());
  const std::vector<int64_t> starts = {0, 100, 20000, 20001, 52000};
  const std::vector<double> whole = grad_norm_partials(g, starts);
  // Chunks: [0,100) [100,16484) [16484,20000) [20000,20001) [20001,36385) [36385,52000)
  // [52000,68384) [68384,70000).
  ASSERT_EQ(whole.size(), 8u);
  double sum = 0, ref = 0, abs_sum = 0;
  for (double x : whole) sum += x;
  for (int64_t i = 0; i < n; ++i) {
    const double v = g.data<float>()[i];
    ref += v * v;
    abs_sum += v * v;
  }
  EXPECT_LE(std::fabs(sum - ref), 2 * test::gamma_n(static_cast<double>(n), 0x1p-53) * abs_sum);
  // Two "stages" split at segment 20000 and three split at 100 and 52000.
  for (const std::vector<int64_t>& cuts : {std::vector<int64_t>{20000}, {100, 52000}}) {
    std::vector<double> joined;
    int64_t begin = 0;
    std::vector<int64_t> bounds = cuts;
    bounds.push_back(n);
    for (int64_t end : bounds) {
      Tensor part = g.slice0(begin, end);
      std::vector<int64_t> local;
      for (int64_t s : starts)
        if (s >= begin && s < end) local.push_back(s - begin);
      const std::vector<double> p = grad_norm_partials(part, local);
      joined.insert(joined.end(), p.begin(), p.end());
      begin = end;
    }
    ASSERT_EQ(joined.size(), whole.size());
    for (size_t i = 0; i < whole.size(); ++i) EXPECT_EQ(joined[i], whole[i]) << i;
  }
  // clip_to_norm scales as clip_grad_norm does from the same norm.
  Tensor a = g.clone(), b = g.clone();
  const double norm = grad_norm(a);
  EXPECT_EQ(clip_grad_norm(a, 1.0), norm);
  EXPECT_EQ(clip_to_norm(b, norm, 1.0), norm);
  EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0);
}
