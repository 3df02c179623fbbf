// What values do when a template touches them (template_methods.h): the helpers, the str and
// dict methods and the operators, apart from the evaluator that calls them (template.cpp).
#include "data/jinja/template_methods.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "data/jinja/pystring.h"

namespace hone::jinja::detail {

using namespace pystr;

[[noreturn]] void fail_undefined(const Value& v) {
  throw RuntimeFailure{v.undefined_hint().empty() ? "value is undefined" : v.undefined_hint()};
}

List iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined:
      return {};
    case Value::Kind::Array:
      return v.as_list();
    case Value::Kind::Object: {
      List keys;
      for (const auto& [k, e] : v.as_map().items()) keys.emplace_back(k);
      return keys;
    }
    case Value::Kind::String: {
      List out;
      const std::string& s = v.as_string();
      for (const auto& c : decode(s)) out.emplace_back(s.substr(c.off, c.len));
      return out;
    }
    default:
      throw RuntimeFailure{"'" + v.type_name() + "' object is not iterable"};
  }
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::Undefined:
      return false;
    case Value::Kind::String:
      if (!item.is_string())
        throw RuntimeFailure{"'in <string>' requires string as left operand, not " +
                             item.type_name()};
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Kind::Array:
      for (const auto& e : container.as_list())
        if (e == item) return true;
      return false;
    case Value::Kind::Object:
      return item.is_string() && container.as_map().find(item.as_string()) != nullptr;
    default:
      throw RuntimeFailure{"argument of type '" + container.type_name() + "' is not iterable"};
  }
}

Value length_of(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined:
      return Value(0);
    case Value::Kind::String:
      return Value(static_cast<int64_t>(cp_length(v.as_string())));
    case Value::Kind::Array:
      return Value(static_cast<int64_t>(v.as_list().size()));
    case Value::Kind::Object:
      return Value(static_cast<int64_t>(v.as_map().size()));
    default:
      throw RuntimeFailure{"object of type '" + v.type_name() + "' has no len()"};
  }
}

Value arg_or(const CallArgs& a, size_t i, const std::string& name, Value def) {
  const Value* v = a.get(i, name);
  return v ? *v : def;
}

Value string_method(const std::string& s, const std::string& name, const CallArgs& a) {
  auto arg = [&](size_t i, const char* n) { return a.get(i, n); };
  if (name == "strip") return py_strip(s, arg(0, "chars"), true, true);
  if (name == "lstrip") return py_strip(s, arg(0, "chars"), true, false);
  if (name == "rstrip") return py_strip(s, arg(0, "chars"), false, true);
  if (name == "upper") return ascii_map(s, [](int c) { return std::toupper(c); });
  if (name == "lower") return ascii_map(s, [](int c) { return std::tolower(c); });
  if (name == "title") return py_title(s);
  if (name == "capitalize") return py_capitalize(s);
  if (name == "startswith" || name == "endswith") {
    const Value* p = arg(0, "prefix");
    if (!p) throw RuntimeFailure{name + "() takes at least 1 argument"};
    List options = p->is_list() ? p->as_list() : List{*p};
    for (const auto& o : options) {
      if (!o.is_string()) throw RuntimeFailure{name + " first arg must be str or a tuple of str"};
      const std::string& x = o.as_string();
      if (x.size() > s.size()) continue;
      if (name == "startswith" ? s.compare(0, x.size(), x) == 0
                               : s.compare(s.size() - x.size(), x.size(), x) == 0)
        return Value(true);
    }
    return Value(false);
  }
  if (name == "split") {
    List out;
    for (auto& p : py_split(s, arg(0, "sep"), arg_or(a, 1, "maxsplit", Value(-1)).as_int()))
      out.emplace_back(p);
    return out;
  }
  if (name == "splitlines") {
    List out;
    size_t start = 0;
    while (start < s.size()) {
      size_t nl = s.find('\n', start);
      if (nl == std::string::npos) nl = s.size();
      out.emplace_back(s.substr(start, nl - start));
      start = nl + 1;
    }
    return out;
  }
  if (name == "replace") {
    const Value* from = arg(0, "old");
    const Value* to = arg(1, "new");
    if (!from || !to) throw RuntimeFailure{"replace() takes at least 2 arguments"};
    return py_replace(s, from->str(), to->str(), arg_or(a, 2, "count", Value(-1)).as_int());
  }
  if (name == "find" || name == "index" || name == "rfind" || name == "count") {
    const Value* sub = arg(0, "sub");
    if (!sub) throw RuntimeFailure{name + "() takes at least 1 argument"};
    const std::string x = sub->str();
    if (name == "count") {
      if (x.empty()) return Value(static_cast<int64_t>(cp_length(s) + 1));
      int64_t n = 0;
      for (size_t at = s.find(x); at != std::string::npos; at = s.find(x, at + x.size())) ++n;
      return Value(n);
    }
    size_t at = name == "rfind" ? s.rfind(x) : s.find(x);
    if (at == std::string::npos) {
      if (name == "index") throw RuntimeFailure{"substring not found"};
      return Value(-1);
    }
    return Value(static_cast<int64_t>(cp_length(s.substr(0, at))));
  }
  if (name == "join") {
    const Value* items = arg(0, "iterable");
    if (!items) throw RuntimeFailure{"join() takes exactly one argument"};
    std::string out;
    bool first = true;
    for (const auto& e : iterate(*items)) {
      if (!e.is_string())
        throw RuntimeFailure{"sequence item: expected str instance, " + e.type_name() + " found"};
      if (!first) out += s;
      first = false;
      out += e.as_string();
    }
    return out;
  }
  auto all = [&](auto pred) {
    if (s.empty()) return Value(false);
    for (unsigned char c : s)
      if (!pred(c)) return Value(false);
    return Value(true);
  };
  if (name == "isdigit") return all([](unsigned char c) { return std::isdigit(c) != 0; });
  if (name == "isalpha") return all([](unsigned char c) { return std::isalpha(c) != 0; });
  if (name == "isalnum") return all([](unsigned char c) { return std::isalnum(c) != 0; });
  if (name == "isspace") return all([](unsigned char c) { return py_space(c); });
  if (name == "islower")
    return Value(s == ascii_map(s, [](int c) { return std::tolower(c); }) &&
                 s != ascii_map(s, [](int c) { return std::toupper(c); }));
  if (name == "isupper")
    return Value(s == ascii_map(s, [](int c) { return std::toupper(c); }) &&
                 s != ascii_map(s, [](int c) { return std::tolower(c); }));
  throw RuntimeFailure{"'str' object has no attribute '" + name + "'"};
}

