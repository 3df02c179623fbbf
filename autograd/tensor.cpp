#include "autograd/tensor.h"

#include <cstdlib>
#include <cstring>
#include <sstream>

#include "autograd/block_cache.h"
#include "autograd/kernels/quant.h"  // kQBlock only: tensor.cpp links without kernels/

namespace hone {

std::string shape_str(const Shape& s) {
  std::ostringstream o;
  o << '[';
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << ']';
  return o.str();
}

namespace {

// A block dtype packs 32 values of a row together: the last dimension must hold whole blocks.
void check_blocks(DType t, const Shape& s) {
  if (dtype_block(t) == 1) return;
  if (s.empty() || s.back() % dtype_block(t) != 0)
    throw Error(std::string(dtype_name(t)) + " tensor of shape " + shape_str(s) +
                ": the last dimension must be a multiple of " + std::to_string(dtype_block(t)));
}

}  // namespace

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0) throw Error("negative dimension in shape " + shape_str(s));
    n *= d;
  }
  return n;
}

Tensor Tensor::empty(DType t, Shape shape) {
  check_blocks(t, shape);
  Tensor r;
  r.dtype_ = t;
  r.dtype_set_ = true;
  r.numel_ = shape_numel(shape);
  r.shape_ = std::move(shape);
  const size_t bytes = r.nbytes();
  void* p = block_alloc(bytes);
  r.owner_ = std::shared_ptr<void>(p, [bytes](void* q) { block_free(q, bytes); });
  r.data_ = p;
  return r;
}

Tensor Tensor::zeros(DType t, Shape shape) {
  Tensor r = empty(t, std::move(shape));
  r.fill_zero();
  return r;
}

Tensor Tensor::external(DType t, Shape shape, void* data, std::shared_ptr<void> owner) {
  check_blocks(t, shape);
  Tensor r;
  r.dtype_ = t;
  r.dtype_set_ = true;
  r.numel_ = shape_numel(shape);
  r.shape_ = std::move(shape);
  r.data_ = data;
  r.owner_ = std::move(owner);
  return r;
}

Tensor Tensor::from_f32(const std::vector<float>& v, Shape shape) {
  Tensor r = empty(DType::F32, std::move(shape));
  if (static_cast<int64_t>(v.size()) != r.numel())
    throw Error("from_f32: " + std::to_string(v.size()) + " values for shape " +
                shape_str(r.shape()));
  std::memcpy(r.data_, v.data(), v.size() * 4);
  return r;
}

int64_t Tensor::dim(int i) const {
  int n = ndim();
  int j = i < 0 ? i + n : i;
  if (j < 0 || j >= n)
    throw Error("dim " + std::to_string(i) + " out of range for shape " + shape_str(shape_));
  return shape_[j];
}

Tensor Tensor::view(Shape shape) const {
  if (shape_numel(shape) != numel_)
    throw Error("cannot view " + shape_str(shape_) + " as " + shape_str(shape));
  check_blocks(dtype_, shape);
  Tensor r = *this;
  r.shape_ = std::move(shape);
  return r;
}

Tensor Tensor::slice0(int64_t begin, int64_t end) const {
  if (shape_.empty() || begin < 0 || end < begin || end > shape_[0])
    throw Error("slice [" + std::to_string(begin) + ", " + std::to_string(end) + ") of " +
                shape_str(shape_));
  Tensor r = *this;
  int64_t row = shape_[0] ? numel_ / shape_[0] : 0;
  r.shape_[0] = end - begin;
  r.numel_ = row * (end - begin);
  r.data_ = static_cast<char*>(data_) + dtype_nbytes(dtype_, begin * row);
  return r;
}

Tensor Tensor::clone() const {
  Tensor r = empty(dtype_, shape_);
  if (nbytes()) std::memcpy(r.data_, data_, nbytes());
  return r;
}

Tensor Tensor::to(DType t) const {
  if (t == dtype_) return clone();
  // Between two non-f32 types (e.g. BF16 -> Q8_0) go through f32.
  if (t != DType::F32 && t != DType::F64 && dtype_ != DType::F32) return to(DType::F32).to(t);
  Tensor r = empty(t, shape_);
  size_t n = static_cast<size_t>(numel_);
  if (t == DType::F32)
    convert_to_f32(data_, dtype_, r.data<float>(), n);
  else if (t == DType::F64)
    convert_to_f64(data_, dtype_, r.data<double>(), n);
  else
    convert_from_f32(data<float>(), r.data_, t, n);
  return r;
}

void Tensor::fill_zero() {
  if (nbytes()) std::memset(data_, 0, nbytes());
}

double Tensor::item(int64_t i) const {
  if (i < 0 || i >= numel_)
    throw Error("item " + std::to_string(i) + " out of range for shape " + shape_str(shape_));
  switch (dtype_) {
    case DType::F32:
      return static_cast<const float*>(data_)[i];
    case DType::F64:
      return static_cast<const double*>(data_)[i];
    case DType::BF16:
      return bf16_to_f32(static_cast<const uint16_t*>(data_)[i]);
    case DType::F16:
      return f16_to_f32(static_cast<const uint16_t*>(data_)[i]);
    case DType::I32:
      return static_cast<const int32_t*>(data_)[i];
    case DType::I64:
      return static_cast<double>(static_cast<const int64_t*>(data_)[i]);
    case DType::Q8_0:
    case DType::Q4_0: {
      float block[kernels::kQBlock];
      convert_to_f32(static_cast<const char*>(data_) +
                         dtype_nbytes(dtype_, i / kernels::kQBlock * kernels::kQBlock),
                     dtype_, block, kernels::kQBlock);
      return block[i % kernels::kQBlock];
    }
  }
  return 0;
}

}  // namespace hone
