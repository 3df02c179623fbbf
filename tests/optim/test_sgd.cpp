#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "autograd/rng.h"
#include "optim/adamw.h"
#include "optim/optimizer.h"
#include "optim/sgd.h"
#include "rounding.h"

using namespace hone;

namespace {

// torch.optim.SGD's single-tensor update written out in f64, element by element, with a running
// bound on how far the f32 optimizer can be from it (to first order in u): every f32 operation
// rounds once (u of its result), and so does each f64 setting the optimizer converts to f32
// (u of its term); errors already made carry through the update's linear map (wd, momentum,
// lr). Each line's γ_3 counts a term's roundings: its constant, its product, the add.
struct SgdReference {
  OptimizerConfig c;
  std::vector<double> p, b, ep, eb;  // values and bounds on |f32 − f64|
  int64_t t = 0;
  void step(const std::vector<double>& g, double lr) {
    const double g3 = test::gamma_n(3), wd = c.weight_decay, mom = c.momentum;
    const double keep = 1 - c.dampening;
    for (size_t i = 0; i < p.size(); ++i) {
      double d = g[i] + wd * p[i];
      double ed = wd * ep[i] + g3 * (std::abs(g[i]) + wd * std::abs(p[i]));
      if (mom != 0) {
        const double b_old = b[i];
        b[i] = t == 0 ? d : mom * b_old + keep * d;
        eb[i] = t == 0
                    ? ed
                    : mom * eb[i] + keep * ed + g3 * (mom * std::abs(b_old) + keep * std::abs(d));
        if (c.nesterov) {
          ed += mom * eb[i] + g3 * (std::abs(d) + mom * std::abs(b[i]));
          d += mom * b[i];
        } else {
          d = b[i];
          ed = eb[i];
        }
      }
      ep[i] += lr * ed + g3 * (std::abs(p[i]) + lr * std::abs(d));
      p[i] -= lr * d;
    }
    ++t;
  }
};

void expect_matches_reference(const OptimizerConfig& c) {
  const int64_t n = 1037;  // odd size: no vector-width luck
  Tensor p = Tensor::empty(DType::F32, {n}), g = Tensor::empty(DType::F32, {n});
  Rng rng(11);
  const std::vector<double> zeros(n, 0.0);
  SgdReference ref{c, zeros, zeros, zeros, zeros};
  for (int64_t i = 0; i < n; ++i) ref.p[i] = p.data<float>()[i] = static_cast<float>(rng.normal());
  SGD opt(p, g, c);
  std::vector<double> rg(n);
  for (int step = 1; step <= 7; ++step) {
    const double lr = c.lr * (1.0 - 0.1 * step);  // a schedule changes lr between steps
    for (int64_t i = 0; i < n; ++i) rg[i] = g.data<float>()[i] = static_cast<float>(rng.normal());
    opt.step(lr);
    ref.step(rg, lr);
  }
  EXPECT_EQ(opt.steps_taken(), 7);
  test::BoundCheck cp, cb;
  for (int64_t i = 0; i < n; ++i) {
    cp.add(p.data<float>()[i], ref.p[i], ref.ep[i], i);
    if (c.momentum != 0) cb.add(opt.momentum_buffer().data<float>()[i], ref.b[i], ref.eb[i], i);
  }
  EXPECT_LE(cp.worst(), 1.0) << "params: " << cp.where();
  EXPECT_LE(cb.worst(), 1.0) << "momentum buffer: " << cb.where();
}

OptimizerConfig sgd_config(double momentum, double wd, bool nesterov, double dampening = 0) {
  OptimizerConfig c;
  c.lr = 0.05;
  c.momentum = momentum;
  c.weight_decay = wd;
  c.nesterov = nesterov;
  c.dampening = dampening;
  return c;
}

}  // namespace

TEST(SGD, PlainMatchesReference) {
  expect_matches_reference(sgd_config(0, 0, false));
}
TEST(SGD, WeightDecayMatchesReference) {
  expect_matches_reference(sgd_config(0, 0.1, false));
}
TEST(SGD, MomentumMatchesReference) {
  expect_matches_reference(sgd_config(0.9, 0, false));
}
TEST(SGD, MomentumDampeningWeightDecayMatchesReference) {
  expect_matches_reference(sgd_config(0.8, 0.05, false, 0.3));
}
TEST(SGD, NesterovMatchesReference) {
  expect_matches_reference(sgd_config(0.9, 0.01, true));
}

