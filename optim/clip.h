// Global-norm gradient clipping over the flat grads arena, with torch.nn.utils.clip_grad_norm_'s
// semantics: one L2 norm over every element, and a scale of max_norm / (norm + 1e-6) when that is
// below 1.
#pragma once

#include <cstdint>
#include <vector>

#include "autograd/tensor.h"

namespace hone {

// The L2 norm of an F32 tensor, accumulated in double over fixed 16384-element chunks whose sums
// are added in index order, so the result is bitwise the same whatever the thread count.
double grad_norm(const Tensor& grads);

// Returns the pre-clip norm of `grads` (F32). When max_norm > 0 and the norm is finite, scales
// grads in place by max_norm / (norm + 1e-6) if that is < 1. max_norm <= 0 means no clipping.
// A non-finite norm (inf/nan) is returned as is and grads are left untouched: the caller decides
// (e.g. stops the run). Throws Error on a non-F32 tensor or a NaN max_norm.
double clip_grad_norm(Tensor& grads, double max_norm);

// The squared-norm sums of grads' 16384-element chunks, the chunks starting afresh at every
// segment start (sorted offsets, the first 0): one double per chunk, in index order. Their sum in
// order is the squared norm. A model split into pipeline stages at segment boundaries (LoRA
// tensors) yields, stage after stage, exactly the whole arena's list, so every split adds the
// same numbers in the same order.
std::vector<double> grad_norm_partials(const Tensor& grads, const std::vector<int64_t>& starts);

// clip_grad_norm with the norm already known (e.g. summed across pipeline stages).
double clip_to_norm(Tensor& grads, double norm, double max_norm);

}  // namespace hone
