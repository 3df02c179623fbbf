// The recipe parser: reads the YAML once and walks it against the key table (recipe_schema.cpp);
// values land in RecipeConfig, problems in one list thrown as a single Error at the end, so a
// user fixes everything in one pass. yaml-cpp is used only by recipe*.cpp (DESIGN.md rule 9).
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "recipes/recipe_parse.h"

namespace hone {
namespace recipe_detail {

std::string quote(const std::string& s) {
  return "\"" + s + "\"";
}

// Shortest text that reads back to the same double, so to_yaml round-trips exactly.
std::string num(double v) {
  if (std::isnan(v)) return ".nan";
  if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// Optimal string alignment distance: Levenshtein plus adjacent transpositions ("rnak" → "rank").
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

// " (did you mean "rank"?)" for the closest choice within a few edits, else "".
std::string did_you_mean(const std::string& word, const std::vector<std::string>& choices) {
  const std::string* best = nullptr;
  size_t best_d = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& c : choices) {
    size_t d = edit_distance(word, c);
    if (d < best_d && d < std::max(word.size(), c.size())) best = &c, best_d = d;
  }
  return best ? " (did you mean " + quote(*best) + "?)" : "";
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

std::string describe(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "null";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  const std::string& s = n.Scalar();
  double d;
  auto r = std::from_chars(s.data(), s.data() + s.size(), d);
  return (r.ec == std::errc() && r.ptr == s.data() + s.size()) ? s : quote(s);
}

std::optional<double> parse_double(std::string s) {
  if (!s.empty() && s[0] == '+') s.erase(0, 1);
  double v;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() || !std::isfinite(v)) return {};
  return v;
}

}  // namespace recipe_detail

namespace {

using namespace recipe_detail;

// ---------------------------------------------------------------------------------------------
// Applying the file, then the overrides.

void apply_document(RecipeConfig& c, const YAML::Node& doc, Diagnostics& d,
                    const std::string& base_dir) {
  const std::string& file = d.file();
  if (Reader::is_null(doc)) return;  // empty file: the required keys are reported later
  std::set<std::string> seen_sections;
  for (const auto& sec : doc) {
    if (!sec.first.IsScalar()) {
      d.raw(file + ": section names must be plain words, got " + describe(sec.first));
      continue;
    }
    const std::string name = sec.first.Scalar();
    const Section* s = find_section(name);
    if (!s) {
      d.raw(file + ": " + name + ": unknown section" + did_you_mean(name, section_names()));
      continue;
    }
    if (!seen_sections.insert(name).second) {
      d.raw(file + ": " + name + ": section appears twice");
      continue;
    }
    if (Reader::is_null(sec.second)) continue;  // "lora:" with nothing under it
    if (!sec.second.IsMap()) {
      d.raw(file + ": " + name + ": expected a mapping of keys, got " + describe(sec.second));
      continue;
    }
    std::set<std::string> seen;
    for (const auto& kv : sec.second) {
      if (!kv.first.IsScalar()) {
        d.raw(file + ": " + name + ": keys must be plain words, got " + describe(kv.first));
        continue;
      }
      const std::string key = kv.first.Scalar();
      const std::string full = name + "." + key;
      const Field* f = find_field(*s, key);
      if (!f) {
        d.raw(file + ": " + full + ": unknown key" + did_you_mean(key, field_names(*s)));
        continue;
      }
      if (!seen.insert(key).second) {
        d.raw(file + ": " + full + ": key appears twice");
        continue;
      }
      d.set_origin(full, file + ": " + full);
      f->set(c, kv.second, Reader{d, full, base_dir});
    }
  }
}

void apply_override(RecipeConfig& c, const std::string& text, Diagnostics& d) {
  const std::string src = "override " + text;
  auto eq = text.find('=');
  if (eq == std::string::npos) {
    d.raw(src + ": expected section.key=value, e.g. training.max_steps=10");
    return;
  }
  const std::string path = text.substr(0, eq);
  const std::string value = text.substr(eq + 1);
  auto dot = path.find('.');
  if (dot == std::string::npos || path.find('.', dot + 1) != std::string::npos) {
    d.raw(src + ": expected section.key=value, e.g. training.max_steps=10");
    return;
  }
  const std::string name = path.substr(0, dot), key = path.substr(dot + 1);
  const Section* s = find_section(name);
  if (!s) {
    d.raw(src + ": unknown section " + quote(name) + did_you_mean(name, section_names()));
    return;
  }
  const Field* f = find_field(*s, key);
  if (!f) {
    d.raw(src + ": unknown key" + did_you_mean(key, field_names(*s)));
    return;
  }
  YAML::Node node;
  try {
    node = YAML::Load(value);
  } catch (const YAML::Exception& e) {
    d.raw(src + ": malformed value: " + e.msg);
    return;
  }
  d.set_origin(path, src);
  f->set(c, node, Reader{d, path, fs::current_path().string()});
}

}  // namespace

RecipeConfig parse_recipe(const std::string& yaml_text, const std::string& source_name,
                          const std::string& base_dir, const std::vector<std::string>& overrides) {
  YAML::Node doc;
  try {
    doc = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    std::string where = source_name;
    if (!e.mark.is_null())
      where += ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
    throw Error(where + ": malformed YAML: " + e.msg);
  }
  // Not a mapping: nothing else can be said, so say only that.
  if (!Reader::is_null(doc) && !doc.IsMap())
    throw Error(source_name + ": expected a mapping of sections (model:, lora:, data:, ...), got " +
                describe(doc));
  fs::path base = base_dir.empty() ? fs::current_path() : fs::absolute(base_dir);
  RecipeConfig c;
  c.source = source_name;
  Diagnostics d(source_name);
  apply_document(c, doc, d, base.lexically_normal().string());
  for (const auto& o : overrides) apply_override(c, o, d);
  derive_defaults(c, d);
  d.begin_rules();
  validate(c, d);
  d.throw_if_any();
  return c;
}

RecipeConfig load_recipe(const std::string& path, const std::vector<std::string>& overrides) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw Error(path + ": is a folder, expected a recipe .yaml file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open recipe (" + std::strerror(errno) + ")");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw Error(path + ": cannot read recipe");
  return parse_recipe(text.str(), path, fs::absolute(path).parent_path().string(), overrides);
}

}  // namespace hone