// First update with momentum: the buffer is the gradient itself, not (1 - dampening)·g.
TEST(SGD, FirstMomentumStepUsesRawGradient) {
  Tensor p = Tensor::from_f32({1.0f}, {1}), g = Tensor::from_f32({2.0f}, {1});
  SGD opt(p, g, sgd_config(0.9, 0, false, 0.5));
  opt.step(0.25);
  EXPECT_EQ(opt.momentum_buffer().data<float>()[0], 2.0f);
  EXPECT_EQ(p.data<float>()[0], 0.5f);  // 1 - 0.25·2
  opt.step(0.25);                       // b = 0.9·2 + 0.5·2 = 2.8
  EXPECT_FLOAT_EQ(opt.momentum_buffer().data<float>()[0], 2.8f);
  EXPECT_FLOAT_EQ(p.data<float>()[0], 0.5f - 0.25f * 2.8f);
}

TEST(SGD, ReadsGradientsWithoutWritingThem) {
  Tensor p = Tensor::from_f32({1, 2, 3}, {3}), g = Tensor::from_f32({0.5f, -1, 2}, {3});
  SGD opt(p, g, sgd_config(0.9, 0.1, true));
  opt.step(0.1);
  EXPECT_EQ(g.data<float>()[0], 0.5f);
  EXPECT_EQ(g.data<float>()[1], -1.0f);
  EXPECT_EQ(g.data<float>()[2], 2.0f);
}

TEST(SGD, RejectsMismatchedArenasAndBadNesterov) {
  Tensor p = Tensor::zeros(DType::F32, {4}), g = Tensor::zeros(DType::F32, {5});
  EXPECT_THROW(SGD(p, g, OptimizerConfig{}), Error);
  Tensor g4 = Tensor::zeros(DType::F32, {4});
  EXPECT_THROW(SGD(p, g4, sgd_config(0, 0, true)), Error);         // nesterov without momentum
  EXPECT_THROW(SGD(p, g4, sgd_config(0.9, 0, true, 0.1)), Error);  // nesterov with dampening
}

TEST(MakeOptimizer, BuildsByNameAndRejectsBadConfigs) {
  Tensor p = Tensor::zeros(DType::F32, {4}), g = Tensor::zeros(DType::F32, {4});
  EXPECT_STREQ(make_optimizer("adamw", p, g, OptimizerConfig{})->name(), "adamw");
  EXPECT_STREQ(make_optimizer("sgd", p, g, OptimizerConfig{})->name(), "sgd");
  try {
    make_optimizer("adam", p, g, OptimizerConfig{});
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown name 'adam'"), std::string::npos) << e.what();
  }
  OptimizerConfig bad;
  bad.beta1 = 1.0;
  bad.eps = -1;
  try {
    make_optimizer("adamw", p, g, bad);
    FAIL() << "no throw";
  } catch (const Error& e) {  // every problem reported at once
    const std::string w = e.what();
    EXPECT_NE(w.find("beta1"), std::string::npos) << w;
    EXPECT_NE(w.find("eps"), std::string::npos) << w;
  }
  bad = OptimizerConfig{};
  bad.momentum = -0.5;
  EXPECT_THROW(make_optimizer("sgd", p, g, bad), Error);
}

// The factory's AdamW is the same optimizer as AdamW built directly from AdamWConfig.
TEST(MakeOptimizer, AdamWFromOptimizerConfigMatchesDirectConstruction) {
  const int64_t n = 257;
  Tensor p1 = Tensor::empty(DType::F32, {n}), g = Tensor::empty(DType::F32, {n});
  Rng rng(5);
  for (int64_t i = 0; i < n; ++i) {
    p1.data<float>()[i] = static_cast<float>(rng.normal());
    g.data<float>()[i] = static_cast<float>(rng.normal());
  }
  Tensor p2 = p1.clone();
  OptimizerConfig oc;
  oc.beta1 = 0.8;
  oc.beta2 = 0.95;
  oc.eps = 1e-6;
  oc.weight_decay = 0.1;
  AdamWConfig ac;
  ac.beta1 = 0.8;
  ac.beta2 = 0.95;
  ac.eps = 1e-6;
  ac.weight_decay = 0.1;
  auto a = make_optimizer("adamw", p1, g, oc);
  AdamW b(p2, g, ac);
  for (int s = 0; s < 3; ++s) {
    a->step(1e-2);
    b.step(1e-2);
  }
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(p1.data<float>()[i], p2.data<float>()[i]) << i;
}
