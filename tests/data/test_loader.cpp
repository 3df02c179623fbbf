#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <vector>

#include "autograd/error.h"
#include "data/loader.h"
#include "data/packing.h"

namespace hone {
namespace {

// n examples of length T; example i has ids all equal to i, so a batch row names its example.
std::vector<Example> numbered(int n, int T = 3) {
  std::vector<Example> ex(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    ex[static_cast<size_t>(i)].ids.assign(static_cast<size_t>(T), i);
    ex[static_cast<size_t>(i)].targets.assign(static_cast<size_t>(T), i + 1000);
  }
  return ex;
}

std::vector<int32_t> rows(const Batch& b) {
  std::vector<int32_t> r;
  for (int64_t i = 0; i < b.batch; ++i) r.push_back(b.ids[static_cast<size_t>(i * b.seq)]);
  return r;
}

// The example indices of one epoch, drawn batch by batch.
std::vector<int32_t> draw_epoch(DataLoader& dl) {
  std::vector<int32_t> out;
  for (int64_t k = 0; k < dl.batches_per_epoch(); ++k) {
    auto r = rows(dl.next());
    out.insert(out.end(), r.begin(), r.end());
  }
  return out;
}

bool same_batch(const Batch& a, const Batch& b) {
  return a.ids == b.ids && a.targets == b.targets && a.batch == b.batch && a.seq == b.seq &&
         a.n_targets == b.n_targets && a.epoch == b.epoch;
}

TEST(DataLoader, BatchLayoutIsRowMajorWithCounts) {
  auto ex = numbered(4, 3);
  ex[1].targets[2] = kIgnoreIndex;
  DataLoader dl(ex, 2, 0, /*shuffle=*/false, /*drop_last=*/true);
  Batch b = dl.next();
  EXPECT_EQ(b.batch, 2);
  EXPECT_EQ(b.seq, 3);
  EXPECT_EQ(b.ids, (std::vector<int32_t>{0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(b.targets, (std::vector<int32_t>{1000, 1000, 1000, 1001, 1001, kIgnoreIndex}));
  EXPECT_EQ(b.n_targets, 5);
  EXPECT_EQ(b.epoch, 0u);
}

TEST(DataLoader, EachEpochIsAPermutationOfAllExamples) {
  DataLoader dl(numbered(37), 1, 42);
  std::vector<int32_t> all(37);
  std::iota(all.begin(), all.end(), 0);
  for (int e = 0; e < 4; ++e) {
    auto order = draw_epoch(dl);
    std::sort(order.begin(), order.end());
    EXPECT_EQ(order, all) << "epoch " << e;
  }
}

TEST(DataLoader, DeterministicGivenSeedAndDifferentPerEpochAndSeed) {
  DataLoader a(numbered(50), 5, 7), b(numbered(50), 5, 7), c(numbered(50), 5, 8);
  auto a0 = draw_epoch(a), a1 = draw_epoch(a);
  auto b0 = draw_epoch(b), b1 = draw_epoch(b);
  auto c0 = draw_epoch(c);
  EXPECT_EQ(a0, b0);
  EXPECT_EQ(a1, b1);
  EXPECT_NE(a0, a1);  // a fresh order every epoch
  EXPECT_NE(a0, c0);  // and per seed
  std::vector<int32_t> sorted(a0);
  std::sort(sorted.begin(), sorted.end());
  EXPECT_NE(a0, sorted);  // actually shuffled
  EXPECT_EQ(a.epoch_order(1), b.epoch_order(1));
}

// Pinned, so a change to the shuffle (which would silently change resumed runs) is noticed.
TEST(DataLoader, ShuffleOrderIsPinned) {
  DataLoader dl(numbered(10), 2, 42);
  EXPECT_EQ(dl.epoch_order(0), (std::vector<int64_t>{6, 1, 8, 5, 2, 7, 4, 3, 9, 0}));
  EXPECT_EQ(dl.epoch_order(1), (std::vector<int64_t>{0, 9, 8, 7, 2, 1, 3, 5, 4, 6}));
}

TEST(DataLoader, NoShuffleKeepsOrder) {
  DataLoader dl(numbered(6), 4, 99, /*shuffle=*/false, /*drop_last=*/false);
  EXPECT_EQ(dl.batches_per_epoch(), 2);
  EXPECT_EQ(rows(dl.next()), (std::vector<int32_t>{0, 1, 2, 3}));
  Batch tail = dl.next();
  EXPECT_EQ(tail.batch, 2);
  EXPECT_EQ(rows(tail), (std::vector<int32_t>{4, 5}));
  Batch next = dl.next();  // rollover
  EXPECT_EQ(next.epoch, 1u);
  EXPECT_EQ(rows(next), (std::vector<int32_t>{0, 1, 2, 3}));
}

TEST(DataLoader, EpochRolloverWithDropLast) {
  DataLoader dl(numbered(10), 3, 1, true, /*drop_last=*/true);
  EXPECT_EQ(dl.batches_per_epoch(), 3);
  for (int e = 0; e < 3; ++e) {
    std::set<int32_t> seen;
    for (int k = 0; k < 3; ++k) {
      Batch b = dl.next();
      EXPECT_EQ(b.batch, 3);
      EXPECT_EQ(b.epoch, static_cast<uint64_t>(e));
      for (int32_t r : rows(b)) EXPECT_TRUE(seen.insert(r).second);
    }
    EXPECT_EQ(seen.size(), 9u);
    EXPECT_EQ(dl.cursor().epoch, static_cast<uint64_t>(e));
    EXPECT_EQ(dl.cursor().position, 9u);
  }
}

TEST(DataLoader, CursorRestoreMidEpochReproducesTheRestBitwise) {
  auto ex = numbered(23, 4);
  for (auto& e : ex) e.targets[1] = kIgnoreIndex;  // vary n_targets too
  DataLoader ref(ex, 4, 12345, true, false);
  for (int i = 0; i < 8; ++i) ref.next();  // into epoch 1, mid-way
  const DataLoader::Cursor saved = ref.cursor();
  EXPECT_EQ(saved.epoch, 1u);
  EXPECT_EQ(saved.position, 8u);
  std::vector<Batch> expect;
  for (int i = 0; i < 20; ++i) expect.push_back(ref.next());  // crosses several epochs

  DataLoader resumed(ex, 4, /*another seed, replaced by the cursor's*/ 999, true, false);
  resumed.next();
  resumed.restore(saved);
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(same_batch(resumed.next(), expect[static_cast<size_t>(i)])) << "batch " << i;
  }
  EXPECT_EQ(resumed.cursor().epoch, ref.cursor().epoch);
  EXPECT_EQ(resumed.cursor().position, ref.cursor().position);
}

TEST(DataLoader, RejectsBadArguments) {
  EXPECT_THROW(DataLoader({}, 2, 0), Error);
  EXPECT_THROW(DataLoader(numbered(4), 0, 0), Error);
  EXPECT_THROW(DataLoader(numbered(3), 4, 0, true, /*drop_last=*/true), Error);
  EXPECT_NO_THROW(DataLoader(numbered(3), 4, 0, true, /*drop_last=*/false));
  auto ragged = numbered(4);
  ragged[2].ids.pop_back();
  EXPECT_THROW(DataLoader(ragged, 2, 0), Error);
  DataLoader dl(numbered(4), 2, 0);
  EXPECT_THROW(dl.restore({0, 5, 0}), Error);
}

}  // namespace
}  // namespace hone
