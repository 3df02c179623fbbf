// A pipeline stage's share of a model: the transformer blocks [first, last), the token embedding
// when first == 0, and the final norm + LM head when last == num_layers (with tied embeddings the
// last stage holds the embedding matrix too, as its head). The default range is the whole model.
#pragma once

#include <functional>
#include <string>

#include "model/config.h"

namespace hone {

struct LayerRange {
  int first = 0;
  int last = -1;  // one past the last block held; -1: through the model's last block

  // `last` resolved against the model (-1 -> num_layers). Throws Error naming the range when it
  // is not 0 <= first <= last <= num_layers. An empty range is allowed: a stage that holds only
  // the embedding (first == last == 0) or only the head (first == last == num_layers).
  LayerRange resolved(int64_t num_layers) const;
  // These take a resolved range.
  bool holds_layer(int64_t layer) const { return layer >= first && layer < last; }
  bool holds_embedding() const { return first == 0; }
  bool holds_head(int64_t num_layers) const { return last == num_layers; }
  bool is_full(int64_t num_layers) const { return first == 0 && last == num_layers; }
  int count() const { return last - first; }
  std::string str() const;  // "[first, last)"
  bool operator==(const LayerRange&) const = default;
};

// Stage `stage` of `stages` (0-based) in an even split of num_layers blocks: every stage gets
// num_layers / stages blocks and the first num_layers % stages one more. Throws Error when stages
// is not in [1, num_layers] or stage not in [0, stages).
LayerRange pipeline_stage_layers(int64_t num_layers, int stages, int stage);

// True when a stage with the (resolved) range needs the tensor `hf_name` of a model with
// `config`: its blocks' tensors, the embedding on the first stage (and on the last one when
// tied), model.norm and lm_head on the last. Names outside the model are never held by a partial
// range (the whole model keeps everything a file has).
bool range_holds_tensor(const LayerRange& range, const ModelConfig& config,
                        const std::string& hf_name);

// The tensors a reader should materialise: an empty function keeps every tensor.
using TensorFilter = std::function<bool(const std::string& hf_name)>;
// The filter of a resolved range: empty for the whole model, else range_holds_tensor.
TensorFilter range_filter(const LayerRange& range, const ModelConfig& config);

}  // namespace hone
