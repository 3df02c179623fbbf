// Token windows for causal LM training: one token stream cut into examples of T inputs and the
// T next tokens as targets, and a deterministic train/val split of the examples.
#pragma once

#include <cstdint>
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

struct TrainValSplit {
  std::vector<Example> train;
  std::vector<Example> val;
};

// Moves round(val_fraction * n) of the n examples (at least 1 when val_fraction > 0, at most n - 1)
// into val, evenly spaced: example i goes to val iff floor((i+1)·v/n) > floor(i·v/n), v being the
// val count. Pure arithmetic on indices, so the split depends on nothing but n and val_fraction;
// both sides keep the input order. Windows are never shared, though a val window and the train
// window before it share their boundary token (see pack_tokens). Throws hone::Error if
// val_fraction is outside [0, 1), or if it is > 0 and there are fewer than 2 examples.
TrainValSplit split_train_val(std::vector<Example> examples, double val_fraction);

// Whether each of n examples goes to val under split_train_val (for tests and reports).
std::vector<bool> val_mask(int64_t n, double val_fraction);

}  // namespace hone
