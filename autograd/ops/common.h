// Helpers shared by the op families (internal to autograd/ops): checks that name the op and
// the shapes, and the dispatch from a compute dtype to the float/double kernel templates.
#pragma once

#include <string>
#include <type_traits>

#include "autograd/error.h"
#include "autograd/tape.h"

namespace hone::ops_detail {

[[noreturn]] inline void fail(const char* op, const std::string& msg) {
  throw Error(std::string(op) + ": " + msg);
}

inline std::string desc(const char* name, const Var& v) {
  return std::string(name) + " " + shape_str(v.shape()) + " " + dtype_name(v.dtype());
}

inline void require_defined(const char* op, const char* name, const Var& v) {
  if (!v.defined()) fail(op, std::string(name) + " is undefined");
}

// An activation input: must be F32 or F64 (the compute dtype of the op).
inline void require_compute(const char* op, const char* name, const Var& v) {
  require_defined(op, name, v);
  if (!is_float_compute(v.dtype()))
    fail(op, desc(name, v) + ": expected F32 or F64 (the compute dtype)");
}

// A weight: with requires_grad it must have the compute dtype; frozen it may be
// F32/F64/BF16/F16 or quantized Q8_0/Q4_0.
inline void require_weight(const char* op, const char* name, const Var& w, DType compute) {
  require_defined(op, name, w);
  DType d = w.dtype();
  if (w.requires_grad() && d != compute)
    fail(op, desc(name, w) + " requires grad, so it must have the compute dtype " +
                 dtype_name(compute));
  if (d != DType::F32 && d != DType::F64 && d != DType::BF16 && d != DType::F16 && !is_quantized(d))
    fail(op, desc(name, w) + ": weights must be F32, F64, BF16, F16, Q8_0 or Q4_0");
}

inline void require_same(const char* op, const Var& a, const Var& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype())
    fail(op, "operands differ: " + desc("a", a) + " vs " + desc("b", b));
}

// Calls f(T{}) with T = float for F32 and double for F64.
template <class F>
decltype(auto) dispatch(DType t, F&& f) {
  if (t == DType::F64) return f(double{});
  return f(float{});
}

// A frozen parameter in the compute dtype: itself when it already is, else a converted copy
// (used for small vectors such as norm weights and biases).
inline Tensor as_compute(const Tensor& v, DType compute) {
  return v.dtype() == compute ? v : v.to(compute);
}

}  // namespace hone::ops_detail
