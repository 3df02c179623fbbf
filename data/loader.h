// A seeded, resumable batch loader over packed examples. The order of an epoch is a function of
// (seed, epoch) alone, so a checkpointed Cursor resumes the exact stream of batches.
#pragma once

#include <cstdint>
#include <vector>

#include "data/packing.h"

namespace hone {

struct Batch {
  std::vector<int32_t> ids;      // (B,T) row-major
  std::vector<int32_t> targets;  // (B,T) row-major, kIgnoreIndex where masked
  int64_t batch = 0;             // B (the last batch of an epoch may be short without drop_last)
  int64_t seq = 0;               // T
  int64_t n_targets = 0;         // targets that are not kIgnoreIndex
  // (B,T) row-major when any example of the batch is packed (see Example), else empty.
  std::vector<int32_t> segment_start;
  uint64_t epoch = 0;  // the epoch the batch was drawn from
};

// Stacks examples (all of one length) into a batch: ids, targets, target count and, when any
// example is packed, segment starts (rows without boundaries start at 0).
Batch collate(const std::vector<const Example*>& examples);

class DataLoader {
 public:
  struct Cursor {
    uint64_t epoch = 0;
    uint64_t position = 0;  // examples of this epoch's order already served
    uint64_t seed = 0;
  };

  // All examples must have the same non-zero length. Throws hone::Error when examples is empty,
  // batch_size <= 0, lengths differ, or drop_last leaves no batch (fewer examples than B).
  // Examples are made when a batch needs them (see ExampleSet), never all at once.
  DataLoader(ExampleSet examples, int64_t batch_size, uint64_t shuffle_seed, bool shuffle = true,
             bool drop_last = true);

  // The next batch; after the last batch of an epoch the next call starts the following epoch
  // (a fresh order; with drop_last the examples left over are skipped for that epoch only).
  Batch next();

  Cursor cursor() const { return cursor_; }
  // Continues from `c` as if the batches before it had been drawn; the loader adopts c.seed.
  // Throws hone::Error if c.position is past the number of examples.
  void restore(const Cursor& c);

  int64_t batches_per_epoch() const;
  int64_t size() const { return static_cast<int64_t>(examples_.size()); }
  int64_t batch_size() const { return batch_size_; }
  int64_t seq_len() const { return seq_; }

  // The order of `epoch`: identity without shuffle, else a Fisher–Yates shuffle driven by
  // hone::Rng seeded from splitmix64(seed) mixed with the epoch (see loader.cpp).
  std::vector<int64_t> epoch_order(uint64_t epoch) const;

 private:
  void ensure_order();

  ExampleSet examples_;
  int64_t batch_size_;
  int64_t seq_ = 0;
  bool shuffle_;
  bool drop_last_;
  Cursor cursor_;
  std::vector<int64_t> order_;  // the order of cursor_.epoch under cursor_.seed
  bool order_valid_ = false;
};

}  // namespace hone
