#include "data/jinja/pystring.h"

#include <algorithm>
#include <cctype>
#include <climits>

namespace hone::jinja::pystr {

// ---- UTF-8: Python strings index by code point, so length, slicing and strip do too ----

std::vector<CodePoint> decode(const std::string& s) {
  std::vector<CodePoint> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    if (i + len > s.size()) len = 1;
    uint32_t cp = len == 1 ? c : (c & (0x7F >> len));
    for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    out.push_back({cp, i, len});
    i += len;
  }
  return out;
}

size_t cp_length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// str.isspace() for the characters Python counts as whitespace.
bool py_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

// Python str.strip/lstrip/rstrip; chars == nullptr strips whitespace.
std::string py_strip(const std::string& s, const Value* chars, bool left, bool right) {
  std::vector<uint32_t> set;
  bool ws = !chars || chars->is_none() || chars->is_undefined();
  if (!ws)
    for (const auto& c : decode(chars->str())) set.push_back(c.cp);
  auto strip_it = [&](uint32_t cp) {
    return ws ? py_space(cp) : std::find(set.begin(), set.end(), cp) != set.end();
  };
  auto cps = decode(s);
  size_t b = 0, e = cps.size();
  if (left)
    while (b < e && strip_it(cps[b].cp)) ++b;
  if (right)
    while (e > b && strip_it(cps[e - 1].cp)) --e;
  if (b == e) return "";
  size_t from = cps[b].off, to = cps[e - 1].off + cps[e - 1].len;
  return s.substr(from, to - from);
}

std::vector<std::string> py_split(const std::string& s, const Value* sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (!sep || sep->is_none() || sep->is_undefined()) {  // runs of whitespace, no empty pieces
    auto cps = decode(s);
    size_t i = 0;
    while (i < cps.size()) {
      while (i < cps.size() && py_space(cps[i].cp)) ++i;
      if (i == cps.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        size_t e = cps.size();
        while (e > i && py_space(cps[e - 1].cp)) --e;
        out.push_back(s.substr(cps[i].off, cps[e - 1].off + cps[e - 1].len - cps[i].off));
        return out;
      }
      size_t j = i;
      while (j < cps.size() && !py_space(cps[j].cp)) ++j;
      size_t end = j < cps.size() ? cps[j].off : s.size();
      out.push_back(s.substr(cps[i].off, end - cps[i].off));
      i = j;
    }
    return out;
  }
  const std::string d = sep->str();
  if (d.empty()) throw RuntimeFailure{"empty separator"};
  size_t start = 0;
  for (;;) {
    size_t at = s.find(d, start);
    if (at == std::string::npos || (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit))
      break;
    out.push_back(s.substr(start, at - start));
    start = at + d.size();
  }
  out.push_back(s.substr(start));
  return out;
}

std::string ascii_map(std::string s, int (*f)(int)) {
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x80)
      c = static_cast<char>(f(static_cast<unsigned char>(c)));
  return s;
}

std::string py_title(const std::string& s) {
  std::string out = s;
  bool prev_cased = false;
  for (char& c : out) {
    unsigned char u = static_cast<unsigned char>(c);
    bool alpha = std::isalpha(u) != 0;
    if (alpha) c = static_cast<char>(prev_cased ? std::tolower(u) : std::toupper(u));
    prev_cased = alpha || u >= 0x80;
  }
  return out;
}

std::string py_capitalize(const std::string& s) {
  std::string out = ascii_map(s, [](int c) { return std::tolower(c); });
  if (!out.empty() && static_cast<unsigned char>(out[0]) < 0x80)
    out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
  return out;
}

std::string py_replace(const std::string& s, const std::string& from, const std::string& to,
                       int64_t count) {
  std::string out;
  if (from.empty()) {  // Python inserts `to` between every code point
    auto cps = decode(s);
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count < 0 || static_cast<int64_t>(i) < count) out += to;
      if (i < cps.size()) out += s.substr(cps[i].off, cps[i].len);
    }
    return out;
  }
  size_t start = 0;
  int64_t done = 0;
  for (;;) {
    size_t at = s.find(from, start);
    if (at == std::string::npos || (count >= 0 && done == count)) break;
    out += s.substr(start, at - start) + to;
    start = at + from.size();
    ++done;
  }
  return out + s.substr(start);
}

// Python's slice.indices() and the gathered positions.
std::vector<int64_t> slice_positions(int64_t n, const Value& start_v, const Value& stop_v,
                                     const Value& step_v) {
  auto given = [](const Value& v) { return !v.is_undefined() && !v.is_none(); };
  int64_t step = given(step_v) ? step_v.as_int() : 1;
  if (step == 0) throw RuntimeFailure{"slice step cannot be zero"};
  int64_t lower = step < 0 ? -1 : 0, upper = step < 0 ? n - 1 : n;
  auto clamp = [&](const Value& v, int64_t def) {
    if (!given(v)) return def;
    int64_t x = v.as_int();
    if (x < 0) {
      x += n;
      if (x < lower) x = lower;
    } else if (x > upper) {
      x = upper;
    }
    return x;
  };
  int64_t start = clamp(start_v, step < 0 ? upper : lower);
  int64_t stop = clamp(stop_v, step < 0 ? lower : upper);
  std::vector<int64_t> out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out.push_back(i);
  return out;
}

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

}  // namespace hone::jinja::pystr
