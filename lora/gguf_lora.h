// LoRA adapters as llama.cpp loads them (`llama-cli -m model.gguf --lora adapter.gguf`): a GGUF
// with general.type = "adapter", adapter.type = "lora", adapter.lora.alpha, and per adapted
// projection two tensors named after the base weight, e.g. blk.3.attn_q.weight.lora_a / .lora_b.
#pragma once

#include <string>

#include "lora/lora.h"
#include "model/config.h"
#include "model/io/gguf.h"

namespace hone {

// The alpha llama.cpp needs to reproduce hone's scaling: llama.cpp scales by alpha/r, so rsLoRA
// (alpha/√r) is exported as alpha·√r.
double gguf_lora_alpha(const LoraConfig& cfg);

// Writes the adapter atomically, its tensors as `type` (F32, F16 or BF16; the low-rank factors
// are rarely a multiple of ggml's 32-wide quant blocks), B scaled by `weight` (the `DIR:w` of
// `hone export`, as merge scales the whole delta; scaling B alone keeps A exact). Shapes follow
// llama.cpp's convert_lora_to_gguf.py: lora_a is A (r, in), GGUF dims [in, r]; lora_b is B (out,
// r), GGUF dims [r, out]. For the llama architecture B's rows of q_proj / k_proj are permuted into
// llama.cpp's interleaved RoPE order (A is untouched: the permutation acts on output rows).
// general.architecture is the base's (llama.cpp refuses an adapter whose architecture differs from
// the model's). A DoRA adapter is refused (GGUF LoRA has no magnitude vector): nothing is written.
void write_gguf_lora(const std::string& path, const LoraAdapters& adapters,
                     const ModelConfig& config, GgmlType type = GgmlType::F32, double weight = 1.0);

}  // namespace hone
