#include "data/text_check.h"

#include <cstdio>

#include "autograd/error.h"

namespace hone {

void TextCheck::bad(int64_t at) {
  ++invalid_;
  if (first_invalid_ < 0) first_invalid_ = at;
}

void TextCheck::feed(std::string_view s) {
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    const int64_t at = bytes_++;
    if (c == 0) {
      ++nul_;
      if (first_nul_ < 0) first_nul_ = at;
    }
    if (need_ > 0) {
      if (c >= lo_ && c <= hi_) {
        lo_ = 0x80;
        hi_ = 0xBF;
        if (--need_ == 0) ++chars_;
        continue;
      }
      // The maximal subpart so far is one invalid sequence; this byte starts afresh.
      bad(start_);
      need_ = 0;
    }
    lo_ = 0x80;
    hi_ = 0xBF;
    start_ = at;
    if (c < 0x80) {
      ++chars_;
    } else if (c >= 0xC2 && c <= 0xDF) {
      need_ = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      need_ = 2;
      if (c == 0xE0) lo_ = 0xA0;  // no overlong forms
      if (c == 0xED) hi_ = 0x9F;  // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      need_ = 3;
      if (c == 0xF0) lo_ = 0x90;
      if (c == 0xF4) hi_ = 0x8F;  // nothing past U+10FFFF
    } else {
      bad(at);
    }
  }
}

void TextCheck::finish() {
  if (need_ > 0) bad(start_);
  need_ = 0;
}

std::string TextCheck::verdict(const std::string& path, double max_invalid_share) const {
  if (nul_ > 0) {
    throw Error(path + ": not a text file: " + std::to_string(nul_) + " NUL bytes in " +
                std::to_string(bytes_) + " (the first at byte " + std::to_string(first_nul_) +
                "); text data must be UTF-8 text");
  }
  if (invalid_ == 0) return "";
  const double share = static_cast<double>(invalid_) / static_cast<double>(invalid_ + chars_);
  char pct[32];
  std::snprintf(pct, sizeof pct, "%.2f%%", 100.0 * share);
  const std::string counts = std::to_string(invalid_) + " invalid UTF-8 sequences among " +
                             std::to_string(invalid_ + chars_) + " (" + pct +
                             "; the first at byte " + std::to_string(first_invalid_) + ")";
  if (share > max_invalid_share) {
    char lim[32];
    std::snprintf(lim, sizeof lim, "%g%%", 100.0 * max_invalid_share);
    throw Error(path + ": not a UTF-8 text file: " + counts + ", more than " + lim +
                " allowed; convert it to UTF-8 (e.g. iconv) or remove it from the corpus");
  }
  return path + ": " + counts + "; each is tokenized as U+FFFD or its raw bytes";
}

}  // namespace hone
