// The built-in filters and tests (template_filters.h): jinja2's behaviour for each name, on top of
// the value semantics of template_methods.h; the evaluator (template.cpp) only dispatches here.
#include "data/jinja/template_filters.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "data/jinja/pystring.h"
#include "data/jinja/template_methods.h"

namespace hone::jinja::detail {

using namespace pystr;

namespace {

// Attribute path "a.b" of an item, as filters' attribute= arguments take.
Value attr_path(const Value& item, const std::string& path) {
  Value v = item;
  size_t start = 0;
  for (;;) {
    size_t dot = path.find('.', start);
    std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) {
      return std::isdigit(static_cast<unsigned char>(c));
    });
    v = numeric && part.size() < 18 ? getitem(v, Value(static_cast<int64_t>(std::stoll(part))))
                                    : getitem(v, Value(part));
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

CallArgs rest_args(const CallArgs& a, size_t from) {
  CallArgs r;
  for (size_t i = from; i < a.pos.size(); ++i) r.pos.push_back(a.pos[i]);
  r.kw = a.kw;
  return r;
}

Value slice_string_reverse(const std::string& s) {
  auto cps = decode(s);
  std::string out;
  for (size_t i = cps.size(); i-- > 0;) out += s.substr(cps[i].off, cps[i].len);
  return out;
}

}  // namespace

// `value is name(args)`
bool apply_test(const std::string& name, const Value& v, const CallArgs& a) {
  auto arg0 = [&]() -> const Value& {
    if (a.pos.empty()) throw RuntimeFailure{"test '" + name + "' needs an argument"};
    return a.pos[0];
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_map();
  if (name == "sequence") return v.is_list() || v.is_string() || v.is_map();
  if (name == "iterable") return v.is_list() || v.is_string() || v.is_map();
  if (name == "callable") return v.is_function();
  if (name == "lower") return v.is_string() && string_method(v.as_string(), "islower", {}).truthy();
  if (name == "upper") return v.is_string() && string_method(v.as_string(), "isupper", {}).truthy();
  if (name == "odd" || name == "even") {
    if (!v.is_int()) throw RuntimeFailure{"test '" + name + "' needs an integer"};
    return (((v.as_int() % 2) + 2) % 2 == 1) == (name == "odd");
  }
  if (name == "divisibleby") {
    int64_t d = arg0().as_int();
    if (d == 0) throw RuntimeFailure{"integer division or modulo by zero"};
    return v.as_int() % d == 0;
  }
  if (name == "eq" || name == "equalto" || name == "==") return v == arg0();
  if (name == "ne" || name == "!=") return !(v == arg0());
  if (name == "lt" || name == "lessthan" || name == "<") return compare_op("<", v, arg0());
  if (name == "le" || name == "<=") return compare_op("<=", v, arg0());
  if (name == "gt" || name == "greaterthan" || name == ">") return compare_op(">", v, arg0());
  if (name == "ge" || name == ">=") return compare_op(">=", v, arg0());
  if (name == "in") return contains(arg0(), v);
  if (name == "sameas") return v == arg0() && v.kind() == arg0().kind();
  throw RuntimeFailure{"no test named '" + name + "'"};
}

Value apply_filter(const std::string& name, const Value& v, const CallArgs& a) {
  auto needs = [&](bool ok, const char* what) {
    if (!ok)
      throw RuntimeFailure{"filter '" + name + "' expects " + what + ", got " + v.type_name()};
  };
  if (name == "length" || name == "count") return length_of(v);
  if (name == "tojson") {
    Value ind = arg_or(a, 0, "indent", Value::none());
    return Value(v.to_json(ind.is_none() ? -1 : static_cast<int>(ind.as_int())));
  }
  if (name == "trim") return py_strip(v.str(), a.get(0, "chars"), true, true);
  if (name == "upper") return string_method(v.str(), "upper", {});
  if (name == "lower") return string_method(v.str(), "lower", {});
  if (name == "capitalize") return py_capitalize(v.str());
  if (name == "title") return py_title(v.str());
  if (name == "string") return Value(v.str());
  if (name == "safe") return v;
  if (name == "e" || name == "escape") return Value(html_escape(v.str()));
  if (name == "replace") {
    CallArgs r = a;
    return string_method(v.str(), "replace", r);
  }
  if (name == "default" || name == "d") {
    bool boolean = arg_or(a, 1, "boolean", Value(false)).truthy();
    if (v.is_undefined() || (boolean && !v.truthy()))
      return arg_or(a, 0, "default_value", Value(""));
    return v;
  }
  if (name == "first" || name == "last") {
    List l = iterate(v);
    if (l.empty()) return Value::undefined("sequence is empty");
    return name == "first" ? l.front() : l.back();
  }
  if (name == "list") return Value(iterate(v));
  if (name == "reverse") {
    if (v.is_string()) return slice_string_reverse(v.as_string());
    List l = iterate(v);
    std::reverse(l.begin(), l.end());
    return l;
  }
  if (name == "join") {
    std::string sep = arg_or(a, 0, "d", Value("")).str();
    Value attr = arg_or(a, 1, "attribute", Value());
    std::string out;
    bool first = true;
    for (const auto& e : iterate(v)) {
      if (!first) out += sep;
      first = false;
      out += (attr.is_undefined() ? e : attr_path(e, attr.str())).str();
    }
    return out;
  }
  if (name == "items") {
    if (v.is_undefined()) return List{};
    needs(v.is_map(), "a mapping");
    return items_of(v.as_map());
  }
  if (name == "dictsort") {
    needs(v.is_map(), "a mapping");
    List l = items_of(v.as_map()).as_list();
    bool by_value = arg_or(a, 1, "by", Value("key")).str() == "value";
    bool rev = arg_or(a, 2, "reverse", Value(false)).truthy();
    std::stable_sort(l.begin(), l.end(), [&](const Value& x, const Value& y) {
      int c = compare(x.as_list()[by_value ? 1 : 0], y.as_list()[by_value ? 1 : 0]);
      return rev ? c > 0 : c < 0;
    });
    return l;
  }
  if (name == "int") {
    Value def = arg_or(a, 0, "default", Value(0));
    if (v.is_number()) return Value(v.as_int());
    if (v.is_string()) {
      try {
        size_t used = 0;
        std::string s = py_strip(v.as_string(), nullptr, true, true);
        int64_t x = std::stoll(s, &used);
        if (used == s.size()) return Value(x);
        double d = std::stod(s, &used);
        if (used == s.size()) return Value(static_cast<int64_t>(d));
      } catch (const std::exception&) {
      }
    }
    return def;
  }
  if (name == "float") {
    Value def = arg_or(a, 0, "default", Value(0.0));
    if (v.is_number()) return Value(v.as_float());
    if (v.is_string()) {
      try {
        size_t used = 0;
        std::string s = py_strip(v.as_string(), nullptr, true, true);
        double d = std::stod(s, &used);
        if (used == s.size()) return Value(d);
      } catch (const std::exception&) {
      }
    }
    return def;
  }
  if (name == "abs") {
    needs(v.is_number(), "a number");
    return v.is_float() ? Value(std::fabs(v.as_float()))
                        : Value(v.as_int() < 0 ? -v.as_int() : v.as_int());
  }
  if (name == "round") {
    needs(v.is_number(), "a number");
    int64_t prec = arg_or(a, 0, "precision", Value(0)).as_int();
    std::string method = arg_or(a, 1, "method", Value("common")).str();
    double scale = std::pow(10.0, static_cast<double>(prec));
    double x = v.as_float() * scale;
    x = method == "ceil" ? std::ceil(x) : method == "floor" ? std::floor(x) : std::round(x);
    return Value(x / scale);
  }
  if (name == "sum") {
    Value attr = arg_or(a, 0, "attribute", Value());
    Value total = arg_or(a, 1, "start", Value(0));
    for (const auto& e : iterate(v))
      total = binary("+", total, attr.is_undefined() ? e : attr_path(e, attr.str()));
    return total;
  }
  if (name == "min" || name == "max" || name == "sort" || name == "unique") {
    bool case_sensitive =
        arg_or(a, name == "sort" ? 1 : 0, "case_sensitive", Value(false)).truthy();
    Value attr = a.get(name == "sort" ? 2 : (name == "unique" ? 1 : 1), "attribute")
                     ? *a.get(name == "sort" ? 2 : 1, "attribute")
                     : Value();
    auto key = [&](const Value& e) {
      Value k = attr.is_undefined() ? e : attr_path(e, attr.str());
      if (!case_sensitive && k.is_string())
        return Value(ascii_map(k.as_string(), [](int c) { return std::tolower(c); }));
      return k;
    };
    List l = iterate(v);
    if (name == "unique") {
      List out, keys;
      for (const auto& e : l) {
        Value k = key(e);
        if (std::none_of(keys.begin(), keys.end(), [&](const Value& x) { return x == k; })) {
          keys.push_back(k);
          out.push_back(e);
        }
      }
      return out;
    }
    if (name == "sort") {
      bool rev = arg_or(a, 0, "reverse", Value(false)).truthy();
      std::stable_sort(l.begin(), l.end(), [&](const Value& x, const Value& y) {
        int c = compare(key(x), key(y));
        return rev ? c > 0 : c < 0;
      });
      return l;
    }
    if (l.empty()) return Value::undefined("no " + name + " of an empty sequence");
    size_t best = 0;
    for (size_t i = 1; i < l.size(); ++i) {
      int c = compare(key(l[i]), key(l[best]));
      if (name == "min" ? c < 0 : c > 0) best = i;
    }
    return l[best];
  }
  if (name == "map") {
    List out;
    const Value* attr = nullptr;
    for (const auto& [k, x] : a.kw)
      if (k == "attribute") attr = &x;
    for (const auto& e : iterate(v)) {
      if (attr) {
        Value r = attr_path(e, attr->str());
        if (r.is_undefined()) r = arg_or(a, 99, "default", r);
        out.push_back(r);
      } else {
        if (a.pos.empty()) throw RuntimeFailure{"map() needs a filter name or attribute="};
        out.push_back(apply_filter(a.pos[0].str(), e, rest_args(a, 1)));
      }
    }
    return out;
  }
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
    bool by_attr = name == "selectattr" || name == "rejectattr";
    bool keep_if = name == "select" || name == "selectattr";
    size_t test_at = by_attr ? 1 : 0;
    List out;
    for (const auto& e : iterate(v)) {
      Value subject = by_attr ? attr_path(e, arg_or(a, 0, "attribute", Value("")).str()) : e;
      bool r = a.pos.size() > test_at
                   ? apply_test(a.pos[test_at].str(), subject, rest_args(a, test_at + 1))
                   : subject.truthy();
      if (r == keep_if) out.push_back(e);
    }
    return out;
  }
  if (name == "indent") {
    int64_t width = 4;
    std::string pad;
    Value w = arg_or(a, 0, "width", Value(width));
    if (w.is_string())
      pad = w.as_string();
    else
      pad.assign(static_cast<size_t>(std::max<int64_t>(0, w.as_int())), ' ');
    bool first = arg_or(a, 1, "first", Value(false)).truthy();
    bool blank = arg_or(a, 2, "blank", Value(false)).truthy();
    std::string s = v.str(), out;
    size_t start = 0, line = 0;
    while (start <= s.size()) {
      size_t nl = s.find('\n', start);
      std::string piece = s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
      if ((line > 0 || first) && (blank || !piece.empty())) out += pad;
      out += piece;
      if (nl == std::string::npos) break;
      out += '\n';
      start = nl + 1;
      ++line;
    }
    return out;
  }
  if (name == "wordcount")
    return Value(static_cast<int64_t>(py_split(v.str(), nullptr, -1).size()));
  throw RuntimeFailure{"no filter named '" + name + "'"};
}

}  // namespace hone::jinja::detail
