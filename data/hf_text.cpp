// ICU (NFC) and UTF-8 helpers; see hf_text.h.
#include "data/hf_text.h"

#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include "autograd/error.h"

namespace hone::hftext {

namespace {

// Length of the valid sequence at s[i], or 0 with `bad_len` = bytes forming the maximal invalid
// subpart (at least 1), following the WHATWG UTF-8 decoder.
size_t scan(std::string_view s, size_t i, size_t& bad_len, bool& truncated) {
  const auto c = static_cast<unsigned char>(s[i]);
  truncated = false;
  if (c < 0x80) return 1;
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    bad_len = 1;
    return 0;
  }
  size_t k = 1;
  for (; k <= need; ++k) {
    if (i + k >= s.size()) {
      truncated = true;
      bad_len = k;
      return 0;
    }
    const auto b = static_cast<unsigned char>(s[i + k]);
    if (b < lo || b > hi) {
      bad_len = k;
      return 0;
    }
    lo = 0x80;
    hi = 0xBF;
  }
  return need + 1;
}

}  // namespace

bool is_valid_utf8(std::string_view s) {
  size_t i = 0, bad = 0;
  bool trunc = false;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t n = scan(s, i, bad, trunc);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string repair_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0, bad = 0;
  bool trunc = false;
  while (i < s.size()) {
    const size_t n = scan(s, i, bad, trunc);
    if (n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      i += bad;
    }
  }
  return out;
}

size_t complete_utf8_prefix(std::string_view s) {
  // Only the last (up to 3) bytes can be an unfinished sequence.
  const size_t start = s.size() > 3 ? s.size() - 3 : 0;
  for (size_t i = start; i < s.size(); ++i) {
    size_t bad = 0;
    bool trunc = false;
    if (static_cast<unsigned char>(s[i]) >= 0xC0 && scan(s, i, bad, trunc) == 0 && trunc) {
      return i;
    }
  }
  return s.size();
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string nfc(std::string_view s) {
  bool ascii = true;
  for (char c : s) ascii &= static_cast<unsigned char>(c) < 0x80;
  if (ascii) return std::string(s);
  UErrorCode err = U_ZERO_ERROR;
  const UNormalizer2* norm = unorm2_getNFCInstance(&err);
  if (U_FAILURE(err)) throw Error(std::string("NFC: ICU: ") + u_errorName(err));
  std::u16string in(s.size(), u'\0');
  int32_t in_len = 0;
  u_strFromUTF8(reinterpret_cast<UChar*>(in.data()), static_cast<int32_t>(in.size()), &in_len,
                s.data(), static_cast<int32_t>(s.size()), &err);
  if (U_FAILURE(err)) throw Error(std::string("NFC: invalid UTF-8: ") + u_errorName(err));
  const auto* src = reinterpret_cast<const UChar*>(in.data());
  if (unorm2_isNormalized(norm, src, in_len, &err) && U_SUCCESS(err)) return std::string(s);
  err = U_ZERO_ERROR;
  std::u16string out(static_cast<size_t>(in_len) * 3 + 8, u'\0');
  const int32_t out_len = unorm2_normalize(norm, src, in_len, reinterpret_cast<UChar*>(out.data()),
                                           static_cast<int32_t>(out.size()), &err);
  if (U_FAILURE(err)) throw Error(std::string("NFC: ICU: ") + u_errorName(err));
  std::string res(static_cast<size_t>(out_len) * 3 + 4, '\0');
  int32_t res_len = 0;
  u_strToUTF8(res.data(), static_cast<int32_t>(res.size()), &res_len,
              reinterpret_cast<const UChar*>(out.data()), out_len, &err);
  if (U_FAILURE(err)) throw Error(std::string("NFC: ICU: ") + u_errorName(err));
  res.resize(static_cast<size_t>(res_len));
  return res;
}

}  // namespace hone::hftext
