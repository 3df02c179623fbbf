#include "data/packing.h"

#include <cmath>
#include <string>
#include <utility>

#include "autograd/error.h"

namespace hone {

std::vector<Example> pack_tokens(const std::vector<int32_t>& stream, int64_t seq_len,
                                 bool keep_tail, int32_t pad_id) {
  if (seq_len <= 0)
    throw Error("packing: seq_len must be > 0 (got " + std::to_string(seq_len) + ")");
  const auto n = static_cast<int64_t>(stream.size());
  std::vector<Example> out;
  if (n < 2) return out;
  const int64_t T = seq_len;
  const int64_t full = (n - 1) / T;  // windows of T + 1 tokens that fit
  const int64_t count = full + ((keep_tail && (n - 1) % T != 0) ? 1 : 0);
  out.reserve(static_cast<size_t>(count));
  for (int64_t k = 0; k < count; ++k) {
    Example ex;
    ex.ids.assign(static_cast<size_t>(T), pad_id);
    ex.targets.assign(static_cast<size_t>(T), kIgnoreIndex);
    for (int64_t t = 0; t < T && k * T + t + 1 < n; ++t) {
      ex.ids[static_cast<size_t>(t)] = stream[static_cast<size_t>(k * T + t)];
      ex.targets[static_cast<size_t>(t)] = stream[static_cast<size_t>(k * T + t + 1)];
    }
    out.push_back(std::move(ex));
  }
  return out;
}

std::vector<bool> val_mask(int64_t n, double val_fraction) {
  if (!(val_fraction >= 0.0 && val_fraction < 1.0)) {
    throw Error("split: val_fraction must be in [0, 1) (got " + std::to_string(val_fraction) + ")");
  }
  std::vector<bool> mask(static_cast<size_t>(n > 0 ? n : 0), false);
  if (val_fraction == 0.0 || n <= 0) return mask;
  if (n < 2) {
    throw Error("split: val_fraction " + std::to_string(val_fraction) +
                " needs at least 2 examples (got " + std::to_string(n) + ")");
  }
  auto v = static_cast<int64_t>(std::llround(val_fraction * static_cast<double>(n)));
  if (v < 1) v = 1;
  if (v > n - 1) v = n - 1;
  for (int64_t i = 0; i < n; ++i) {
    // (i+1)·v <= n·(n-1) fits easily in int64 for any realistic count.
    if ((i + 1) * v / n > i * v / n) mask[static_cast<size_t>(i)] = true;
  }
  return mask;
}

TrainValSplit split_train_val(std::vector<Example> examples, double val_fraction) {
  const std::vector<bool> mask = val_mask(static_cast<int64_t>(examples.size()), val_fraction);
  TrainValSplit out;
  for (size_t i = 0; i < examples.size(); ++i) {
    (mask[i] ? out.val : out.train).push_back(std::move(examples[i]));
  }
  return out;
}

}  // namespace hone
