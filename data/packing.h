// Token windows for causal LM training: one token stream cut into examples of T inputs and the
// T next tokens as targets, and a deterministic train/val split of the examples.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <vector>

namespace hone {

// A target equal to this takes no part in the loss (PyTorch's CrossEntropyLoss default).
inline constexpr int32_t kIgnoreIndex = -100;

struct Example {
  std::vector<int32_t> ids;      // (T) inputs
  std::vector<int32_t> targets;  // (T) the token after each input, or kIgnoreIndex
  // (T) or empty. When several examples are packed into one window, the index in the window
  // where each token's example starts: attention stays inside the example and positions
  // restart. Empty: the window is one stream (plain-text documents may span windows).
  std::vector<int32_t> segment_start;
};

// Cuts `stream` into windows of seq_len + 1 tokens with stride seq_len: example k has
// ids = stream[kT, kT + T) and targets = stream[kT + 1, kT + T + 1), so consecutive examples share
// one token (the last target of one is the first input of the next) and every token after the
// first is a target exactly once. Tokens after the last full window are dropped, unless
// `keep_tail`: then they form one more example whose missing inputs are `pad_id` and whose missing
// targets are kIgnoreIndex. Throws hone::Error if seq_len <= 0.
std::vector<Example> pack_tokens(const std::vector<int32_t>& stream, int64_t seq_len,
                                 bool keep_tail = false, int32_t pad_id = 0);

// A token stream read in ranges: a mapped token store, or ids in memory.
class TokenSequence {
 public:
  virtual ~TokenSequence() = default;
  virtual int64_t size() const = 0;
  // Copies ids [begin, begin + n) into out; the range is within size().
  virtual void read(int64_t begin, int64_t n, int32_t* out) const = 0;
};

// Ids held in memory (tests, small streams).
std::shared_ptr<const TokenSequence> tokens_in_memory(std::vector<int32_t> ids);

// Examples, either held (JSONL data) or made on demand from a token stream as pack_tokens would
// make them, so a packed corpus costs its token ids and nothing per window. Copies share the
// data. Elements are returned by value.
class ExampleSet {
 public:
  ExampleSet() = default;
  ExampleSet(std::vector<Example> examples);  // NOLINT(google-explicit-constructor): held

  // The windows pack_tokens(stream, seq_len, keep_tail, pad_id) returns, read from `tokens`
  // when asked for. Throws hone::Error if seq_len <= 0.
  static ExampleSet windows(std::shared_ptr<const TokenSequence> tokens, int64_t seq_len,
                            bool keep_tail = false, int32_t pad_id = 0);

  size_t size() const { return indexed_ ? index_.size() : static_cast<size_t>(count_); }
  bool empty() const { return size() == 0; }
  Example operator[](size_t i) const;
  Example front() const { return (*this)[0]; }
  Example back() const { return (*this)[size() - 1]; }

  // The examples i with mask[i] == keep, in order.
  ExampleSet select(const std::vector<bool>& mask, bool keep) const;
  // Whether these are windows of a token stream (all of one length by construction).
  bool is_windows() const { return tokens_ != nullptr; }

  class const_iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Example;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = Example;
    const_iterator(const ExampleSet* s, size_t i) : s_(s), i_(i) {}
    Example operator*() const { return (*s_)[i_]; }
    const_iterator& operator++() {
      ++i_;
      return *this;
    }
    const_iterator operator++(int) {
      const_iterator old = *this;
      ++i_;
      return old;
    }
    bool operator==(const const_iterator& o) const { return i_ == o.i_; }
    bool operator!=(const const_iterator& o) const { return i_ != o.i_; }

   private:
    const ExampleSet* s_;
    size_t i_;
  };
  const_iterator begin() const { return {this, 0}; }
  const_iterator end() const { return {this, size()}; }

 private:
  size_t base_index(size_t i) const { return indexed_ ? static_cast<size_t>(index_[i]) : i; }

  std::shared_ptr<const std::vector<Example>> held_;
  std::shared_ptr<const TokenSequence> tokens_;
  int64_t seq_ = 0;
  bool keep_tail_ = false;
  int32_t pad_ = 0;
  int64_t count_ = 0;           // examples before any selection
  std::vector<int64_t> index_;  // the selection, when indexed_
  bool indexed_ = false;
};

struct TrainValSplit {
  ExampleSet train;
  ExampleSet val;
};

// Moves round(val_fraction * n) of the n examples (at least 1 when val_fraction > 0, at most n - 1)
// into val, evenly spaced: example i goes to val iff floor((i+1)·v/n) > floor(i·v/n), v being the
// val count. Pure arithmetic on indices, so the split depends on nothing but n and val_fraction;
// both sides keep the input order. Windows are never shared, though a val window and the train
// window before it share their boundary token (see pack_tokens). Throws hone::Error if
// val_fraction is outside [0, 1), or if it is > 0 and there are fewer than 2 examples.
TrainValSplit split_train_val(ExampleSet examples, double val_fraction);

// Whether each of n examples goes to val under split_train_val (for tests and reports).
std::vector<bool> val_mask(int64_t n, double val_fraction);

}  // namespace hone
