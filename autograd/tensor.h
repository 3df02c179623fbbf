// A dense row-major tensor: dtype, shape and a view into a shared buffer.
// The buffer may be owned memory or a memory-mapped file (kept alive by `owner`).
// Block dtypes (Q8_0, Q4_0) store 32 consecutive values per block, so their last dimension must be
// a multiple of 32; numel() counts values, nbytes() the blocks' bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "autograd/dtype.h"
#include "autograd/error.h"

namespace hone {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  // "[2, 3]"
int64_t shape_numel(const Shape& s);

class Tensor {
 public:
  Tensor() = default;

  static Tensor empty(DType t, Shape shape);  // uninitialised, 64-byte aligned
  static Tensor zeros(DType t, Shape shape);
  // Wraps memory owned elsewhere (e.g. an mmap); `owner` keeps it alive.
  static Tensor external(DType t, Shape shape, void* data, std::shared_ptr<void> owner);
  static Tensor from_f32(const std::vector<float>& v, Shape shape);

  bool defined() const { return dtype_set_; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const;  // negative i counts from the end
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return dtype_nbytes(dtype_, numel_); }

  void* raw() { return data_; }
  const void* raw() const { return data_; }
  template <class T>
  T* data() {
    check_type<T>();
    return static_cast<T*>(data_);
  }
  template <class T>
  const T* data() const {
    check_type<T>();
    return static_cast<const T*>(data_);
  }

  // Same storage, new shape (numel must match).
  Tensor view(Shape shape) const;
  // Rows [begin, end) along dim 0, sharing storage.
  Tensor slice0(int64_t begin, int64_t end) const;
  Tensor clone() const;
  // Converting copy (float and block types; same dtype gives a clone). To Q8_0/Q4_0 quantizes.
  Tensor to(DType t) const;
  void fill_zero();
  // Element i as double, whatever the dtype (slow; for tests and inspection).
  double item(int64_t i = 0) const;

 private:
  template <class T>
  void check_type() const;

  DType dtype_ = DType::F32;
  bool dtype_set_ = false;
  Shape shape_;
  int64_t numel_ = 0;
  void* data_ = nullptr;
  std::shared_ptr<void> owner_;
};

template <class T>
void Tensor::check_type() const {
  DType want;
  if constexpr (std::is_same_v<T, float>)
    want = DType::F32;
  else if constexpr (std::is_same_v<T, double>)
    want = DType::F64;
  else if constexpr (std::is_same_v<T, int32_t>)
    want = DType::I32;
  else if constexpr (std::is_same_v<T, int64_t>)
    want = DType::I64;
  else if constexpr (std::is_same_v<T, uint16_t>) {
    if (dtype_ == DType::BF16 || dtype_ == DType::F16) return;
    want = DType::BF16;
  } else
    static_assert(sizeof(T) == 0, "unsupported element type");
  if (dtype_ != want)
    throw Error(std::string("tensor dtype is ") + dtype_name(dtype_) + ", accessed as " +
                dtype_name(want));
}

}  // namespace hone
