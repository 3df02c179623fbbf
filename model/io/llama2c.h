// llama2.c legacy checkpoints (.bin): 7 int32 header fields (dim, hidden_dim, n_layers, n_heads,
// n_kv_heads, vocab_size, seq_len; negative vocab_size = unshared classifier), then f32 arrays.
#pragma once

#include <string>

#include "model/io/model_files.h"

namespace hone {

// Reads the whole checkpoint into owned f32 tensors under HF names in HF layout: q/k rows are
// permuted from llama2.c's interleaved RoPE pairs to rotate-half order (per head, rows
// [2i, 2i+1] become [i, i + head_dim/2]). The config gets llama2.c's fixed values: rope_theta
// 10000, rms_norm_eps 1e-5, bos 1, eos 2, max_position_embeddings = seq_len. The file size must
// match the header exactly. Errors read "<path>: <problem>". With a partial `range`, only the
// stage's tensors (range_holds_tensor) are copied out of the map.
ModelFiles read_llama2c(const std::string& path, const LayerRange& range = {});

}  // namespace hone
