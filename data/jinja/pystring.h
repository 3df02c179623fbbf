// Python string semantics the Jinja evaluator needs (HF templates are written against Python's
// str): code-point indexing, strip/split/replace/title/capitalize, slices, HTML escaping,
// floor division. Pure functions on values; errors are RuntimeFailure (value.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/jinja/value.h"

namespace hone::jinja::pystr {

struct CodePoint {
  uint32_t cp;
  size_t off, len;  // byte offset and length in the source string
};

std::vector<CodePoint> decode(const std::string& s);
size_t cp_length(const std::string& s);
bool py_space(uint32_t c);
std::string py_strip(const std::string& s, const Value* chars, bool left, bool right);
std::vector<std::string> py_split(const std::string& s, const Value* sep, int64_t maxsplit);
std::string ascii_map(std::string s, int (*f)(int));
std::string py_title(const std::string& s);
std::string py_capitalize(const std::string& s);
std::string py_replace(const std::string& s, const std::string& from, const std::string& to,
                       int64_t count);
// Python's range of indices for s[start:stop:step] over n items (None = default).
std::vector<int64_t> slice_positions(int64_t n, const Value& start_v, const Value& stop_v,
                                     const Value& step_v);
// markupsafe's escape (Jinja's `e` filter): & < > " ' as &amp; &lt; &gt; &#34; &#39;. Safe in HTML
// element content and quoted attribute values, so the training report uses it too.
std::string html_escape(const std::string& s);
// Python's // on integers (rounds toward negative infinity).
int64_t floor_div(int64_t a, int64_t b);

}  // namespace hone::jinja::pystr
