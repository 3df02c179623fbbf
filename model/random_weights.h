// Random base weights for a config, under HF names: for benchmarks of model shapes we have no
// checkpoint for, and for tests that need a model of a particular shape.
#pragma once

#include <map>
#include <string>

#include "autograd/tensor.h"
#include "model/config.h"

namespace hone {

// Projections ~ U(-1/√in, 1/√in), embeddings ~ N(0, 0.02)-like, norms ~ 1 ± 0.1, biases small.
std::map<std::string, Tensor> random_weights(const ModelConfig& cfg, uint64_t seed);

}  // namespace hone
