// Helpers shared by the instruction/chat data tests: reading what an example trains on.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "data/instruct_dataset.h"

namespace hone::test {

inline std::vector<int32_t> concat(std::initializer_list<std::vector<int32_t>> parts) {
  std::vector<int32_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// The tokens flagged as targets.
inline std::vector<int32_t> targets_of(const TokenizedExample& ex) {
  std::vector<int32_t> out;
  for (size_t i = 0; i < ex.tokens.size(); ++i)
    if (ex.target[i]) out.push_back(ex.tokens[i]);
  return out;
}

// Maximal runs of target tokens, in order.
inline std::vector<std::vector<int32_t>> target_spans(const TokenizedExample& ex) {
  std::vector<std::vector<int32_t>> out;
  bool in = false;
  for (size_t i = 0; i < ex.tokens.size(); ++i) {
    if (ex.target[i]) {
      if (!in) out.emplace_back();
      out.back().push_back(ex.tokens[i]);
    }
    in = ex.target[i] != 0;
  }
  return out;
}

inline InstructOptions opts(const std::string& format) {
  InstructOptions o;
  o.format = format;
  o.seq_len = 4096;
  return o;
}

}  // namespace hone::test
