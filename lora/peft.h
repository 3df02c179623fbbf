// Adapters on disk in Hugging Face PEFT's format: adapter_config.json + adapter_model.safetensors
// with tensors base_model.model.<module>.lora_A.weight (r, in) and .lora_B.weight (out, r), and
// for DoRA (use_dora: true) .lora_magnitude_vector (out).
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>

#include "lora/lora.h"

namespace hone {

// Writes both files into `dir` (created if needed), each atomically. `base_model` is recorded
// as base_model_name_or_path.
void save_peft_adapter(const std::string& dir, const LoraAdapters& adapters,
                       const std::string& base_model);

// The same two files from a config and the tensors by PEFT name (base_model.model.<module>.
// lora_A.weight ...): for adapters built without a model, e.g. by hone combine.
void save_peft_files(const std::string& dir, const LoraConfig& config,
                     const std::map<std::string, Tensor>& tensors, const std::string& base_model);

// base_model_name_or_path of <dir>/adapter_config.json ("" when absent or not a string).
std::string read_peft_base_model(const std::string& dir);

// Reads adapter_config.json into a LoraConfig; refuses what hone cannot apply (bias
// other than "none", modules other than the seven projections, rank/alpha patterns) with an
// error naming the file and field.
LoraConfig read_peft_config(const std::string& dir);

// Injects adapters described by `dir` into `model` and loads their weights; every tensor of the
// file must land on a module of the model, with the right shape.
std::unique_ptr<LoraAdapters> load_peft_adapter(const std::string& dir, Transformer& model);

// Copies the weights of a PEFT safetensors map into existing adapters (names and shapes must
// match exactly; every adapter tensor must be present). A tensor that matches no adapted module
// is an error unless it is named in `elsewhere` (another pipeline stage's).
void load_peft_weights(LoraAdapters& adapters, const std::string& safetensors_path,
                       const std::set<std::string>& elsewhere = {});

}  // namespace hone
