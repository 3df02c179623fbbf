#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "autograd/rng.h"
#include "optim/optimizer.h"

using namespace hone;

namespace {

constexpr int64_t kN = 1037;

// Gradient for update `step`: a pure function of the step, so two runs see the same sequence.
void fill_grads(Tensor& g, int step) {
  Rng rng(1000 + static_cast<uint64_t>(step));
  for (int64_t i = 0; i < g.numel(); ++i) g.data<float>()[i] = static_cast<float>(rng.normal());
}

Tensor initial_params() {
  Tensor p = Tensor::empty(DType::F32, {kN});
  Rng rng(7);
  for (int64_t i = 0; i < kN; ++i) p.data<float>()[i] = static_cast<float>(rng.normal());
  return p;
}

OptimizerConfig config_for(const std::string& name) {
  OptimizerConfig c;
  c.weight_decay = 0.05;
  if (name == "sgd") {
    c.momentum = 0.9;
    c.nesterov = true;
  }
  return c;
}

double lr_for(int step) {
  return 1e-2 * (1.0 + 0.1 * step);
}

// Runs `total` updates without interruption, and again with a checkpoint after `cut` updates
// restored into a fresh optimizer (and fresh arenas, as after a process restart): the final
// parameters must be bitwise identical.
void expect_resume_is_bitwise(const std::string& name, int cut, int total) {
  Tensor p1 = initial_params(), g1 = Tensor::empty(DType::F32, {kN});
  auto a = make_optimizer(name, p1, g1, config_for(name));
  for (int s = 0; s < total; ++s) {
    fill_grads(g1, s);
    a->step(lr_for(s));
  }

  Tensor p2 = initial_params(), g2 = Tensor::empty(DType::F32, {kN});
  std::map<std::string, Tensor> saved;
  Tensor saved_params;
  {
    auto b = make_optimizer(name, p2, g2, config_for(name));
    for (int s = 0; s < cut; ++s) {
      fill_grads(g2, s);
      b->step(lr_for(s));
    }
    saved = b->state();
    saved_params = p2.clone();
    // The snapshot is a copy: further updates to the live optimizer must not change it.
    fill_grads(g2, 999);
    b->step(1.0);
  }
  Tensor p3 = saved_params.clone(), g3 = Tensor::empty(DType::F32, {kN});
  auto c = make_optimizer(name, p3, g3, config_for(name));
  c->load_state(saved);
  EXPECT_EQ(c->steps_taken(), cut);
  for (int s = cut; s < total; ++s) {
    fill_grads(g3, s);
    c->step(lr_for(s));
  }
  EXPECT_EQ(c->steps_taken(), a->steps_taken());
  ASSERT_EQ(std::memcmp(p1.raw(), p3.raw(), p1.nbytes()), 0) << name << ": params differ";
  const auto sa = a->state(), sc = c->state();
  ASSERT_EQ(sa.size(), sc.size());
  for (const auto& [k, t] : sa)
    EXPECT_EQ(std::memcmp(t.raw(), sc.at(k).raw(), t.nbytes()), 0) << name << ": " << k;
}

std::string error_of(Optimizer& o, const std::map<std::string, Tensor>& s) {
  try {
    o.load_state(s);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(OptimizerState, AdamWResumeIsBitwiseIdentical) {
  expect_resume_is_bitwise("adamw", 3, 8);
}
TEST(OptimizerState, SGDResumeIsBitwiseIdentical) {
  expect_resume_is_bitwise("sgd", 3, 8);
}
// Resuming from step 0 and from step 1 exercises the bias correction and the first-step
// momentum rule at the boundary.
TEST(OptimizerState, ResumeAtFirstSteps) {
  for (const char* name : {"adamw", "sgd"})
    for (int cut : {0, 1}) expect_resume_is_bitwise(name, cut, 4);
}

TEST(OptimizerState, NamesAndShapes) {
  Tensor p = Tensor::zeros(DType::F32, {3, 5}), g = Tensor::zeros(DType::F32, {3, 5});
  const auto adam = make_optimizer("adamw", p, g, OptimizerConfig{})->state();
  ASSERT_EQ(adam.size(), 3u);
  EXPECT_EQ(adam.at("exp_avg").shape(), Shape({3, 5}));
  EXPECT_EQ(adam.at("exp_avg_sq").dtype(), DType::F32);
  EXPECT_EQ(adam.at("step").dtype(), DType::I64);
  EXPECT_EQ(adam.at("step").numel(), 1);
  const auto sgd = make_optimizer("sgd", p, g, config_for("sgd"))->state();
  ASSERT_EQ(sgd.size(), 2u);
  EXPECT_EQ(sgd.at("momentum_buffer").shape(), Shape({3, 5}));
  // Without momentum there is no buffer, only the step.
  const auto plain = make_optimizer("sgd", p, g, OptimizerConfig{})->state();
  ASSERT_EQ(plain.size(), 1u);
  EXPECT_TRUE(plain.count("step"));
}

TEST(OptimizerState, StateBytesIsTheSumOfTheMoments) {
  Tensor p = Tensor::zeros(DType::F32, {kN}), g = Tensor::zeros(DType::F32, {kN});
  EXPECT_EQ(make_optimizer("adamw", p, g, OptimizerConfig{})->state_bytes(), 2 * 4 * kN);
  EXPECT_EQ(make_optimizer("sgd", p, g, config_for("sgd"))->state_bytes(), 4 * kN);
  EXPECT_EQ(make_optimizer("sgd", p, g, OptimizerConfig{})->state_bytes(), 0u);
}

TEST(OptimizerState, LoadStateRejectsMismatchWithNamedError) {
  Tensor p = Tensor::zeros(DType::F32, {kN}), g = Tensor::zeros(DType::F32, {kN});
  auto adam = make_optimizer("adamw", p, g, OptimizerConfig{});
  auto good = adam->state();

  auto wrong_shape = good;
  wrong_shape["exp_avg_sq"] = Tensor::zeros(DType::F32, {kN + 1});
  std::string w = error_of(*adam, wrong_shape);
  EXPECT_NE(w.find("AdamW.load_state: exp_avg_sq: shape [1038]"), std::string::npos) << w;
  EXPECT_NE(w.find("[1037]"), std::string::npos) << w;

  auto wrong_dtype = good;
  wrong_dtype["exp_avg"] = Tensor::zeros(DType::F64, {kN});
  w = error_of(*adam, wrong_dtype);
  EXPECT_NE(w.find("exp_avg: dtype must be F32"), std::string::npos) << w;

  auto missing = good;
  missing.erase("exp_avg");
  missing["extra"] = Tensor::zeros(DType::F32, {kN});
  w = error_of(*adam, missing);
  EXPECT_NE(w.find("missing 'exp_avg'"), std::string::npos) << w;
  EXPECT_NE(w.find("unexpected 'extra'"), std::string::npos) << w;

  auto bad_step = good;
  bad_step["step"] = Tensor::zeros(DType::F32, {1});
  w = error_of(*adam, bad_step);
  EXPECT_NE(w.find("step: must be a 1-element I64 tensor"), std::string::npos) << w;
  bad_step["step"] = step_tensor(-2);
  w = error_of(*adam, bad_step);
  EXPECT_NE(w.find("step: must be >= 0"), std::string::npos) << w;

  // An SGD checkpoint into AdamW (and back) is caught by its names.
  auto sgd = make_optimizer("sgd", p, g, config_for("sgd"));
  w = error_of(*adam, sgd->state());
  EXPECT_NE(w.find("unexpected 'momentum_buffer'"), std::string::npos) << w;
  w = error_of(*sgd, good);
  EXPECT_NE(w.find("SGD.load_state: missing 'momentum_buffer'"), std::string::npos) << w;

  auto sgd_shape = sgd->state();
  sgd_shape["momentum_buffer"] = Tensor::zeros(DType::F32, {kN, 1});
  w = error_of(*sgd, sgd_shape);
  EXPECT_NE(w.find("SGD.load_state: momentum_buffer: shape [1037, 1]"), std::string::npos) << w;

  // A rejected load leaves the optimizer as it was.
  EXPECT_EQ(adam->steps_taken(), 0);
}
