#include "autograd/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "autograd/rng.h"

namespace hone {

namespace {

double dot(const Tensor& y, const Tensor& r) {
  double s = 0;
  for (int64_t i = 0; i < y.numel(); ++i) s += y.data<double>()[i] * r.data<double>()[i];
  return s;
}

}  // namespace

double gradcheck(const GradcheckFn& fn, const std::vector<Var>& inputs, double eps, uint64_t seed,
                 std::string* worst) {
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].defined() && inputs[i].requires_grad() && inputs[i].dtype() != DType::F64)
      throw Error("gradcheck: input " + std::to_string(i) + " is " + dtype_name(inputs[i].dtype()) +
                  ", must be F64");
  for (Var v : inputs)  // Var is a shared handle: this zeroes the caller's gradient buffers
    if (v.has_grad()) v.grad().fill_zero();

  Tape tape;
  Var y = fn(&tape, inputs);
  if (y.dtype() != DType::F64) throw Error("gradcheck: output must be F64");
  if (!y.requires_grad()) throw Error("gradcheck: output does not require grad");
  Tensor r = Tensor::empty(DType::F64, y.shape());
  Rng rng(seed);
  for (int64_t i = 0; i < r.numel(); ++i) r.data<double>()[i] = rng.normal();
  tape.backward_from(y, r);

  double max_err = 0;
  for (size_t k = 0; k < inputs.size(); ++k) {
    Var x = inputs[k];
    if (!x.defined() || !x.requires_grad()) continue;
    Tensor analytic = x.has_grad() ? x.grad().clone() : Tensor::zeros(DType::F64, x.shape());
    double* xv = x.value().data<double>();
    for (int64_t i = 0; i < x.value().numel(); ++i) {
      const double orig = xv[i];
      xv[i] = orig + eps;
      const double fp = dot(fn(nullptr, inputs).value(), r);
      xv[i] = orig - eps;
      const double fm = dot(fn(nullptr, inputs).value(), r);
      xv[i] = orig;
      const double num = (fp - fm) / (2 * eps), ana = analytic.data<double>()[i];
      const double err = std::abs(ana - num) / std::max(1.0, std::abs(num));
      if (err > max_err || std::isnan(err)) {
        max_err = std::isnan(err) ? INFINITY : err;
        if (worst) {
          std::ostringstream o;
          o << "input " << k << " element " << i << ": analytic " << ana << ", numeric " << num;
          *worst = o.str();
        }
      }
    }
  }
  return max_err;
}

}  // namespace hone