namespace {

bool is_string_method(const std::string& n) {
  static const char* names[] = {"strip",      "lstrip",     "rstrip",     "upper",    "lower",
                                "title",      "capitalize", "startswith", "endswith", "split",
                                "splitlines", "replace",    "find",       "index",    "rfind",
                                "count",      "join",       "isdigit",    "isalpha",  "isalnum",
                                "isspace",    "islower",    "isupper"};
  return std::find_if(std::begin(names), std::end(names), [&](const char* x) { return n == x; }) !=
         std::end(names);
}

}  // namespace

Value items_of(const Map& m) {
  List out;
  for (const auto& [k, v] : m.items()) out.push_back(Value::tuple(List{Value(k), v}));
  return out;
}

namespace {

Value dict_method(const Value& self, const std::string& name, const CallArgs& a) {
  const Map& m = self.as_map();
  if (name == "items") return items_of(m);
  if (name == "keys" || name == "values") {
    List out;
    for (const auto& [k, v] : m.items()) out.push_back(name == "keys" ? Value(k) : v);
    return out;
  }
  // get(key, default=None)
  const Value* k = a.get(0, "key");
  if (!k) throw RuntimeFailure{"get expected at least 1 argument"};
  const Value* v = k->is_string() ? m.find(k->as_string()) : nullptr;
  return v ? *v : arg_or(a, 1, "default", Value::none());
}

}  // namespace

// getattr's and getitem's messages begin std::string("'") + ..., not "'" + ...: in this file the
// latter trips a GCC 12 -Wrestrict false positive.
Value getattr(const Value& obj, const std::string& name) {
  switch (obj.kind()) {
    case Value::Kind::Undefined:
      fail_undefined(obj);
    case Value::Kind::Object: {
      const Map& m = obj.as_map();
      if (!m.is_namespace &&
          (name == "items" || name == "keys" || name == "values" || name == "get"))
        return Value::function(
            [obj, name](const CallArgs& a) { return dict_method(obj, name, a); });
      if (const Value* v = m.find(name)) return *v;
      return Value::undefined(std::string("'") + (m.is_namespace ? "Namespace" : "dict object") +
                              "' has no attribute '" + name + "'");
    }
    case Value::Kind::String:
      if (is_string_method(name)) {
        std::string s = obj.as_string();
        return Value::function([s, name](const CallArgs& a) { return string_method(s, name, a); });
      }
      break;
    default:
      break;
  }
  return Value::undefined(std::string("'") + obj.type_name() + " object' has no attribute '" +
                          name + "'");
}

