#include "data/packing.h"

#include <algorithm>
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

namespace {

class MemoryTokens final : public TokenSequence {
 public:
  explicit MemoryTokens(std::vector<int32_t> ids) : ids_(std::move(ids)) {}
  int64_t size() const override { return static_cast<int64_t>(ids_.size()); }
  void read(int64_t begin, int64_t n, int32_t* out) const override {
    std::copy_n(ids_.begin() + begin, n, out);
  }

 private:
  std::vector<int32_t> ids_;
};

}  // namespace

std::shared_ptr<const TokenSequence> tokens_in_memory(std::vector<int32_t> ids) {
  return std::make_shared<MemoryTokens>(std::move(ids));
}

ExampleSet::ExampleSet(std::vector<Example> examples)
    : held_(std::make_shared<const std::vector<Example>>(std::move(examples))),
      count_(static_cast<int64_t>(held_->size())) {}

ExampleSet ExampleSet::windows(std::shared_ptr<const TokenSequence> tokens, int64_t seq_len,
                               bool keep_tail, int32_t pad_id) {
  if (seq_len <= 0)
    throw Error("packing: seq_len must be > 0 (got " + std::to_string(seq_len) + ")");
  ExampleSet s;
  const int64_t n = tokens->size();
  s.tokens_ = std::move(tokens);
  s.seq_ = seq_len;
  s.keep_tail_ = keep_tail;
  s.pad_ = pad_id;
  // As pack_tokens: windows of T + 1 tokens with stride T, plus the partial tail if asked.
  if (n >= 2) s.count_ = (n - 1) / seq_len + ((keep_tail && (n - 1) % seq_len != 0) ? 1 : 0);
  return s;
}

Example ExampleSet::operator[](size_t i) const {
  const size_t k = base_index(i);
  if (held_) return (*held_)[k];
  const int64_t T = seq_;
  const int64_t start = static_cast<int64_t>(k) * T;
  // Window k covers stream[kT, kT + T + 1), cut short at the end of the stream (the tail).
  const int64_t have = std::min(T + 1, tokens_->size() - start);
  std::vector<int32_t> w(static_cast<size_t>(have));
  tokens_->read(start, have, w.data());
  Example ex;
  ex.ids.assign(static_cast<size_t>(T), pad_);
  ex.targets.assign(static_cast<size_t>(T), kIgnoreIndex);
  for (int64_t t = 0; t + 1 < have; ++t) {
    ex.ids[static_cast<size_t>(t)] = w[static_cast<size_t>(t)];
    ex.targets[static_cast<size_t>(t)] = w[static_cast<size_t>(t + 1)];
  }
  return ex;
}

ExampleSet ExampleSet::select(const std::vector<bool>& mask, bool keep) const {
  ExampleSet out = *this;
  out.index_.clear();
  out.indexed_ = true;
  for (size_t i = 0; i < size() && i < mask.size(); ++i)
    if (mask[i] == keep) out.index_.push_back(static_cast<int64_t>(base_index(i)));
  return out;
}

TrainValSplit split_train_val(ExampleSet examples, double val_fraction) {
  const std::vector<bool> mask = val_mask(static_cast<int64_t>(examples.size()), val_fraction);
  TrainValSplit out;
  if (val_fraction == 0.0) {
    out.train = std::move(examples);
    return out;
  }
  out.train = examples.select(mask, false);
  out.val = examples.select(mask, true);
  return out;
}

}  // namespace hone
