// The fused LoRA projection: f64 gradient checks for every input that takes gradients, and
// equality with the unfused chain of ops (linear, linear, linear, scale, add) it replaces, on
// odd sizes and with 16-bit and 4-bit frozen weights.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"

using namespace hone;

namespace {

Var randv(Shape shape, uint64_t seed, bool rg, DType dt = DType::F64, double sd = 1.0) {
  Tensor t = Tensor::empty(DType::F64, std::move(shape));
  Rng r(seed);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = sd * r.normal();
  return Var(dt == DType::F64 ? t : t.to(dt), rg);
}

double max_rel_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double m = 0, scale = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    m = std::max(m, std::abs(a.item(i) - b.item(i)));
    scale = std::max(scale, std::abs(b.item(i)));
  }
  return scale > 0 ? m / scale : m;
}

TEST(LoraLinear, Gradcheck) {
  for (bool bias : {false, true})
    for (bool separate_xa : {false, true})
      for (bool w_rg : {false, true})
        for (bool with_res : {false, true}) {
          SCOPED_TRACE(std::string(bias ? "bias" : "") + (separate_xa ? " xa" : "") +
                       (w_rg ? " W trains" : "") + (with_res ? " residual" : ""));
          Var x = randv({2, 3, 5}, 1, true);  // N = 6, in = 5
          Var xa = separate_xa ? randv({2, 3, 5}, 2, true) : x;
          Var w = randv({7, 5}, 3, w_rg);
          Var b = bias ? randv({7}, 4, false) : Var();
          Var a = randv({3, 5}, 5, true);
          Var bm = randv({7, 3}, 6, true);
          Var res = randv({2, 3, 7}, 7, true);
          std::vector<Var> in = {x, w, a, bm, res};
          if (separate_xa) in.push_back(xa);
          auto fn = [&](Tape* t, const std::vector<Var>& v) {
            return lora_linear(t, v[0], v[1], b, separate_xa ? v[5] : v[0], v[2], v[3], 0.75,
                               with_res ? v[4] : Var());
          };
          std::string where;
          EXPECT_LT(gradcheck(fn, in, 1e-6, 7, &where), 1e-6) << where;
        }
}

TEST(LoraLinear, EqualsTheUnfusedChain) {
  struct Case {
    int64_t N, out, in, r;
  };
  for (Case c : {Case{1, 3, 32, 1}, Case{7, 33, 64, 3}, Case{65, 129, 96, 16}})
    for (DType wd : {DType::F32, DType::BF16, DType::Q4_0}) {
      SCOPED_TRACE(std::to_string(c.N) + "x" + std::to_string(c.out) + "x" + std::to_string(c.in) +
                   " " + dtype_name(wd));
      Var w = randv({c.out, c.in}, 11, false, wd, 0.1);
      Var b = randv({c.out}, 12, false, DType::F32);
      Var a1 = randv({c.r, c.in}, 13, true, DType::F32, 0.2);
      Var b1 = randv({c.out, c.r}, 14, true, DType::F32, 0.2);
      Var a2(a1.value().clone(), true), b2(b1.value().clone(), true);
      Var x1 = randv({c.N, c.in}, 15, true, DType::F32), x2(x1.value().clone(), true);
      Var r1 = randv({c.N, c.out}, 17, true, DType::F32), r2(r1.value().clone(), true);
      Tensor dy = randv({c.N, c.out}, 16, false, DType::F32).value();

      Tape t1;
      Var y1 = lora_linear(&t1, x1, w, b, x1, a1, b1, 2.0, r1);
      t1.backward_from(y1, dy);
      Tape t2;
      Var y2 = add(
          &t2, r2,
          add(&t2, linear(&t2, x2, w, b), scale(&t2, linear(&t2, linear(&t2, x2, a2), b2), 2.0)));
      t2.backward_from(y2, dy);
      EXPECT_LT(max_rel_diff(r1.grad(), r2.grad()), 1e-7);
      EXPECT_LT(max_rel_diff(y1.value(), y2.value()), 1e-6);
      EXPECT_LT(max_rel_diff(x1.grad(), x2.grad()), 1e-6);
      EXPECT_LT(max_rel_diff(a1.grad(), a2.grad()), 1e-6);
      EXPECT_LT(max_rel_diff(b1.grad(), b2.grad()), 1e-6);
      EXPECT_FALSE(w.has_grad());
    }
}

TEST(LoraLinear, ShapeErrorsNameTheOp) {
  Var x = randv({4, 5}, 1, true, DType::F32), w = randv({7, 5}, 2, false, DType::F32);
  Var a = randv({3, 5}, 3, true, DType::F32), bm = randv({7, 4}, 4, true, DType::F32);
  try {
    lora_linear(nullptr, x, w, Var(), x, a, bm, 1.0);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lora_linear"), std::string::npos) << e.what();
  }
  Var xa = randv({4, 6}, 5, true, DType::F32);
  EXPECT_THROW(lora_linear(nullptr, x, w, Var(), xa, a, randv({7, 3}, 6, true, DType::F32), 1.0),
               Error);
}

}  // namespace
