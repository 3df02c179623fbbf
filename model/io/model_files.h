// Loading a base model from disk: a Hugging Face folder (config.json + safetensors, single or
// sharded), or a llama2.c .bin checkpoint. Tensors come back under their HF names in HF layout
// (q/k rows in rotate-half order), memory-mapped where the file format allows.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "autograd/tensor.h"
#include "model/config.h"
#include "model/layer_range.h"

namespace hone {

struct ModelFiles {
  ModelConfig config;
  std::map<std::string, Tensor> tensors;  // HF names, e.g. "model.layers.0.self_attn.q_proj.weight"
  std::string format;                     // "safetensors" | "llama2c"
  std::string source;                     // the path given
  std::vector<std::string> files;         // every file read (config, weights, shards)
};

// Every tensor the config implies, HF name -> shape (lm_head.weight only when untied; q/k/v
// biases with attention_bias; q_norm/k_norm with qk_norm); with a partial `range`, only those a
// stage holding it needs (range_holds_tensor).
std::map<std::string, Shape> expected_tensor_shapes(const ModelConfig& config,
                                                    const LayerRange& range = {});

// Throws Error("<source>: tensor <name>: ...") when a tensor the config (and `range`) implies is
// missing, has another shape, or is not a float type. Extra tensors are allowed.
void check_model_tensors(const ModelConfig& config, const std::map<std::string, Tensor>& tensors,
                         const std::string& source, const LayerRange& range = {});

// Dispatches on what `path` is: a folder with config.json, a .safetensors file next to a
// config.json, or a llama2.c .bin. Checks every expected tensor is present with the right shape.
// A partial `range` (a pipeline stage) returns and checks only the stage's tensors: the others
// are neither read, converted nor checked (the weights are memory-mapped, so they are never
// paged in); `tensors` then holds just the stage's share.
ModelFiles load_model_files(const std::string& path, const LayerRange& range = {});

}  // namespace hone
