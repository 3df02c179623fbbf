// A base model whose file holds a NaN or an infinity is damaged, not "trained with too high a
// learning rate": train, eval and generate scan the weights once at load and say which tensor.
#pragma once

#include <map>
#include <string>

#include "autograd/tensor.h"

namespace hone {

// Throws Error("<source>: tensor <name>: non-finite value (NaN or Inf) at element <i>; ...") for
// the first tensor (in name order) holding one. Float tensors are checked element by element,
// Q8_0/Q4_0 by their block scales; integer tensors are skipped. A bit-mask scan, in parallel:
// about one pass over the weights at memory bandwidth.
void check_finite_weights(const std::map<std::string, Tensor>& tensors, const std::string& source);

}  // namespace hone
