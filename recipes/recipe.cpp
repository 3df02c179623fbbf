// The recipe parser: the one file that touches yaml-cpp (DESIGN.md principle 9). The YAML tree
// is walked once against a table of known keys; values land in RecipeConfig, problems in one list
// that is thrown as a single Error at the end, so a user fixes everything in one pass.
#include "recipes/recipe.h"

#include <glob.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include "autograd/error.h"

namespace hone {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Messages

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

template <class I>
std::string inum(I v) {
  return std::to_string(v);
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

// ---------------------------------------------------------------------------------------------
// Reading one value: typed, with a message naming what was expected and what was found.

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

// ---------------------------------------------------------------------------------------------
// The schema: every section and key, in the order to_yaml writes them.

using Setter = std::function<void(RecipeConfig&, const YAML::Node&, const Reader&)>;
struct Field {
  std::string key;
  Setter set;
};
struct Section {
  std::string name;
  std::vector<Field> fields;
};

template <class Get>
Field number_field(const char* key, Get get) {
  return {key, [get](RecipeConfig& c, const YAML::Node& n, const Reader& r) {
            if (auto v = r.number(n)) get(c) = *v;
          }};
}
template <class Get>
Field int_field(const char* key, Get get) {
  return {key, [get](RecipeConfig& c, const YAML::Node& n, const Reader& r) {
            using T = std::remove_reference_t<decltype(get(c))>;
            if (auto v = r.integer<T>(n)) get(c) = *v;
          }};
}
// max_steps / epochs: null clears the value.
template <class Get>
Field optional_int_field(const char* key, Get get) {
  return {key, [get](RecipeConfig& c, const YAML::Node& n, const Reader& r) {
            if (Reader::is_null(n))
              get(c).reset();
            else if (auto v = r.integer<int64_t>(n))
              get(c) = *v;
          }};
}
template <class Get>
Field bool_field(const char* key, Get get) {
  return {key, [get](RecipeConfig& c, const YAML::Node& n, const Reader& r) {
            if (auto v = r.boolean(n)) get(c) = *v;
          }};
}
template <class Get>
Field string_field(const char* key, Get get) {
  return {key, [get](RecipeConfig& c, const YAML::Node& n, const Reader& r) {
            if (auto v = r.string(n)) get(c) = *v;
          }};
}
template <class Get>
Field path_field(const char* key, Get get) {
  return {key, [get](RecipeConfig& c, const YAML::Node& n, const Reader& r) {
            if (auto v = r.path(n)) get(c) = *v;
          }};
}

const std::vector<Section>& schema() {
  static const std::vector<Section> s = {
      {"model",
       {path_field(
            "path", [](RecipeConfig & c) -> auto& { return c.model.path; }),
        path_field(
            "tokenizer", [](RecipeConfig & c) -> auto& { return c.model.tokenizer; }),
        string_field(
            "dtype", [](RecipeConfig & c) -> auto& { return c.model.dtype; })}},
      {"lora",
       {int_field(
            "rank", [](RecipeConfig & c) -> auto& { return c.lora.rank; }),
        number_field(
            "alpha", [](RecipeConfig & c) -> auto& { return c.lora.alpha; }),
        number_field(
            "dropout", [](RecipeConfig & c) -> auto& { return c.lora.dropout; }),
        {"targets",
         [](RecipeConfig& c, const YAML::Node& n, const Reader& r) {
           if (auto v = r.list<std::string>(n, [&](const YAML::Node& e) {
                 return e.IsScalar() ? std::optional<std::string>(e.Scalar())
                                     : (r.expected("a list of projection names", e),
                                        std::optional<std::string>());
               }))
             c.lora.targets = *v;
         }},
        {"layers",
         [](RecipeConfig& c, const YAML::Node& n, const Reader& r) {
           if (auto v = r.list<int>(n, [&](const YAML::Node& e) { return r.integer<int>(e); }))
             c.lora.layers = *v;
         }},
        bool_field(
            "rslora", [](RecipeConfig & c) -> auto& { return c.lora.rslora; }),
        int_field(
            "seed", [](RecipeConfig & c) -> auto& { return c.lora.seed; })}},
      {"data",
       {path_field(
            "train", [](RecipeConfig & c) -> auto& { return c.data.train; }),
        path_field(
            "val", [](RecipeConfig & c) -> auto& { return c.data.val; }),
        number_field(
            "val_fraction", [](RecipeConfig & c) -> auto& { return c.data.val_fraction; }),
        string_field(
            "format", [](RecipeConfig & c) -> auto& { return c.data.format; }),
        int_field(
            "seq_len", [](RecipeConfig & c) -> auto& { return c.data.seq_len; }),
        bool_field(
            "packing", [](RecipeConfig & c) -> auto& { return c.data.packing; }),
        int_field(
            "shuffle_seed", [](RecipeConfig & c) -> auto& { return c.data.shuffle_seed; }),
        bool_field(
            "add_bos", [](RecipeConfig & c) -> auto& { return c.data.add_bos; }),
        bool_field(
            "add_eos", [](RecipeConfig & c) -> auto& { return c.data.add_eos; })}},
      {"training",
       {int_field(
            "batch_size", [](RecipeConfig & c) -> auto& { return c.training.batch_size; }),
        int_field(
            "grad_accum", [](RecipeConfig & c) -> auto& { return c.training.grad_accum; }),
        optional_int_field(
            "max_steps", [](RecipeConfig & c) -> auto& { return c.training.max_steps; }),
        optional_int_field(
            "epochs", [](RecipeConfig & c) -> auto& { return c.training.epochs; }),
        int_field(
            "seed", [](RecipeConfig & c) -> auto& { return c.training.seed; }),
        {"grad_clip",
         [](RecipeConfig& c, const YAML::Node& n, const Reader& r) {
           // null / none / off switch clipping off, like 0.
           if (Reader::is_null(n) ||
               (n.IsScalar() && (n.Scalar() == "none" || n.Scalar() == "off")))
             c.training.grad_clip = 0.0;
           else if (auto v = r.number(n))
             c.training.grad_clip = *v;
         }},
        int_field(
            "threads", [](RecipeConfig & c) -> auto& { return c.training.threads; })}},
      {"optimizer",
       {string_field(
            "name", [](RecipeConfig & c) -> auto& { return c.optimizer.name; }),
        number_field(
            "lr", [](RecipeConfig & c) -> auto& { return c.optimizer.lr; }),
        {"betas",
         [](RecipeConfig& c, const YAML::Node& n, const Reader& r) {
           if (!n.IsSequence() || n.size() != 2) return r.expected("a list [beta1, beta2]", n);
           auto b1 = r.number(n[0]);
           auto b2 = r.number(n[1]);
           if (b1 && b2) c.optimizer.beta1 = *b1, c.optimizer.beta2 = *b2;
         }},
        number_field(
            "eps", [](RecipeConfig & c) -> auto& { return c.optimizer.eps; }),
        number_field(
            "weight_decay", [](RecipeConfig & c) -> auto& { return c.optimizer.weight_decay; }),
        number_field(
            "momentum", [](RecipeConfig & c) -> auto& { return c.optimizer.momentum; })}},
      {"scheduler",
       {string_field(
            "name", [](RecipeConfig & c) -> auto& { return c.scheduler.name; }),
        int_field(
            "warmup_steps", [](RecipeConfig & c) -> auto& { return c.scheduler.warmup_steps; }),
        number_field(
            "min_lr", [](RecipeConfig & c) -> auto& { return c.scheduler.min_lr; })}},
      {"eval",
       {int_field(
            "every", [](RecipeConfig & c) -> auto& { return c.eval.every; }),
        int_field(
            "max_batches", [](RecipeConfig & c) -> auto& { return c.eval.max_batches; })}},
      {"checkpoint",
       {path_field(
            "dir", [](RecipeConfig & c) -> auto& { return c.checkpoint.dir; }),
        int_field(
            "every", [](RecipeConfig & c) -> auto& { return c.checkpoint.every; }),
        int_field(
            "keep", [](RecipeConfig & c) -> auto& { return c.checkpoint.keep; })}},
      {"output",
       {path_field(
           "dir", [](RecipeConfig & c) -> auto& { return c.output.dir; })}},
      {"logging",
       {int_field(
            "every", [](RecipeConfig & c) -> auto& { return c.logging.every; }),
        path_field(
            "metrics_file", [](RecipeConfig & c) -> auto& { return c.logging.metrics_file; })}},
  };
  return s;
}

const Section* find_section(const std::string& name) {
  for (const auto& s : schema())
    if (s.name == name) return &s;
  return nullptr;
}
const Field* find_field(const Section& s, const std::string& key) {
  for (const auto& f : s.fields)
    if (f.key == key) return &f;
  return nullptr;
}
std::vector<std::string> section_names() {
  std::vector<std::string> v;
  for (const auto& s : schema()) v.push_back(s.name);
  return v;
}
std::vector<std::string> field_names(const Section& s) {
  std::vector<std::string> v;
  for (const auto& f : s.fields) v.push_back(f.key);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Applying the file, then the overrides.

void apply_document(RecipeConfig& c, const YAML::Node& doc, Diagnostics& d,
                    const std::string& base_dir) {
  const std::string& file = d.file();
  if (Reader::is_null(doc)) return;  // empty file: the required keys are reported later
  if (!doc.IsMap()) {
    d.raw(file + ": expected a mapping of sections (model:, lora:, data:, ...), got " +
          describe(doc));
    return;
  }
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

// ---------------------------------------------------------------------------------------------
// Rules on the final values (file and overrides applied), each naming where the value came from.

void one_of(Diagnostics& d, const std::string& key, const std::string& v,
            const std::vector<std::string>& allowed) {
  if (std::find(allowed.begin(), allowed.end(), v) != allowed.end()) return;
  d.error(key, "must be one of " + join(allowed, ", ") + " (got " + quote(v) + ")" +
                   did_you_mean(v, allowed));
}

void validate(const RecipeConfig& c, Diagnostics& d) {
  auto check = [&](bool ok, const std::string& key, const std::string& msg) {
    if (!ok) d.error(key, msg);
  };
  auto required = [&](const std::string& v, const std::string& key, const std::string& what) {
    if (v.empty())
      d.error(key, d.was_set(key) ? "must not be empty (" + what + ")"
                                  : "required key missing (" + what + ")");
  };
  const std::string& file = d.file();

  required(c.model.path, "model.path", "the base model: HF folder, .safetensors or llama2.c .bin");
  one_of(d, "model.dtype", c.model.dtype, {"f32", "bf16", "f16"});

  const auto& l = c.lora;
  check(l.rank > 0, "lora.rank", "must be > 0 (got " + inum(l.rank) + ")");
  check(l.alpha > 0, "lora.alpha", "must be > 0 (got " + num(l.alpha) + ")");
  check(l.dropout >= 0 && l.dropout < 1, "lora.dropout",
        "must be in [0, 1) (got " + num(l.dropout) + ")");
  check(!l.targets.empty(), "lora.targets", "must name at least one projection");
  std::vector<std::string> kinds = lora_target_kinds();
  kinds.push_back("all-linear");
  std::set<std::string> seen_t;
  for (const auto& t : l.targets) {
    if (t == "all-linear" && l.targets.size() > 1)
      d.error("lora.targets", "\"all-linear\" must be the only entry");
    else if (std::find(kinds.begin(), kinds.end(), t) == kinds.end())
      d.error("lora.targets", "unknown target " + quote(t) + did_you_mean(t, kinds) +
                                  "; expected " + join(lora_target_kinds(), ", ") +
                                  ", or all-linear alone");
    else if (!seen_t.insert(t).second)
      d.error("lora.targets", "lists " + quote(t) + " twice");
  }
  std::set<int> seen_l;
  for (int layer : l.layers) {
    if (layer < 0)
      d.error("lora.layers", "layer indices must be >= 0 (got " + inum(layer) + ")");
    else if (!seen_l.insert(layer).second)
      d.error("lora.layers", "lists layer " + inum(layer) + " twice");
  }

  required(c.data.train, "data.train", "a text file, a folder of .txt/.md files, or a glob");
  check(c.data.val_fraction >= 0 && c.data.val_fraction < 1, "data.val_fraction",
        "must be in [0, 1) (got " + num(c.data.val_fraction) + ")");
  if (!c.data.val.empty() && c.data.val_fraction > 0)
    d.raw(file + ": data: val and val_fraction are both set; set only one");
  one_of(d, "data.format", c.data.format, {"text"});
  check(c.data.seq_len > 0, "data.seq_len", "must be > 0 (got " + inum(c.data.seq_len) + ")");

  const auto& t = c.training;
  check(t.batch_size > 0, "training.batch_size", "must be > 0 (got " + inum(t.batch_size) + ")");
  check(t.grad_accum > 0, "training.grad_accum", "must be > 0 (got " + inum(t.grad_accum) + ")");
  if (t.max_steps && t.epochs)
    d.raw(file + ": training: max_steps (" + inum(*t.max_steps) + ") and epochs (" +
          inum(*t.epochs) +
          ") are both set; set only one (clear one with e.g. training.epochs=null)");
  if (t.max_steps)
    check(*t.max_steps > 0, "training.max_steps", "must be > 0 (got " + inum(*t.max_steps) + ")");
  if (t.epochs)
    check(*t.epochs > 0, "training.epochs", "must be > 0 (got " + inum(*t.epochs) + ")");
  check(t.grad_clip >= 0, "training.grad_clip",
        "must be >= 0, 0 or none = off (got " + num(t.grad_clip) + ")");
  check(t.threads >= 0, "training.threads",
        "must be >= 0, 0 = all cores (got " + inum(t.threads) + ")");

  const auto& o = c.optimizer;
  one_of(d, "optimizer.name", o.name, {"adamw", "sgd"});
  check(o.lr > 0, "optimizer.lr", "must be > 0 (got " + num(o.lr) + ")");
  check(o.beta1 >= 0 && o.beta1 < 1, "optimizer.betas",
        "beta1 must be in [0, 1) (got " + num(o.beta1) + ")");
  check(o.beta2 >= 0 && o.beta2 < 1, "optimizer.betas",
        "beta2 must be in [0, 1) (got " + num(o.beta2) + ")");
  check(o.eps > 0, "optimizer.eps", "must be > 0 (got " + num(o.eps) + ")");
  check(o.weight_decay >= 0, "optimizer.weight_decay",
        "must be >= 0 (got " + num(o.weight_decay) + ")");
  check(o.momentum >= 0 && o.momentum < 1, "optimizer.momentum",
        "must be in [0, 1) (got " + num(o.momentum) + ")");

  const auto& s = c.scheduler;
  one_of(d, "scheduler.name", s.name, {"constant", "linear", "cosine"});
  check(s.warmup_steps >= 0, "scheduler.warmup_steps",
        "must be >= 0 (got " + inum(s.warmup_steps) + ")");
  if (t.max_steps && *t.max_steps > 0)
    check(s.warmup_steps <= *t.max_steps, "scheduler.warmup_steps",
          "must be <= training.max_steps (got " + inum(s.warmup_steps) + " > " +
              inum(*t.max_steps) + ")");
  check(s.min_lr >= 0, "scheduler.min_lr", "must be >= 0 (got " + num(s.min_lr) + ")");
  if (s.min_lr >= 0 && o.lr > 0)
    check(s.min_lr <= o.lr, "scheduler.min_lr",
          "must be <= optimizer.lr (got " + num(s.min_lr) + " > " + num(o.lr) + ")");

  check(c.eval.every >= 0, "eval.every",
        "must be >= 0, 0 = only at the end (got " + inum(c.eval.every) + ")");
  check(c.eval.max_batches >= 0, "eval.max_batches",
        "must be >= 0, 0 = all (got " + inum(c.eval.max_batches) + ")");
  check(c.checkpoint.every >= 0, "checkpoint.every",
        "must be >= 0, 0 = only at the end (got " + inum(c.checkpoint.every) + ")");
  check(c.checkpoint.keep >= 0, "checkpoint.keep",
        "must be >= 0, 0 = keep all (got " + inum(c.checkpoint.keep) + ")");
  required(c.output.dir, "output.dir", "where the trained adapter is written");
  check(c.logging.every > 0, "logging.every", "must be > 0 (got " + inum(c.logging.every) + ")");
}

// Defaults that depend on other keys, filled in only where the recipe left them unset.
void derive_defaults(RecipeConfig& c, const Diagnostics& d) {
  if (!d.was_set("lora.seed")) c.lora.seed = c.training.seed;
  if (!d.was_set("data.shuffle_seed")) c.data.shuffle_seed = c.training.seed;
  if (!c.training.max_steps && !c.training.epochs) c.training.epochs = 1;
  if (!c.output.dir.empty()) {
    if (c.checkpoint.dir.empty())
      c.checkpoint.dir = (fs::path(c.output.dir) / "checkpoints").string();
    if (c.logging.metrics_file.empty())
      c.logging.metrics_file = (fs::path(c.output.dir) / "metrics.jsonl").string();
  }
}

// ---------------------------------------------------------------------------------------------
// Writing YAML back: every string double-quoted and escaped, numbers in shortest exact form.

std::string yq(const std::string& s) {
  std::string out = "\"";
  for (unsigned char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += static_cast<char>(ch);
    } else if (ch < 0x20 || ch == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", ch);
      out += buf;
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out + "\"";
}

}  // namespace

bool RecipeConfig::operator==(const RecipeConfig& o) const {
  const auto& a = lora;
  const auto& b = o.lora;
  return model == o.model && a.rank == b.rank && a.alpha == b.alpha && a.dropout == b.dropout &&
         a.rslora == b.rslora && a.targets == b.targets && a.layers == b.layers &&
         a.seed == b.seed && data == o.data && training == o.training && optimizer == o.optimizer &&
         scheduler == o.scheduler && eval == o.eval && checkpoint == o.checkpoint &&
         output == o.output && logging == o.logging;
}

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

void check_recipe_paths(const RecipeConfig& c) {
  std::vector<std::string> problems;
  const std::string src = c.source.empty() ? "recipe" : c.source;
  auto exists = [&](const std::string& key, const std::string& p) {
    if (p.empty()) return;
    std::error_code ec;
    if (p.find_first_of("*?[") != std::string::npos) {
      glob_t g{};
      int rc = ::glob(p.c_str(), 0, nullptr, &g);
      size_t n = rc == 0 ? g.gl_pathc : 0;
      ::globfree(&g);
      if (n == 0) problems.push_back(src + ": " + key + ": no file matches " + p);
    } else if (!fs::exists(p, ec)) {
      problems.push_back(src + ": " + key + ": no such file or folder: " + p);
    }
  };
  exists("model.path", c.model.path);
  exists("model.tokenizer", c.model.tokenizer);
  exists("data.train", c.data.train);
  exists("data.val", c.data.val);
  if (!problems.empty()) throw Error(join(problems, "\n"));
}

std::string to_yaml(const RecipeConfig& c) {
  std::ostringstream y;
  auto list = [](const auto& v, auto fmt) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + fmt(v[i]);
    return s + "]";
  };
  auto b = [](bool v) { return v ? "true" : "false"; };
  auto opt = [](const std::optional<int64_t>& v) { return v ? inum(*v) : std::string("null"); };
  y << "# hone recipe, resolved: every key with its value, defaults included\n";
  y << "model:\n"
    << "  path: " << yq(c.model.path) << "\n"
    << "  tokenizer: " << yq(c.model.tokenizer) << "\n"
    << "  dtype: " << yq(c.model.dtype) << "\n";
  y << "lora:\n"
    << "  rank: " << c.lora.rank << "\n"
    << "  alpha: " << num(c.lora.alpha) << "\n"
    << "  dropout: " << num(c.lora.dropout) << "\n"
    << "  targets: " << list(c.lora.targets, yq) << "\n"
    << "  layers: " << list(c.lora.layers, [](int i) { return inum(i); }) << "\n"
    << "  rslora: " << b(c.lora.rslora) << "\n"
    << "  seed: " << c.lora.seed << "\n";
  y << "data:\n"
    << "  train: " << yq(c.data.train) << "\n"
    << "  val: " << yq(c.data.val) << "\n"
    << "  val_fraction: " << num(c.data.val_fraction) << "\n"
    << "  format: " << yq(c.data.format) << "\n"
    << "  seq_len: " << c.data.seq_len << "\n"
    << "  packing: " << b(c.data.packing) << "\n"
    << "  shuffle_seed: " << c.data.shuffle_seed << "\n"
    << "  add_bos: " << b(c.data.add_bos) << "\n"
    << "  add_eos: " << b(c.data.add_eos) << "\n";
  y << "training:\n"
    << "  batch_size: " << c.training.batch_size << "\n"
    << "  grad_accum: " << c.training.grad_accum << "\n"
    << "  max_steps: " << opt(c.training.max_steps) << "\n"
    << "  epochs: " << opt(c.training.epochs) << "\n"
    << "  seed: " << c.training.seed << "\n"
    << "  grad_clip: " << num(c.training.grad_clip) << "\n"
    << "  threads: " << c.training.threads << "\n";
  y << "optimizer:\n"
    << "  name: " << yq(c.optimizer.name) << "\n"
    << "  lr: " << num(c.optimizer.lr) << "\n"
    << "  betas: [" << num(c.optimizer.beta1) << ", " << num(c.optimizer.beta2) << "]\n"
    << "  eps: " << num(c.optimizer.eps) << "\n"
    << "  weight_decay: " << num(c.optimizer.weight_decay) << "\n"
    << "  momentum: " << num(c.optimizer.momentum) << "\n";
  y << "scheduler:\n"
    << "  name: " << yq(c.scheduler.name) << "\n"
    << "  warmup_steps: " << c.scheduler.warmup_steps << "\n"
    << "  min_lr: " << num(c.scheduler.min_lr) << "\n";
  y << "eval:\n"
    << "  every: " << c.eval.every << "\n"
    << "  max_batches: " << c.eval.max_batches << "\n";
  y << "checkpoint:\n"
    << "  dir: " << yq(c.checkpoint.dir) << "\n"
    << "  every: " << c.checkpoint.every << "\n"
    << "  keep: " << c.checkpoint.keep << "\n";
  y << "output:\n"
    << "  dir: " << yq(c.output.dir) << "\n";
  y << "logging:\n"
    << "  every: " << c.logging.every << "\n"
    << "  metrics_file: " << yq(c.logging.metrics_file) << "\n";
  return y.str();
}

}  // namespace hone
