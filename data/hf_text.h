// Text helpers for the Hugging Face tokenizer: UTF-8 checks and repair, Unicode NFC (through
// ICU, the only file that touches it: hf_text.cpp) and PCRE2 regexes (hf_regex.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hone::hftext {

bool is_valid_utf8(std::string_view s);

// Invalid bytes become U+FFFD the way WHATWG's TextDecoder does it (one per maximal invalid
// subsequence), so decoded byte soup matches transformers.js / Python's errors="replace".
std::string repair_utf8(std::string_view s);

// Length of the longest prefix of `s` that does not end inside an incomplete (but so far valid)
// multi-byte sequence: what a streaming decoder may print now.
size_t complete_utf8_prefix(std::string_view s);

// Unicode Normalization Form C of valid UTF-8 text (ASCII returns at once).
std::string nfc(std::string_view s);

// Length in bytes of the UTF-8 sequence starting with lead byte `c` (1 for invalid leads).
inline size_t utf8_len(unsigned char c) {
  return c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
}

void append_utf8(std::string& out, uint32_t cp);

// A compiled PCRE2 pattern (UTF + UCP, JIT when available). `\s` and `\S` are rewritten to
// JavaScript's whitespace set (which includes U+FEFF), since the reference tokenizers are
// transformers.js and Hugging Face's own regexes were written for Oniguruma/JS semantics.
class Regex {
 public:
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends [begin, end) byte offsets of every non-overlapping match in `s` (valid UTF-8),
  // scanning left to right as JavaScript's matchAll does; empty matches are skipped.
  void find_all(std::string_view s, std::vector<std::pair<uint32_t, uint32_t>>& out) const;

 private:
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

}  // namespace hone::hftext
