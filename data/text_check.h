// Is a file text? Streaming counts of NUL bytes and invalid UTF-8 over a file's bytes, so a
// binary file (a model, an executable) is refused before it is trained on as if it were prose.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace hone {

class TextCheck {
 public:
  // Feeds the next bytes of the file; a sequence may continue across calls.
  void feed(std::string_view bytes);
  // Ends the file: an unfinished sequence at its end counts as one invalid sequence.
  void finish();

  int64_t bytes() const { return bytes_; }
  int64_t chars() const { return chars_; }      // valid codepoints
  int64_t invalid() const { return invalid_; }  // maximal invalid subsequences (WHATWG rule)
  int64_t nul() const { return nul_; }
  int64_t first_nul() const { return first_nul_; }          // byte offset, -1 if none
  int64_t first_invalid() const { return first_invalid_; }  // byte offset, -1 if none

  // Refuses (throws hone::Error naming `path` and the counts) when the file holds a NUL byte or
  // more than `max_invalid_share` of its sequences are invalid UTF-8; returns a warning ("" when
  // none) when some sequences are invalid but fewer than that.
  std::string verdict(const std::string& path, double max_invalid_share = 0.01) const;

 private:
  void bad(int64_t at);

  int64_t bytes_ = 0, chars_ = 0, invalid_ = 0, nul_ = 0;
  int64_t first_nul_ = -1, first_invalid_ = -1;
  // The sequence in progress: bytes still expected, the range its next byte must fall in, and
  // the offset where it started.
  int need_ = 0;
  unsigned char lo_ = 0x80, hi_ = 0xBF;
  int64_t start_ = 0;
};

}  // namespace hone
