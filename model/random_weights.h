// Random base weights for a config, under HF names: for benchmarks of model shapes we have no
// checkpoint for, and for tests that need a model of a particular shape.
#pragma once

#include <map>
#include <string>

#include "autograd/tensor.h"
#include "model/config.h"
#include "model/layer_range.h"

namespace hone {

// Projections ~ U(-1/√in, 1/√in), embeddings ~ N(0, 0.02)-like, norms ~ 1 ± 0.1, biases small.
// `storage` F32 returns f32 tensors. BF16/F16/Q8_0/Q4_0 convert each projection and embedding as
// soon as it is drawn (norms and biases stay F32; a row that is not whole 32-blocks stays BF16,
// as Transformer does), so a model far larger than its f32 size in memory can be generated: an
// 8B shape in 4-bit needs ~4.5 GiB, not 32. The values are those of the f32 call, converted.
// `keep` (a pipeline stage's range_filter) draws only the tensors it accepts, with the values
// they have in the whole model's call.
std::map<std::string, Tensor> random_weights(const ModelConfig& cfg, uint64_t seed,
                                             DType storage = DType::F32,
                                             const TensorFilter& keep = {});

}  // namespace hone
