#include "data/loader.h"

#include <algorithm>
#include <numeric>
#include <string>
#include <utility>

#include "autograd/error.h"
#include "autograd/rng.h"

namespace hone {

DataLoader::DataLoader(ExampleSet examples, int64_t batch_size, uint64_t shuffle_seed, bool shuffle,
                       bool drop_last)
    : examples_(std::move(examples)),
      batch_size_(batch_size),
      shuffle_(shuffle),
      drop_last_(drop_last) {
  cursor_.seed = shuffle_seed;
  if (examples_.empty()) throw Error("data loader: no examples");
  if (batch_size_ <= 0) {
    throw Error("data loader: batch_size must be > 0 (got " + std::to_string(batch_size_) + ")");
  }
  seq_ = static_cast<int64_t>(examples_[0].ids.size());
  if (seq_ == 0) throw Error("data loader: examples are empty");
  // Windows of a token stream all have seq_len ids and targets; held examples are checked.
  for (size_t i = 0; i < (examples_.is_windows() ? 0 : examples_.size()); ++i) {
    const Example e = examples_[i];
    if (static_cast<int64_t>(e.ids.size()) != seq_ || e.targets.size() != e.ids.size()) {
      throw Error("data loader: example " + std::to_string(i) + " has " +
                  std::to_string(e.ids.size()) + " ids and " + std::to_string(e.targets.size()) +
                  " targets; expected " + std::to_string(seq_) + " of each");
    }
  }
  if (batches_per_epoch() == 0) {
    throw Error("data loader: " + std::to_string(examples_.size()) +
                " examples make no full batch of " + std::to_string(batch_size_) +
                " (lower batch_size or turn off drop_last)");
  }
}

int64_t DataLoader::batches_per_epoch() const {
  const auto n = static_cast<int64_t>(examples_.size());
  return drop_last_ ? n / batch_size_ : (n + batch_size_ - 1) / batch_size_;
}

std::vector<int64_t> DataLoader::epoch_order(uint64_t epoch) const {
  std::vector<int64_t> order(examples_.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  if (!shuffle_) return order;
  // One splitmix64 step decorrelates neighbouring seeds; adding the epoch times an odd constant
  // and stepping again gives each (seed, epoch) its own stream.
  Rng mix(cursor_.seed);
  Rng rng(mix.next_u64() + epoch * 0xd1b54a32d192ed03ull);
  rng.set_state(rng.next_u64());
  for (size_t i = order.size() - 1; i > 0; --i) {
    // Modulo bias is below n / 2^64: irrelevant here, and the result is identical everywhere.
    const auto j = static_cast<size_t>(rng.next_u64() % (i + 1));
    std::swap(order[i], order[j]);
  }
  return order;
}

void DataLoader::ensure_order() {
  if (!order_valid_) {
    order_ = epoch_order(cursor_.epoch);
    order_valid_ = true;
  }
}

void DataLoader::restore(const Cursor& c) {
  if (c.position > examples_.size()) {
    throw Error("data loader: cursor position " + std::to_string(c.position) + " is past the " +
                std::to_string(examples_.size()) + " examples (a different dataset?)");
  }
  cursor_ = c;
  order_valid_ = false;
}

Batch collate(const std::vector<const Example*>& examples) {
  Batch b;
  b.batch = static_cast<int64_t>(examples.size());
  b.seq = examples.empty() ? 0 : static_cast<int64_t>(examples[0]->ids.size());
  b.ids.reserve(examples.size() * static_cast<size_t>(b.seq));
  b.targets.reserve(b.ids.capacity());
  bool packed = false;
  for (const Example* e : examples) {
    b.ids.insert(b.ids.end(), e->ids.begin(), e->ids.end());
    b.targets.insert(b.targets.end(), e->targets.begin(), e->targets.end());
    for (int32_t t : e->targets) b.n_targets += (t != kIgnoreIndex) ? 1 : 0;
    packed = packed || !e->segment_start.empty();
  }
  if (packed) {
    b.segment_start.reserve(b.ids.size());
    for (const Example* e : examples) {
      if (e->segment_start.empty())
        b.segment_start.insert(b.segment_start.end(), e->ids.size(), 0);
      else
        b.segment_start.insert(b.segment_start.end(), e->segment_start.begin(),
                               e->segment_start.end());
    }
  }
  return b;
}

Batch DataLoader::next() {
  const auto n = static_cast<uint64_t>(examples_.size());
  const auto B = static_cast<uint64_t>(batch_size_);
  const uint64_t limit = drop_last_ ? (n / B) * B : n;
  if (cursor_.position >= limit) {
    ++cursor_.epoch;
    cursor_.position = 0;
    order_valid_ = false;
  }
  ensure_order();
  const uint64_t take = std::min(B, limit - cursor_.position);
  std::vector<Example> made(static_cast<size_t>(take));
  std::vector<const Example*> rows(static_cast<size_t>(take));
  for (uint64_t r = 0; r < take; ++r) {
    made[r] = examples_[static_cast<size_t>(order_[cursor_.position + r])];
    rows[r] = &made[r];
  }
  Batch b = collate(rows);
  b.epoch = cursor_.epoch;
  cursor_.position += take;
  return b;
}

}  // namespace hone
