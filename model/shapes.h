// The shapes of published models, for benchmarks and tests that need a model of a real size but
// no checkpoint (weights come from random_weights.h). One place, so bench and tests agree.
#pragma once

#include <string>
#include <vector>

#include "model/config.h"

namespace hone {

// "smollm2-135m", "qwen2.5-0.5b", "llama3.2-1b", "llama3-8b", "llama3-70b", "llama3.1-405b".
// Throws Error listing the names.
ModelConfig model_shape(const std::string& name);
const std::vector<std::string>& model_shape_names();

}  // namespace hone
