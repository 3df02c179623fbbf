// A byte-level tokenizer for data tests: byte b is id b + 3, BOS = 1, EOS = 2, so expected token
// streams can be written by hand. `extra_bos` imitates a tokenizer whose own template adds a BOS
// on top of the one asked for.
#pragma once

#include <string>
#include <vector>

#include "data/tokenizer.h"

namespace hone::test {

class ByteTokenizer final : public Tokenizer {
 public:
  explicit ByteTokenizer(bool extra_bos = false) : extra_bos_(extra_bos) {}
  std::vector<int32_t> encode(const std::string& text, bool add_bos, bool add_eos) const override {
    std::vector<int32_t> ids;
    if (add_bos) ids.push_back(1);
    if (add_bos && extra_bos_) ids.push_back(1);
    for (unsigned char c : text) ids.push_back(static_cast<int32_t>(c) + 3);
    if (add_eos) ids.push_back(2);
    return ids;
  }
  std::string decode_token(int32_t, int32_t id) const override {
    return id >= 3 ? std::string(1, static_cast<char>(id - 3)) : std::string();
  }
  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string s;
    for (int32_t id : ids) s += decode_token(-1, id);
    return s;
  }
  int32_t bos_id() const override { return 1; }
  int32_t eos_id() const override { return 2; }
  int32_t vocab_size() const override { return 259; }

 private:
  bool extra_bos_;
};

// The ids ByteTokenizer gives `text` without BOS/EOS.
inline std::vector<int32_t> bytes_of(const std::string& text) {
  std::vector<int32_t> ids;
  for (unsigned char c : text) ids.push_back(static_cast<int32_t>(c) + 3);
  return ids;
}

}  // namespace hone::test
