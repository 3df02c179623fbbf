#include "model/layer_range.h"

#include <algorithm>

#include "autograd/error.h"

namespace hone {

LayerRange LayerRange::resolved(int64_t num_layers) const {
  LayerRange r = *this;
  if (r.last == -1) r.last = static_cast<int>(num_layers);
  if (r.first < 0 || r.first > r.last || r.last > num_layers)
    throw Error("layer range " + std::to_string(first) + ".." + std::to_string(last) +
                ": must satisfy 0 <= first <= last <= " + std::to_string(num_layers) +
                " (the model's layers)");
  return r;
}

std::string LayerRange::str() const {
  // Appended piecewise: GCC 12's -Wrestrict misfires on "[" + std::to_string(...).
  std::string s = "[";
  s += std::to_string(first);
  s += ", ";
  s += std::to_string(last);
  s += ")";
  return s;
}

LayerRange pipeline_stage_layers(int64_t num_layers, int stages, int stage) {
  if (stages < 1 || stages > num_layers)
    throw Error("pipeline of " + std::to_string(stages) + " stages: must be between 1 and the " +
                "model's " + std::to_string(num_layers) + " layers");
  if (stage < 0 || stage >= stages)
    throw Error("pipeline stage " + std::to_string(stage) + " of " + std::to_string(stages) +
                " does not exist");
  const int64_t each = num_layers / stages, extra = num_layers % stages;
  auto start = [&](int64_t k) { return k * each + std::min(k, extra); };
  return LayerRange{static_cast<int>(start(stage)), static_cast<int>(start(stage + 1))};
}

bool range_holds_tensor(const LayerRange& r, const ModelConfig& c, const std::string& name) {
  const int64_t n = c.num_layers;
  if (name == "model.embed_tokens.weight")
    return r.holds_embedding() || (c.tie_word_embeddings && r.holds_head(n));
  if (name == "model.norm.weight" || name == "lm_head.weight") return r.holds_head(n);
  static const std::string prefix = "model.layers.";
  if (name.compare(0, prefix.size(), prefix) != 0) return r.is_full(n);
  const size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size()) return r.is_full(n);
  int64_t layer = 0;
  for (size_t i = prefix.size(); i < dot; ++i) {
    const char ch = name[i];
    if (ch < '0' || ch > '9' || layer > n) return r.is_full(n);
    layer = layer * 10 + (ch - '0');
  }
  return r.holds_layer(layer);
}

TensorFilter range_filter(const LayerRange& range, const ModelConfig& config) {
  if (range.is_full(config.num_layers)) return {};
  return
      [range, config](const std::string& name) { return range_holds_tensor(range, config, name); };
}

}  // namespace hone
