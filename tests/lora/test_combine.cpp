// Combining adapters (lora/combine.h) against each method's definition computed plainly here in
// f64 on small random factors: PEFT's cat, linear, ties (sign election, trimming by magnitude),
// magnitude_prune, dare_linear / dare_ties (the documented mask stream for a fixed seed), the svd
// forms (against a delta with a known SVD), the checks, and adapters of other ranks / targets.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "autograd/rng.h"
#include "lora/combine.h"
#include "rounding.h"

using namespace hone;

namespace {

using Vec = std::vector<double>;

Tensor random_tensor(Shape shape, uint64_t seed, double scale = 1.0) {
  Rng r(seed);
  Tensor t = Tensor::empty(DType::F32, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data<float>()[i] = static_cast<float>(r.normal() * scale);
  return t;
}

Vec values(const Tensor& t) {
  Vec v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[i] = t.item(i);
  return v;
}

const std::string kQ0 = "model.layers.0.self_attn.q_proj";
const std::string kQ1 = "model.layers.1.self_attn.q_proj";
const std::string kV1 = "model.layers.1.self_attn.v_proj";

// An in-memory adapter: rank r, alpha, weight w, random factors for each module (out, in).
MergeAdapter adapter(const std::string& name, int64_t r, double alpha, double w, uint64_t seed,
                     const std::vector<std::string>& modules = {kQ0}, int64_t out = 6,
                     int64_t in = 5, std::vector<std::string> targets = {"q_proj"},
                     std::vector<int> layers = {}) {
  MergeAdapter ad;
  ad.dir = name;
  ad.file = name + "/adapter_model.safetensors";
  ad.config.rank = r;
  ad.config.alpha = alpha;
  ad.config.targets = std::move(targets);
  ad.config.layers = std::move(layers);
  ad.weight = w;
  for (size_t i = 0; i < modules.size(); ++i)
    ad.modules[modules[i]] = {random_tensor({r, in}, seed * 100 + 2 * i),
                              random_tensor({out, r}, seed * 100 + 2 * i + 1)};
  return ad;
}

// (rows, k) · (k, cols), row-major.
Vec matmul(const Vec& b, const Vec& a, int64_t rows, int64_t k, int64_t cols) {
  Vec m(static_cast<size_t>(rows * cols), 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      for (int64_t x = 0; x < k; ++x) m[i * cols + j] += b[i * k + x] * a[x * cols + j];
  return m;
}

Vec product(const LoraFactors& f) {
  return matmul(values(f.b), values(f.a), f.b.dim(0), f.b.dim(1), f.a.dim(1));
}

// Every element within `rel` of max|want| (+ one f32 rounding of each value).
void expect_close(const Vec& got, const Vec& want, double rel, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double scale = 0;
  for (double v : want) scale = std::max(scale, std::abs(v));
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], rel * scale + test::kUnitF32 * std::abs(want[i]))
        << what << " [" << i << "]";
}

// ---- The definitions, written out plainly ------------------------------------------------------

// Magnitude trimming: keep the ⌊d·n⌋ entries of largest |value|; an entry is kept when fewer than
// k entries beat it (larger magnitude, or equal magnitude and a lower index).
Vec trim(const Vec& t, double d) {
  if (d >= 1) return t;
  const size_t k = static_cast<size_t>(d * static_cast<double>(t.size()));
  Vec out(t.size(), 0.0);
  for (size_t i = 0; i < t.size(); ++i) {
    size_t beaten_by = 0;
    for (size_t j = 0; j < t.size(); ++j)
      if (std::abs(t[j]) > std::abs(t[i]) || (std::abs(t[j]) == std::abs(t[i]) && j < i))
        ++beaten_by;
    if (beaten_by < k) out[i] = t[i];
  }
  return out;
}

// DARE's documented mask: Rng(seed ^ FNV-1a-64("<module>/<tag>/<index>")), one uniform() per
// entry in row-major order, kept iff < d, kept entries divided by d.
Vec dare(const Vec& t, double d, uint64_t seed, const std::string& module, const std::string& tag,
         int index) {
  if (d >= 1) return t;
  uint64_t h = 14695981039346656037ull;
  for (char c : module + "/" + tag + "/" + std::to_string(index)) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  Rng rng(seed ^ h);
  Vec out(t.size(), 0.0);
  for (size_t i = 0; i < t.size(); ++i)
    if (rng.uniform() < d) out[i] = t[i] / d;
  return out;
}

Vec weighted_sum(const std::vector<Vec>& ts, const Vec& c) {
  Vec out(ts[0].size(), 0.0);
  for (size_t i = 0; i < ts.size(); ++i)
    for (size_t e = 0; e < out.size(); ++e) out[e] += c[i] * ts[i][e];
  return out;
}

double sgn(double v) {
  return v > 0 ? 1 : (v < 0 ? -1 : 0);
}

// TIES on already-trimmed tensors: elect the sign of Σ_i t_i (total) or Σ_i sign(t_i)
// (frequency), ≥ 0 -> +1; average c_i·t_i over the i whose sign agrees.
Vec ties_merge(const std::vector<Vec>& ts, const Vec& c, bool frequency = false) {
  Vec out(ts[0].size(), 0.0);
  for (size_t e = 0; e < out.size(); ++e) {
    double vote = 0;
    for (const Vec& t : ts) vote += frequency ? sgn(t[e]) : t[e];
    const double elected = vote >= 0 ? 1 : -1;
    double sum = 0;
    int n = 0;
    for (size_t i = 0; i < ts.size(); ++i)
      if (sgn(ts[i][e]) == elected) {
        sum += c[i] * ts[i][e];
        ++n;
      }
    out[e] = n ? sum / n : 0.0;
  }
  return out;
}

// The factor methods' weights: √|w·s|·sign(w·s) for A, √|w·s| for B.
std::pair<Vec, Vec> factor_weights(const std::vector<MergeAdapter>& ads) {
  Vec ca, cb;
  for (const MergeAdapter& ad : ads) {
    const double c = ad.weight * ad.config.scaling();
    ca.push_back(std::sqrt(std::abs(c)) * (c >= 0 ? 1 : -1));
    cb.push_back(std::sqrt(std::abs(c)));
  }
  return {ca, cb};
}

std::vector<Vec> factor_values(const std::vector<MergeAdapter>& ads, const std::string& module,
                               char which) {
  std::vector<Vec> out;
  for (const MergeAdapter& ad : ads) {
    const LoraFactors& f = ad.modules.at(module);
    out.push_back(values(which == 'A' ? f.a : f.b));
  }
  return out;
}

CombineOptions options(CombineMethod m, std::optional<double> density = std::nullopt,
                       uint64_t seed = 0) {
  CombineOptions o;
  o.method = m;
  o.density = density;
  o.seed = seed;
  return o;
}

LoraFactors run(const std::vector<MergeAdapter>& ads, const CombineOptions& o,
                const std::string& module = kQ0) {
  return combine_module(module, ads, o, combined_rank(ads, o));
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// ---- The factor methods --------------------------------------------------------------------

TEST(Combine, CatStacksScaledAAndBAndItsProductIsTheWeightedSum) {
  // Ranks 2 and 3, scalings 1.5 and 4/√3 (rsLoRA), one negative weight.
  MergeAdapter a1 = adapter("a1", 2, 3.0, 0.7, 1), a2 = adapter("a2", 3, 4.0, -1.3, 2);
  a2.config.rslora = true;
  const std::vector<MergeAdapter> ads = {a1, a2};
  const LoraFactors f = run(ads, options(CombineMethod::kCat));
  ASSERT_EQ(f.a.shape(), (Shape{5, 5}));
  ASSERT_EQ(f.b.shape(), (Shape{6, 5}));
  // Rows 0-1 of A are w1·s1·A1, rows 2-4 w2·s2·A2 (each rounded once to f32); B's columns are B1,
  // B2 unchanged.
  const Vec a = values(f.a), b = values(f.b);
  for (int k = 0; k < 5; ++k)
    for (int j = 0; j < 5; ++j) {
      const MergeAdapter& src = k < 2 ? a1 : a2;
      const int kk = k < 2 ? k : k - 2;
      const double want = static_cast<float>(src.weight * src.config.scaling() *
                                             src.modules.at(kQ0).a.item(kk * 5 + j));
      EXPECT_EQ(a[k * 5 + j], want);
    }
  for (int i = 0; i < 6; ++i)
    for (int k = 0; k < 5; ++k)
      EXPECT_EQ(b[i * 5 + k], k < 2 ? a1.modules.at(kQ0).b.item(i * 2 + k)
                                    : a2.modules.at(kQ0).b.item(i * 3 + k - 2));
  // B·A = Σ w_i·s_i·B_i·A_i.
  Vec want = matmul(values(a1.modules.at(kQ0).b), values(a1.modules.at(kQ0).a), 6, 2, 5);
  const Vec d2 = matmul(values(a2.modules.at(kQ0).b), values(a2.modules.at(kQ0).a), 6, 3, 5);
  for (size_t i = 0; i < want.size(); ++i)
    want[i] = a1.weight * a1.config.scaling() * want[i] + a2.weight * a2.config.scaling() * d2[i];
  expect_close(product(f), want, 1e-6, "cat B·A");
}

TEST(Combine, LinearCombinesTheFactorsWithSquareRootWeights) {
  const std::vector<MergeAdapter> ads = {
      adapter("a1", 3, 6.0, 0.8, 3), adapter("a2", 3, 1.5, -0.4, 4), adapter("a3", 3, 3.0, 1.1, 5)};
  const LoraFactors f = run(ads, options(CombineMethod::kLinear));
  const auto [ca, cb] = factor_weights(ads);
  expect_close(values(f.a), weighted_sum(factor_values(ads, kQ0, 'A'), ca), 1e-15, "A");
  expect_close(values(f.b), weighted_sum(factor_values(ads, kQ0, 'B'), cb), 1e-15, "B");
  // One adapter: B·A is exactly w·s·B·A, whatever the method asked.
  const std::vector<MergeAdapter> one = {ads[1]};
  for (CombineMethod m : {CombineMethod::kLinear, CombineMethod::kTies, CombineMethod::kSvd}) {
    CombineOptions o = options(m, m == CombineMethod::kTies ? std::optional(0.3) : std::nullopt);
    const LoraFactors g = run(one, o);
    Vec want = matmul(values(ads[1].modules.at(kQ0).b), values(ads[1].modules.at(kQ0).a), 6, 3, 5);
    for (double& v : want) v *= ads[1].weight * ads[1].config.scaling();
    expect_close(product(g), want, 1e-6, combine_method_name(m));
  }
}

TEST(Combine, TiesTrimsByMagnitudeElectsTheSignAndAveragesTheAgreeingEntries) {
  // A hand example first (1x4 factors, three adapters, s = 1, weights 1): density 0.5 keeps the
  // two largest |values| of each; column 0: trimmed values 5, -4, -3 -> total -2 elects "-",
  // mean of -4 and -3 = -3.5 (frequency would also elect "-"); column 1: 0, 0, 2 -> 2; column 2:
  // 1 was trimmed from A1 (|1| < |5|, |-2|), so -2, 6, 0 -> total 4 elects "+", 6; column 3: all
  // trimmed -> 0. B is (2, 1) = [1, 1] in each: the tie goes to the lower index, so [1, 0] is
  // kept, and column 1 elects "+" with no entry agreeing -> 0.
  auto set = [](MergeAdapter& ad, std::vector<float> a) {
    ad.modules[kQ0] = {Tensor::empty(DType::F32, {1, 4}), Tensor::empty(DType::F32, {2, 1})};
    for (int i = 0; i < 4; ++i) ad.modules[kQ0].a.data<float>()[i] = a[i];
    ad.modules[kQ0].b.data<float>()[0] = ad.modules[kQ0].b.data<float>()[1] = 1.0f;
  };
  std::vector<MergeAdapter> hand = {adapter("h1", 1, 1, 1, 1), adapter("h2", 1, 1, 1, 2),
                                    adapter("h3", 1, 1, 1, 3)};
  set(hand[0], {5, 0.5f, -2, 1});  // keeps 5, -2
  set(hand[1], {-4, 0, 6, 0.1f});  // keeps -4, 6
  set(hand[2], {-3, 2, 0, 0});     // keeps -3, 2
  const LoraFactors h = run(hand, options(CombineMethod::kTies, 0.5));
  const Vec ha = values(h.a);
  EXPECT_EQ(ha, (Vec{-3.5, 2, 6, 0}));
  EXPECT_EQ(values(h.b), (Vec{1, 0}));

  // Random factors, 3 adapters, against the plain definition, both sign methods.
  const std::vector<MergeAdapter> ads = {
      adapter("a1", 4, 8.0, 0.9, 6), adapter("a2", 4, 4.0, -0.5, 7), adapter("a3", 4, 2.0, 1.2, 8)};
  const auto [ca, cb] = factor_weights(ads);
  for (bool frequency : {false, true}) {
    CombineOptions o = options(CombineMethod::kTies, 0.6);
    o.majority = frequency ? MajoritySign::kFrequency : MajoritySign::kTotal;
    const LoraFactors f = run(ads, o);
    for (char which : {'A', 'B'}) {
      std::vector<Vec> trimmed;
      for (const Vec& t : factor_values(ads, kQ0, which)) trimmed.push_back(trim(t, 0.6));
      const Vec want = ties_merge(trimmed, which == 'A' ? ca : cb, frequency);
      expect_close(values(which == 'A' ? f.a : f.b), want, 1e-15,
                   std::string("ties ") + which + (frequency ? " frequency" : " total"));
    }
  }
}

TEST(Combine, MagnitudePruneTrimsThenAddsWeighted) {
  const std::vector<MergeAdapter> ads = {adapter("a1", 2, 4.0, 0.5, 9),
                                         adapter("a2", 2, 2.0, 2.0, 10)};
  const LoraFactors f = run(ads, options(CombineMethod::kMagnitudePrune, 0.35));
  const auto [ca, cb] = factor_weights(ads);
  for (char which : {'A', 'B'}) {
    std::vector<Vec> trimmed;
    for (const Vec& t : factor_values(ads, kQ0, which)) trimmed.push_back(trim(t, 0.35));
    expect_close(values(which == 'A' ? f.a : f.b), weighted_sum(trimmed, which == 'A' ? ca : cb),
                 1e-15, std::string("magnitude_prune ") + which);
  }
  // ⌊0.35·10⌋ = 3 of A1's 10 entries survive in A (A2's 3 others may overlap).
  int nonzero = 0;
  for (double v : trim(values(ads[0].modules.at(kQ0).a), 0.35)) nonzero += v != 0;
  EXPECT_EQ(nonzero, 3);
}

TEST(Combine, DareMasksFollowTheDocumentedStreamForAFixedSeed) {
  const std::vector<MergeAdapter> ads = {adapter("a1", 3, 6.0, 0.6, 11, {kQ0}, 9, 8),
                                         adapter("a2", 3, 3.0, 0.9, 12, {kQ0}, 9, 8)};
  const auto [ca, cb] = factor_weights(ads);
  for (uint64_t seed : {0ull, 1234ull}) {
    const LoraFactors lin = run(ads, options(CombineMethod::kDareLinear, 0.4, seed));
    const LoraFactors ties = run(ads, options(CombineMethod::kDareTies, 0.4, seed));
    for (char which : {'A', 'B'}) {
      const std::string tag = which == 'A' ? "lora_A" : "lora_B";
      std::vector<Vec> dropped;
      const std::vector<Vec> ts = factor_values(ads, kQ0, which);
      for (int i = 0; i < 2; ++i) dropped.push_back(dare(ts[i], 0.4, seed, kQ0, tag, i));
      const Vec& c = which == 'A' ? ca : cb;
      expect_close(values(which == 'A' ? lin.a : lin.b), weighted_sum(dropped, c), 1e-15,
                   "dare_linear " + tag);
      expect_close(values(which == 'A' ? ties.a : ties.b), ties_merge(dropped, c), 1e-15,
                   "dare_ties " + tag);
    }
  }
  // Reproducible, and the seed matters.
  const LoraFactors x = run(ads, options(CombineMethod::kDareTies, 0.4, 7));
  const LoraFactors y = run(ads, options(CombineMethod::kDareTies, 0.4, 7));
  const LoraFactors z = run(ads, options(CombineMethod::kDareTies, 0.4, 8));
  EXPECT_EQ(values(x.a), values(y.a));
  EXPECT_NE(values(x.a), values(z.a));
  // The library's stream seed is the documented one.
  EXPECT_EQ(dare_stream_seed(5, kQ0, "lora_B", 1) ^ 5, dare_stream_seed(0, kQ0, "lora_B", 1));
  // density 1 prunes nothing: dare_linear is linear.
  EXPECT_EQ(values(run(ads, options(CombineMethod::kDareLinear, 1.0, 3)).a),
            values(run(ads, options(CombineMethod::kLinear)).a));
}

// ---- The svd methods ------------------------------------------------------------------------

// Orthonormal columns (n, k) by Gram-Schmidt on random vectors.
Vec orthonormal(int64_t n, int64_t k, uint64_t seed) {
  Rng r(seed);
  Vec q(static_cast<size_t>(n * k));
  for (int64_t j = 0; j < k; ++j) {
    for (int64_t i = 0; i < n; ++i) q[i * k + j] = r.normal();
    for (int pass = 0; pass < 2; ++pass)
      for (int64_t p = 0; p < j; ++p) {
        double dot = 0;
        for (int64_t i = 0; i < n; ++i) dot += q[i * k + j] * q[i * k + p];
        for (int64_t i = 0; i < n; ++i) q[i * k + j] -= dot * q[i * k + p];
      }
    double norm = 0;
    for (int64_t i = 0; i < n; ++i) norm += q[i * k + j] * q[i * k + j];
    for (int64_t i = 0; i < n; ++i) q[i * k + j] /= std::sqrt(norm);
  }
  return q;
}

TEST(Combine, SvdKeepsTheLargestSingularDirectionsOfTheWeightedDelta) {
  // Δ = Σ w_i·s_i·B_i·A_i with a known SVD: adapter 1 holds singular pairs 0,1 (values 5, 4),
  // adapter 2 pairs 2,3 (values 1.5, 0.5) of orthonormal U (8, 4), V (7, 4). Scalings 2 and 0.5
  // and weights 0.5 and 2 give w·s = 1 each, so Δ's singular values are 5, 4, 1.5, 0.5 (with s
  // applied twice, as PEFT's code does, they would be 10, 8, 0.75, 0.25: same order, other
  // values, and every result below would differ).
  const int64_t out = 8, in = 7;
  const Vec u = orthonormal(out, 4, 21), v = orthonormal(in, 4, 22);
  const double sv[4] = {5, 4, 1.5, 0.5};
  auto make = [&](const std::string& name, int first, double alpha, double w) {
    MergeAdapter ad = adapter(name, 2, alpha, w, 1);
    ad.modules[kQ0] = {Tensor::empty(DType::F32, {2, in}), Tensor::empty(DType::F32, {out, 2})};
    const double s = ad.config.scaling();
    for (int k = 0; k < 2; ++k) {
      for (int64_t j = 0; j < in; ++j)
        ad.modules[kQ0].a.data<float>()[k * in + j] = static_cast<float>(v[j * 4 + first + k]);
      for (int64_t i = 0; i < out; ++i)  // B carries σ/(s·w), so that w·s·B·A has σ
        ad.modules[kQ0].b.data<float>()[i * 2 + k] =
            static_cast<float>(u[i * 4 + first + k] * sv[first + k] / (s * w));
    }
    return ad;
  };
  const std::vector<MergeAdapter> ads = {make("a1", 0, 4.0, 0.5), make("a2", 2, 1.0, 2.0)};
  // The truncation to rank R is Σ_{k<R} σ_k·u_k·v_kᵀ, from the f32 factors' exact delta.
  auto want_rank = [&](int r) {
    Vec d(static_cast<size_t>(out * in), 0.0);
    for (int k = 0; k < r; ++k)
      for (int64_t i = 0; i < out; ++i)
        for (int64_t j = 0; j < in; ++j) d[i * in + j] += sv[k] * u[i * 4 + k] * v[j * 4 + k];
    return d;
  };
  // The f32 factors carry ~1e-7 relative error, so the comparison allows 1e-5 of max|Δ|.
  for (int r : {1, 2, 3, 4}) {
    CombineOptions o = options(CombineMethod::kSvd);
    o.svd_rank = r;
    const LoraFactors f = run(ads, o);
    ASSERT_EQ(f.a.shape(), (Shape{r, in}));
    ASSERT_EQ(f.b.shape(), (Shape{out, r}));
    expect_close(product(f), want_rank(r), 1e-5, "svd rank " + std::to_string(r));
  }
  // Default rank: the largest input rank (2). A rank beyond min(out, in) pads with zeros.
  expect_close(product(run(ads, options(CombineMethod::kSvd))), want_rank(2), 1e-5, "default");
  CombineOptions big = options(CombineMethod::kSvd);
  big.svd_rank = 9;
  const LoraFactors f9 = run(ads, big);
  EXPECT_EQ(f9.a.shape(), (Shape{9, in}));
  for (int64_t j = 0; j < in; ++j) EXPECT_EQ(f9.a.item(8 * in + j), 0.0);
  expect_close(product(f9), want_rank(4), 1e-5, "rank 9");
}

TEST(Combine, SvdFormsCombineTheDeltasWithTheTaskRule) {
  // At full rank the svd step is exact, so B·A is the task rule applied to τ_i = s_i·B_i·A_i with
  // weights w_i.
  const std::vector<MergeAdapter> ads = {adapter("a1", 2, 4.0, 0.7, 31),
                                         adapter("a2", 3, 3.0, -0.6, 32)};
  std::vector<Vec> deltas;
  Vec w;
  for (const MergeAdapter& ad : ads) {
    const LoraFactors& f = ad.modules.at(kQ0);
    Vec d = matmul(values(f.b), values(f.a), 6, ad.config.rank, 5);
    for (double& x : d) x *= ad.config.scaling();
    deltas.push_back(d);
    w.push_back(ad.weight);
  }
  auto full = [&](CombineMethod m, std::optional<double> density, uint64_t seed = 0) {
    CombineOptions o = options(m, density, seed);
    o.svd_rank = 5;  // min(out, in)
    return product(run(ads, o));
  };
  expect_close(full(CombineMethod::kSvd, {}), weighted_sum(deltas, w), 1e-6, "svd");
  std::vector<Vec> trimmed, dropped;
  for (int i = 0; i < 2; ++i) {
    trimmed.push_back(trim(deltas[i], 0.5));
    dropped.push_back(dare(deltas[i], 0.5, 99, kQ0, "delta", i));
  }
  expect_close(full(CombineMethod::kTiesSvd, 0.5), ties_merge(trimmed, w), 1e-6, "ties_svd");
  expect_close(full(CombineMethod::kMagnitudePruneSvd, 0.5), weighted_sum(trimmed, w), 1e-6,
               "magnitude_prune_svd");
  expect_close(full(CombineMethod::kDareLinearSvd, 0.5, 99), weighted_sum(dropped, w), 1e-6,
               "dare_linear_svd");
  expect_close(full(CombineMethod::kDareTiesSvd, 0.5, 99), ties_merge(dropped, w), 1e-6,
               "dare_ties_svd");
}

// ---- Checks, ranks and target sets
// ---------------------------------------------------------------

TEST(Combine, BadOptionsAndIncompatibleAdaptersNameTheFlagOrFolders) {
  const std::vector<MergeAdapter> mixed = {adapter("dir_r2", 2, 4, 1, 1),
                                           adapter("dir_r3", 3, 4, 1, 2)};
  std::string e = error_of([&] { combined_rank(mixed, options(CombineMethod::kLinear)); });
  EXPECT_NE(e.find("same rank"), std::string::npos) << e;
  EXPECT_NE(e.find("dir_r2"), std::string::npos) << e;
  EXPECT_NE(e.find("dir_r3"), std::string::npos) << e;
  e = error_of([&] { combined_rank(mixed, options(CombineMethod::kTies, 0.5)); });
  EXPECT_NE(e.find("same rank"), std::string::npos) << e;
  // cat and svd take different ranks.
  EXPECT_EQ(combined_rank(mixed, options(CombineMethod::kCat)), 5);
  EXPECT_EQ(combined_rank(mixed, options(CombineMethod::kSvd)), 3);
  EXPECT_EQ(combined_rank(mixed, options(CombineMethod::kDareTiesSvd, 0.5)), 3);

  const std::vector<MergeAdapter> same = {adapter("a", 2, 4, 1, 1), adapter("b", 2, 4, 1, 2)};
  e = error_of([&] { combined_rank(same, options(CombineMethod::kTies)); });
  EXPECT_NE(e.find("--density"), std::string::npos) << e;
  EXPECT_NE(e.find("needs"), std::string::npos) << e;
  e = error_of([&] { combined_rank(same, options(CombineMethod::kCat, 0.5)); });
  EXPECT_NE(e.find("--density"), std::string::npos) << e;
  for (double d : {0.0, -0.1, 1.5, std::nan("")}) {
    e = error_of([&] { combined_rank(same, options(CombineMethod::kDareTies, d)); });
    EXPECT_NE(e.find("--density: must be in (0, 1]"), std::string::npos) << d << ": " << e;
  }
  CombineOptions o = options(CombineMethod::kLinear);
  o.svd_rank = 4;
  e = error_of([&] { combined_rank(same, o); });
  EXPECT_NE(e.find("--svd-rank"), std::string::npos) << e;
  e = error_of([&] { parse_combine_method("tie"); });
  EXPECT_NE(e.find("--method"), std::string::npos) << e;
  EXPECT_NE(e.find("dare_ties"), std::string::npos) << e;
  EXPECT_EQ(parse_combine_method("magnitude_prune_svd"), CombineMethod::kMagnitudePruneSvd);
  for (const char* bad : {"0", "1.01", "x", "", "0.5x", "nan"})
    EXPECT_NE(error_of([&] { parse_density(bad); }).find("--density"), std::string::npos) << bad;
  EXPECT_EQ(parse_density("1"), 1.0);
  EXPECT_NE(error_of([&] { parse_majority_sign("most"); }).find("--majority-sign"),
            std::string::npos);

  // The same module with another (out, in) in two adapters: two different base models.
  const std::vector<MergeAdapter> other = {adapter("a", 2, 4, 1, 1, {kQ0}, 6, 5),
                                           adapter("b", 2, 4, 1, 2, {kQ0}, 6, 7)};
  e = error_of([&] { combined_rank(other, options(CombineMethod::kCat)); });
  EXPECT_NE(e.find("b/adapter_model.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("a/adapter_model.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find(kQ0), std::string::npos) << e;
}

TEST(Combine, DifferentTargetSetsUnionAndAModuleOfOneAdapterKeepsItsOwnDelta) {
  // a1: q_proj on every layer (2 layers), rank 2; a2: v_proj on layer 1 only, rank 3.
  const MergeAdapter a1 = adapter("a1", 2, 4.0, 0.5, 41, {kQ0, kQ1}, 6, 5, {"q_proj"});
  const MergeAdapter a2 = adapter("a2", 3, 3.0, 2.0, 42, {kV1}, 4, 5, {"v_proj"}, {1});
  const std::vector<MergeAdapter> ads = {a1, a2};
  const CombinedAdapter c = combine_adapters(ads, options(CombineMethod::kCat), 0);
  EXPECT_EQ(c.config.rank, 5);
  EXPECT_EQ(c.config.alpha, 5.0);
  EXPECT_FALSE(c.config.rslora);
  EXPECT_EQ(c.config.targets, (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_TRUE(c.config.layers.empty());  // a1 adapts every layer
  // q on layers 0, 1 and v on layers 0, 1: v on layer 0 had no adapter and is zero.
  ASSERT_EQ(c.modules.size(), 4u);
  const LoraFactors& v0 = c.modules.at("model.layers.0.self_attn.v_proj");
  EXPECT_EQ(v0.b.shape(), (Shape{4, 5}));
  for (double x : product(v0)) EXPECT_EQ(x, 0.0);
  // Each adapted module's delta is its one adapter's w·s·B·A.
  for (const auto& [module, ad] : std::vector<std::pair<std::string, const MergeAdapter*>>{
           {kQ0, &a1}, {kQ1, &a1}, {kV1, &a2}}) {
    const LoraFactors& f = ad->modules.at(module);
    Vec want = matmul(values(f.b), values(f.a), f.b.dim(0), ad->config.rank, 5);
    for (double& x : want) x *= ad->weight * ad->config.scaling();
    expect_close(product(c.modules.at(module)), want, 1e-6, module);
  }
  // Both with explicit layers: the union of the lists.
  MergeAdapter b1 = adapter("b1", 2, 2, 1, 43, {kQ0}, 6, 5, {"q_proj"}, {0});
  MergeAdapter b2 = adapter("b2", 2, 2, 1, 44, {kV1}, 4, 5, {"v_proj"}, {1});
  const CombinedAdapter u = combine_adapters({b1, b2}, options(CombineMethod::kLinear), 0);
  EXPECT_EQ(u.config.layers, (std::vector<int>{0, 1}));
  EXPECT_EQ(u.config.rank, 2);
  EXPECT_EQ(u.modules.size(), 4u);
  // linear on a module only b1 has: √c·A and √c·B, so B·A = c·B1·A1.
  Vec want = product(b1.modules.at(kQ0));
  for (double& x : want) x *= b1.config.scaling();
  expect_close(product(u.modules.at(kQ0)), want, 1e-6, "linear, one adapter present");
}

}  // namespace
