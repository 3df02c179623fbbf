// Internal to the recipe parser (recipe*.cpp only; yaml-cpp stays out of recipe.h): the message
// helpers, the problem list, the typed value reader and the key table shared by its files.
#pragma once

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "autograd/error.h"
#include "recipes/recipe.h"

namespace hone::recipe_detail {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Messages

std::string quote(const std::string& s);
// Shortest text that reads back to the same double, so to_yaml round-trips exactly.
std::string num(double v);
template <class I>
std::string inum(I v) {
  return std::to_string(v);
}

// " (did you mean "rank"?)" for the closest choice within a few edits, else "".
std::string did_you_mean(const std::string& word, const std::vector<std::string>& choices);
std::string join(const std::vector<std::string>& v, const std::string& sep);

// ---------------------------------------------------------------------------------------------
// Diagnostics: where each key's value came from, and every problem found, in order.

class Diagnostics {
 public:
  explicit Diagnostics(std::string file) : file_(std::move(file)) {}

  // Records that `key` was set from `prefix` ("recipe.yaml: lora.rank" or "override lora.rank=4").
  // A later setting replaces an earlier one, problems included: an override fixes a bad value.
  void set_origin(const std::string& key, const std::string& prefix) {
    origin_[key] = prefix;
    std::erase_if(lines_, [&](const auto& l) { return l.first == key; });
  }
  bool was_set(const std::string& key) const { return origin_.count(key) != 0; }
  std::string prefix(const std::string& key) const {
    auto it = origin_.find(key);
    return it != origin_.end() ? it->second : file_ + ": " + key;
  }
  void error(const std::string& key, const std::string& msg) {
    if (unreadable_.count(key)) return;  // its read error already says what is wrong
    lines_.emplace_back(key, prefix(key) + ": " + msg);
  }
  // From here on, rules on values skip keys whose value could not be read.
  void begin_rules() {
    for (const auto& l : lines_)
      if (!l.first.empty()) unreadable_.insert(l.first);
  }
  // A problem tied to no single value (unknown key, malformed override, cross-field rule).
  void raw(const std::string& line) { lines_.emplace_back("", line); }
  const std::string& file() const { return file_; }

  void throw_if_any() const {
    if (lines_.empty()) return;
    std::vector<std::string> out;
    for (const auto& l : lines_) out.push_back(l.second);
    throw Error(join(out, "\n"));
  }

 private:
  std::string file_;
  std::map<std::string, std::string> origin_;
  std::vector<std::pair<std::string, std::string>> lines_;  // (key or "", message line)
  std::set<std::string> unreadable_;
};

// Reading one value: typed, with a message naming what was expected and what was found.

std::string describe(const YAML::Node& n);
std::optional<double> parse_double(std::string s);

template <class I>
std::optional<I> parse_int(std::string s) {
  if (!s.empty() && s[0] == '+') s.erase(0, 1);
  I v;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec == std::errc() && r.ptr == s.data() + s.size()) return v;
  // 1e3 is an integer too.
  auto d = parse_double(s);
  if (d && std::floor(*d) == *d && *d >= static_cast<double>(std::numeric_limits<I>::min()) &&
      *d <= static_cast<double>(std::numeric_limits<I>::max()))
    return static_cast<I>(*d);
  return {};
}
struct Reader {
  Diagnostics& diag;
  std::string key;       // full key path, e.g. "lora.rank"
  std::string base_dir;  // relative paths resolve against this

  void fail(const std::string& msg) const { diag.error(key, msg); }
  void expected(const char* what, const YAML::Node& n) const {
    fail(std::string("expected ") + what + ", got " + describe(n));
  }
  static bool is_null(const YAML::Node& n) { return !n.IsDefined() || n.IsNull(); }

  std::optional<double> number(const YAML::Node& n) const {
    std::optional<double> v;
    if (n.IsScalar()) v = parse_double(n.Scalar());
    if (!v) expected("a number", n);
    return v;
  }
  template <class I>
  std::optional<I> integer(const YAML::Node& n) const {
    std::optional<I> v;
    if (n.IsScalar()) v = parse_int<I>(n.Scalar());
    if (!v) {
      // A negative value for an unsigned field is a range problem, not a type problem.
      if (std::is_unsigned_v<I> && n.IsScalar() && parse_int<int64_t>(n.Scalar()))
        fail("must be >= 0 (got " + n.Scalar() + ")");
      else
        expected(std::is_unsigned_v<I> ? "a non-negative integer" : "an integer", n);
    }
    return v;
  }
  std::optional<bool> boolean(const YAML::Node& n) const {
    if (n.IsScalar()) {
      std::string s = n.Scalar();
      std::transform(s.begin(), s.end(), s.begin(),
                     [](unsigned char c) { return std::tolower(c); });
      if (s == "true" || s == "yes" || s == "on") return true;
      if (s == "false" || s == "no" || s == "off") return false;
    }
    expected("true or false", n);
    return {};
  }
  // Null reads as "" (unset).
  std::optional<std::string> string(const YAML::Node& n) const {
    if (is_null(n)) return std::string();
    if (n.IsScalar()) return n.Scalar();
    expected("a string", n);
    return {};
  }
  std::optional<std::string> path(const YAML::Node& n) const {
    auto s = string(n);
    if (!s || s->empty()) return s;
    fs::path p = *s;
    if (const char* home = std::getenv("HOME"); home && (*s == "~" || s->starts_with("~/")))
      p = std::string(home) + s->substr(1);
    if (p.is_relative()) p = fs::path(base_dir) / p;
    std::string out = p.lexically_normal().string();
    while (out.size() > 1 && out.back() == '/') out.pop_back();
    return out;
  }
  // A list, or a single scalar taken as a list of one.
  template <class T, class F>
  std::optional<std::vector<T>> list(const YAML::Node& n, F item) const {
    std::vector<T> out;
    if (is_null(n)) return out;
    if (n.IsScalar()) {
      auto v = item(n);
      if (!v) return {};
      out.push_back(*v);
      return out;
    }
    if (!n.IsSequence()) {
      expected("a list", n);
      return {};
    }
    for (const auto& e : n) {
      auto v = item(e);
      if (!v) return {};
      out.push_back(*v);
    }
    return out;
  }
};
using Setter = std::function<void(RecipeConfig&, const YAML::Node&, const Reader&)>;
struct Field {
  std::string key;
  Setter set;
};
struct Section {
  std::string name;
  std::vector<Field> fields;
};

// The key table, in the order to_yaml writes the keys.
const std::vector<Section>& schema();
const Section* find_section(const std::string& name);
const Field* find_field(const Section& s, const std::string& key);
std::vector<std::string> section_names();
std::vector<std::string> field_names(const Section& s);

// Defaults that depend on other keys, filled in only where the recipe left them unset.
void derive_defaults(RecipeConfig& c, const Diagnostics& d);
// Rules on the final values (file and overrides applied), each naming where the value came from.
void validate(const RecipeConfig& c, Diagnostics& d);

}  // namespace hone::recipe_detail