Value getitem(const Value& obj, const Value& key) {
  switch (obj.kind()) {
    case Value::Kind::Undefined:
      fail_undefined(obj);
    case Value::Kind::Array:
    case Value::Kind::String: {
      if (!key.is_int() && !key.is_bool()) break;
      int64_t n = obj.is_list() ? static_cast<int64_t>(obj.as_list().size())
                                : static_cast<int64_t>(cp_length(obj.as_string()));
      int64_t i = key.as_int();
      if (i < 0) i += n;
      // Out of range is undefined, not an error, as in jinja2 (which names the index as given);
      // only using the undefined (an attribute of it, arithmetic) raises.
      if (i < 0 || i >= n)
        return Value::undefined(obj.type_name() + " object has no element " + key.repr());
      if (obj.is_list()) return obj.as_list()[static_cast<size_t>(i)];
      auto c = decode(obj.as_string())[static_cast<size_t>(i)];
      return Value(obj.as_string().substr(c.off, c.len));
    }
    case Value::Kind::Object:
      if (key.is_string()) {
        if (const Value* v = obj.as_map().find(key.as_string())) return *v;
        return getattr(obj, key.as_string());
      }
      break;
    default:
      break;
  }
  return Value::undefined(std::string("'") + obj.type_name() + " object' has no element " +
                          key.repr());
}

bool compare_op(const std::string& op, const Value& a, const Value& b) {
  if (op == "==") return a == b;
  if (op == "!=") return !(a == b);
  if (op == "in") return contains(b, a);
  if (op == "not in") return !contains(b, a);
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  int c = compare(a, b);
  if (op == "<") return c < 0;
  if (op == "<=") return c <= 0;
  if (op == ">") return c > 0;
  return c >= 0;
}

Value binary(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") return Value(a.str() + b.str());
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  auto unsupported = [&]() -> Value {
    throw RuntimeFailure{"unsupported operand type(s) for " + op + ": '" + a.type_name() +
                         "' and '" + b.type_name() + "'"};
  };
  const bool nums = a.is_number() && b.is_number();
  const bool ints = nums && !a.is_float() && !b.is_float();
  int64_t r = 0;
  auto checked = [&r](bool overflow) {  // r is read only after the builtin wrote it
    if (overflow) throw RuntimeFailure{"integer overflow (hone's integers are 64-bit)"};
    return Value(r);
  };
  if (op == "+") {
    if (ints) return checked(__builtin_add_overflow(a.as_int(), b.as_int(), &r));
    if (nums) return Value(a.as_float() + b.as_float());
    if (a.is_string() && b.is_string()) return Value(a.as_string() + b.as_string());
    if (a.is_list() && b.is_list()) {
      List l = a.as_list();
      l.insert(l.end(), b.as_list().begin(), b.as_list().end());
      return l;
    }
    return unsupported();
  }
  if (op == "-") {
    if (ints) return checked(__builtin_sub_overflow(a.as_int(), b.as_int(), &r));
    if (nums) return Value(a.as_float() - b.as_float());
    return unsupported();
  }
  if (op == "*") {
    if (ints) return checked(__builtin_mul_overflow(a.as_int(), b.as_int(), &r));
    if (nums) return Value(a.as_float() * b.as_float());
    const Value* seq = a.is_string() || a.is_list() ? &a : &b;
    const Value* cnt = seq == &a ? &b : &a;
    if ((seq->is_string() || seq->is_list()) && (cnt->is_int() || cnt->is_bool())) {
      int64_t k = std::max<int64_t>(0, cnt->as_int());
      if (seq->is_string()) {
        std::string s;
        for (int64_t i = 0; i < k; ++i) s += seq->as_string();
        return s;
      }
      List l;
      for (int64_t i = 0; i < k; ++i)
        l.insert(l.end(), seq->as_list().begin(), seq->as_list().end());
      return l;
    }
    return unsupported();
  }
  if (!nums) return unsupported();
  if (op == "/") {
    if (b.as_float() == 0) throw RuntimeFailure{"division by zero"};
    return Value(a.as_float() / b.as_float());
  }
  if (op == "//" || op == "%") {
    if (b.as_float() == 0) throw RuntimeFailure{"integer division or modulo by zero"};
    if (ints) {
      int64_t q = floor_div(a.as_int(), b.as_int());
      return op == "//" ? Value(q) : Value(a.as_int() - q * b.as_int());
    }
    double q = std::floor(a.as_float() / b.as_float());
    return op == "//" ? Value(q) : Value(a.as_float() - q * b.as_float());
  }
  if (op == "**") {
    if (ints && b.as_int() >= 0) {
      int64_t p = 1;
      for (int64_t i = 0; i < b.as_int() && p != 0; ++i)
        if (__builtin_mul_overflow(p, a.as_int(), &p))
          throw RuntimeFailure{"integer overflow (hone's integers are 64-bit)"};
      return Value(p);
    }
    return Value(std::pow(a.as_float(), b.as_float()));
  }
  return unsupported();
}

}  // namespace hone::jinja::detail
