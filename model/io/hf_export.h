// Writing a Hugging Face model folder: config.json, generation_config.json, tokenizer files
// copied from the source folder, and model.safetensors or shards model-0000i-of-0000N.safetensors
// with model.safetensors.index.json. Tensors are streamed: each is produced on demand, written,
// and released, so exporting never holds more than one tensor beside the (mapped) source.
// The folder appears whole or not at all: it is built in "<out>.tmp-XXXXXX" and renamed.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "autograd/tensor.h"
#include "model/config.h"

namespace hone {

// One tensor of the output, known before any data is produced (so headers come first).
struct ExportTensor {
  std::string name;  // HF name, e.g. model.layers.0.self_attn.q_proj.weight
  DType dtype = DType::F32;
  Shape shape;
  uint64_t nbytes() const;
};

struct HfExportOptions {
  // Largest shard in bytes of tensor data; 0 = one model.safetensors. A tensor larger than the
  // limit gets a shard of its own (as transformers does).
  uint64_t max_shard_size = 0;
  // Folder whose tokenizer files (tokenizer.json, tokenizer_config.json, special_tokens_map.json,
  // tokenizer.model, vocab.json, merges.txt, added_tokens.json, chat_template.jinja) are copied
  // when present; "" = none.
  std::string tokenizer_dir;
  // An existing non-empty output folder is refused unless `force`; with `force` it is replaced
  // (only after the new folder is complete).
  bool force = false;
};

// Produces the data of a planned tensor; the result must have the planned dtype and shape. It is
// written at once and dropped, then `done` (if set) is called with the name.
using TensorProducer = std::function<Tensor(const ExportTensor&)>;
using TensorDone = std::function<void(const ExportTensor&)>;

// The tensors a config implies in HF order (embedding, layer 0..N-1, final norm, lm_head unless
// tied), every one in `dtype`.
std::vector<ExportTensor> hf_export_plan(const ModelConfig& config, DType dtype);

// config.json for `config` with torch_dtype naming `dtype` (float32 / bfloat16 / float16).
std::string hf_config_json(const ModelConfig& config, DType dtype);
// generation_config.json: bos/eos token ids.
std::string hf_generation_config_json(const ModelConfig& config);

// Shards of a plan: consecutive tensors packed while the shard's data stays <= max_shard_size
// (0 = everything in one shard). Each inner vector holds indices into `plan`.
std::vector<std::vector<size_t>> hf_shard_plan(const std::vector<ExportTensor>& plan,
                                               uint64_t max_shard_size);

// Writes the folder `out_dir` (see the top of this file). `dtype` is the torch_dtype recorded.
// On any error the temporary folder is removed and `out_dir` is left as it was.
void export_hf(const std::string& out_dir, const ModelConfig& config, DType dtype,
               const std::vector<ExportTensor>& plan, const TensorProducer& produce,
               const HfExportOptions& options, const TensorDone& done = {});

// Streams one safetensors file to `path` (atomically): the header from `tensors`, then each
// tensor's data from `produce` in order, with metadata {"format": "pt"}.
void write_safetensors_streaming(const std::string& path, const std::vector<ExportTensor>& tensors,
                                 const TensorProducer& produce, const TensorDone& done = {});

// "2GB", "500MB", "1.5GiB", "64KB", "1000" -> bytes (KB/MB/GB/TB are powers of 1000 as in
// transformers; KiB/MiB/GiB/TiB powers of 1024). Throws Error naming `what` on a bad value.
uint64_t parse_byte_size(const std::string& s, const std::string& what = "--max-shard-size");

// Drops the resident pages of a memory-mapped tensor (they are re-read from the file if touched
// again), so streaming over a mapped model keeps RSS near one tensor. A no-op for small tensors;
// never use on tensors that were written to in place.
void release_mapped_pages(const Tensor& t);

}  // namespace hone
