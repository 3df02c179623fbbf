#include "data/jinja/template.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <ctime>
#include <unordered_map>

#include "autograd/error.h"
#include "data/jinja/pystring.h"

namespace hone::jinja {

namespace {

using namespace pystr;

struct Frame {
  std::unordered_map<std::string, Value> vars;
  const Frame* parent = nullptr;

  const Value* find(const std::string& name) const {
    for (const Frame* f = this; f; f = f->parent) {
      auto it = f->vars.find(name);
      if (it != f->vars.end()) return &it->second;
    }
    return nullptr;
  }
};

enum class Flow { Normal, Break, Continue };

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

bool is_string_method(const std::string& n) {
  static const char* names[] = {"strip",      "lstrip",     "rstrip",     "upper",    "lower",
                                "title",      "capitalize", "startswith", "endswith", "split",
                                "splitlines", "replace",    "find",       "index",    "rfind",
                                "count",      "join",       "isdigit",    "isalpha",  "isalnum",
                                "isspace",    "islower",    "isupper"};
  return std::find_if(std::begin(names), std::end(names), [&](const char* x) { return n == x; }) !=
         std::end(names);
}

Value items_of(const Map& m) {
  List out;
  for (const auto& [k, v] : m.items()) out.push_back(Value::tuple(List{Value(k), v}));
  return out;
}

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
      return Value::undefined("'" + std::string(m.is_namespace ? "Namespace" : "dict object") +
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
  return Value::undefined("'" + obj.type_name() + " object' has no attribute '" + name + "'");
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
      if (i < 0 || i >= n) return Value::undefined(obj.type_name() + " index out of range");
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
  return Value::undefined("'" + obj.type_name() + " object' has no element " + key.repr());
}

Value make_namespace(const CallArgs& a) {
  Map m;
  m.is_namespace = true;
  for (const auto& p : a.pos) {
    if (!p.is_map()) throw RuntimeFailure{"namespace() takes a dict or keyword arguments"};
    for (const auto& [k, v] : p.as_map().items()) m.set(k, v);
  }
  for (const auto& [k, v] : a.kw) m.set(k, v);
  return Value(std::move(m));
}

class Interp {
 public:
  explicit Interp(const std::string& name) : name_(name) {}

  Flow exec_body(const std::vector<NodePtr>& body, Frame& f, std::string& out) {
    for (const auto& n : body) {
      Flow fl = exec(*n, f, out);
      if (fl != Flow::Normal) return fl;
    }
    return Flow::Normal;
  }

  void set_root(Frame* root) { root_ = root; }

  Value eval(const Node& n, Frame& f) {
    try {
      return eval_inner(n, f);
    } catch (const RuntimeFailure& e) {
      fail(n, e.message);
    }
  }

 private:
  [[noreturn]] void fail(const Node& n, const std::string& msg) const {
    throw Error(name_ + ":" + std::to_string(n.line) + ":" + std::to_string(n.col) + ": " + msg);
  }

  Flow exec(const Node& n, Frame& f, std::string& out) {
    try {
      return exec_inner(n, f, out);
    } catch (const RuntimeFailure& e) {
      fail(n, e.message);
    }
  }

  Flow exec_inner(const Node& n, Frame& f, std::string& out) {
    switch (n.kind) {
      case NodeKind::Text:
        out += n.str;
        return Flow::Normal;
      case NodeKind::Output:
        out += eval(*n.a, f).str();
        return Flow::Normal;
      case NodeKind::If:
        return exec_body(eval(*n.a, f).truthy() ? n.items : n.items2, f, out);
      case NodeKind::For:
        return exec_for(n, f, out);
      case NodeKind::Set: {
        Value v = eval(*n.a, f);
        if (!n.str.empty()) {
          const Value* ns = f.find(n.names[0]);
          if (!ns || !ns->is_map() || !ns->as_map().is_namespace)
            throw RuntimeFailure{"cannot assign attribute on non-namespace object '" + n.names[0] +
                                 "'"};
          ns->mutable_map().set(n.str, std::move(v));
        } else {
          assign(f, n.names, std::move(v));
        }
        return Flow::Normal;
      }
      case NodeKind::SetBlock: {
        std::string s;
        exec_body(n.items, f, s);
        Value v(std::move(s));
        if (n.a) v = apply_chain(*n.a, f, v);
        f.vars[n.names[0]] = std::move(v);
        return Flow::Normal;
      }
      case NodeKind::Macro: {
        const Node* node = &n;
        f.vars[n.str] =
            Value::function([this, node](const CallArgs& a) { return call_macro(*node, a); });
        return Flow::Normal;
      }
      case NodeKind::FilterBlock: {
        std::string s;
        exec_body(n.items, f, s);
        out += apply_chain(*n.a, f, Value(std::move(s))).str();
        return Flow::Normal;
      }
      case NodeKind::Break:
        return Flow::Break;
      case NodeKind::Continue:
        return Flow::Continue;
      default:
        fail(n, "expression used as a statement");
    }
  }

  Value apply_chain(const Node& chain, Frame& f, Value input) {
    Value saved = filter_input_;
    filter_input_ = std::move(input);
    Value v = eval(chain, f);
    filter_input_ = saved;
    return v;
  }

  void assign(Frame& f, const std::vector<std::string>& names, Value v) {
    if (names.size() == 1) {
      f.vars[names[0]] = std::move(v);
      return;
    }
    List items = iterate(v);
    if (items.size() != names.size())
      throw RuntimeFailure{"cannot unpack " + std::to_string(items.size()) + " values into " +
                           std::to_string(names.size()) + " names"};
    for (size_t i = 0; i < names.size(); ++i) f.vars[names[i]] = items[i];
  }

  Flow exec_for(const Node& n, Frame& f, std::string& out) {
    List all = iterate(eval(*n.a, f));
    List seq;
    if (n.b) {
      for (auto& item : all) {
        Frame probe;
        probe.parent = &f;
        assign(probe, n.names, item);
        if (eval(*n.b, probe).truthy()) seq.push_back(std::move(item));
      }
    } else {
      seq = std::move(all);
    }
    if (seq.empty()) return n.flag ? exec_body(n.items2, f, out) : Flow::Normal;
    const int64_t len = static_cast<int64_t>(seq.size());
    for (int64_t i = 0; i < len; ++i) {
      Frame body;
      body.parent = &f;
      assign(body, n.names, seq[static_cast<size_t>(i)]);
      Map loop;
      loop.set("index", Value(i + 1));
      loop.set("index0", Value(i));
      loop.set("revindex", Value(len - i));
      loop.set("revindex0", Value(len - i - 1));
      loop.set("first", Value(i == 0));
      loop.set("last", Value(i == len - 1));
      loop.set("length", Value(len));
      loop.set("depth", Value(1));
      loop.set("depth0", Value(0));
      loop.set("previtem", i > 0 ? seq[static_cast<size_t>(i - 1)]
                                 : Value::undefined("there is no previous item"));
      loop.set("nextitem", i + 1 < len ? seq[static_cast<size_t>(i + 1)]
                                       : Value::undefined("there is no next item"));
      loop.set("cycle", Value::function([i](const CallArgs& a) {
                 if (a.pos.empty()) throw RuntimeFailure{"no items for cycling given"};
                 return a.pos[static_cast<size_t>(i) % a.pos.size()];
               }));
      body.vars["loop"] = Value(std::move(loop));
      if (exec_body(n.items, body, out) == Flow::Break) break;
    }
    return Flow::Normal;
  }

  Value call_macro(const Node& m, const CallArgs& a) {
    if (++depth_ > 200) {
      --depth_;
      throw RuntimeFailure{"macro recursion too deep"};
    }
    Frame mf;
    mf.parent = root_;
    if (a.pos.size() > m.kwargs.size())
      throw RuntimeFailure{"macro '" + m.str + "' takes " + std::to_string(m.kwargs.size()) +
                           " arguments"};
    for (size_t i = 0; i < m.kwargs.size(); ++i) {
      const auto& [pname, def] = m.kwargs[i];
      const Value* v = a.get(i, pname);
      if (v)
        mf.vars[pname] = *v;
      else if (def)
        mf.vars[pname] = eval(*def, mf);
      else
        mf.vars[pname] = Value::undefined("'" + pname + "' is undefined");
    }
    for (const auto& [k, v] : a.kw) {
      bool known = std::any_of(m.kwargs.begin(), m.kwargs.end(),
                               [&](const auto& p) { return p.first == k; });
      if (!known) throw RuntimeFailure{"macro '" + m.str + "' has no argument '" + k + "'"};
    }
    std::string out;
    exec_body(m.items, mf, out);
    --depth_;
    return Value(std::move(out));
  }

  CallArgs eval_args(const Node& n, Frame& f) {
    CallArgs a;
    for (const auto& e : n.items) a.pos.push_back(eval(*e, f));
    for (const auto& [k, e] : n.kwargs) a.kw.emplace_back(k, eval(*e, f));
    return a;
  }

  Value eval_inner(const Node& n, Frame& f) {
    switch (n.kind) {
      case NodeKind::Literal:
        return n.literal;
      case NodeKind::Name: {
        const Value* v = f.find(n.str);
        return v ? *v : Value::undefined("'" + n.str + "' is undefined");
      }
      case NodeKind::ListLit: {
        List l;
        for (const auto& e : n.items) l.push_back(eval(*e, f));
        return n.flag ? Value::tuple(std::move(l)) : Value(std::move(l));
      }
      case NodeKind::DictLit: {
        Map m;
        for (size_t i = 0; i < n.items.size(); ++i)
          m.set(eval(*n.items[i], f).str(), eval(*n.items2[i], f));
        return m;
      }
      case NodeKind::GetAttr:
        return getattr(eval(*n.a, f), n.str);
      case NodeKind::GetItem:
        return getitem(eval(*n.a, f), eval(*n.b, f));
      case NodeKind::Slice: {
        Value obj = eval(*n.a, f);
        Value parts[3];
        for (int k = 0; k < 3; ++k)
          if (n.items[static_cast<size_t>(k)]) parts[k] = eval(*n.items[static_cast<size_t>(k)], f);
        if (obj.is_undefined()) fail_undefined(obj);
        if (obj.is_list()) {
          const List& l = obj.as_list();
          List out;
          for (int64_t i :
               slice_positions(static_cast<int64_t>(l.size()), parts[0], parts[1], parts[2]))
            out.push_back(l[static_cast<size_t>(i)]);
          return out;
        }
        if (obj.is_string()) {
          const std::string& s = obj.as_string();
          auto cps = decode(s);
          std::string out;
          for (int64_t i :
               slice_positions(static_cast<int64_t>(cps.size()), parts[0], parts[1], parts[2]))
            out += s.substr(cps[static_cast<size_t>(i)].off, cps[static_cast<size_t>(i)].len);
          return out;
        }
        throw RuntimeFailure{"'" + obj.type_name() + "' object is not subscriptable"};
      }
      case NodeKind::Call: {
        Value callee = eval(*n.a, f);
        CallArgs a = eval_args(n, f);
        if (callee.is_undefined()) fail_undefined(callee);
        if (!callee.is_function())
          throw RuntimeFailure{"'" + callee.type_name() + "' object is not callable"};
        return callee.as_function()(a);
      }
      case NodeKind::Filter: {
        Value input = n.a ? eval(*n.a, f) : filter_input_;
        return apply_filter(n.str, input, eval_args(n, f), f);
      }
      case NodeKind::Test: {
        Value v = eval(*n.a, f);
        bool r = apply_test(n.str, v, eval_args(n, f));
        return Value(n.flag ? !r : r);
      }
      case NodeKind::Not:
        return Value(!eval(*n.a, f).truthy());
      case NodeKind::Neg:
      case NodeKind::Pos: {
        Value v = eval(*n.a, f);
        if (v.is_undefined()) fail_undefined(v);
        if (!v.is_number())
          throw RuntimeFailure{"bad operand type for unary -: '" + v.type_name() + "'"};
        if (n.kind == NodeKind::Pos) return v.is_float() ? v : Value(v.as_int());
        if (v.is_float()) return Value(-v.as_float());
        if (v.as_int() == INT64_MIN)
          throw RuntimeFailure{"integer overflow (hone's integers are 64-bit)"};
        return Value(-v.as_int());
      }
      case NodeKind::And: {
        Value l = eval(*n.a, f);
        return l.truthy() ? eval(*n.b, f) : l;
      }
      case NodeKind::Or: {
        Value l = eval(*n.a, f);
        return l.truthy() ? l : eval(*n.b, f);
      }
      case NodeKind::Binary:
        return binary(n.str, eval(*n.a, f), eval(*n.b, f));
      case NodeKind::Compare: {
        Value left = eval(*n.items[0], f);
        for (size_t i = 0; i < n.names.size(); ++i) {
          Value right = eval(*n.items[i + 1], f);
          if (!compare_op(n.names[i], left, right)) return Value(false);
          left = std::move(right);
        }
        return Value(true);
      }
      case NodeKind::Cond:
        if (eval(*n.a, f).truthy()) return eval(*n.b, f);
        return n.c ? eval(*n.c, f)
                   : Value::undefined("the conditional expression was false and has no else");
      default:
        fail(n, "statement used as an expression");
    }
  }

  static bool compare_op(const std::string& op, const Value& a, const Value& b) {
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

  static Value binary(const std::string& op, const Value& a, const Value& b) {
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
    if (name == "lower")
      return v.is_string() && string_method(v.as_string(), "islower", {}).truthy();
    if (name == "upper")
      return v.is_string() && string_method(v.as_string(), "isupper", {}).truthy();
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

  // Attribute path "a.b" of an item, as filters' attribute= arguments take.
  static Value attr_path(const Value& item, const std::string& path) {
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

  static CallArgs rest_args(const CallArgs& a, size_t from) {
    CallArgs r;
    for (size_t i = from; i < a.pos.size(); ++i) r.pos.push_back(a.pos[i]);
    r.kw = a.kw;
    return r;
  }

  Value apply_filter(const std::string& name, const Value& v, const CallArgs& a, Frame& f) {
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
          out.push_back(apply_filter(a.pos[0].str(), e, rest_args(a, 1), f));
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
        std::string piece =
            s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
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

  static Value slice_string_reverse(const std::string& s) {
    auto cps = decode(s);
    std::string out;
    for (size_t i = cps.size(); i-- > 0;) out += s.substr(cps[i].off, cps[i].len);
    return out;
  }

  std::string name_;
  Frame* root_ = nullptr;
  Value filter_input_;
  int depth_ = 0;
};

Value builtin_range(const CallArgs& a) {
  int64_t start = 0, stop = 0, step = 1;
  if (a.pos.size() == 1) {
    stop = a.pos[0].as_int();
  } else if (a.pos.size() >= 2) {
    start = a.pos[0].as_int();
    stop = a.pos[1].as_int();
    if (a.pos.size() >= 3) step = a.pos[2].as_int();
  } else {
    throw RuntimeFailure{"range expected at least 1 argument"};
  }
  if (step == 0) throw RuntimeFailure{"range() arg 3 must not be zero"};
  List out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    out.emplace_back(i);
    if (out.size() > 10'000'000) throw RuntimeFailure{"range too large"};
  }
  return out;
}

}  // namespace

Template::Template(const std::string& source, Options opts, std::string name)
    : name_(std::move(name)), body_(parse(tokenize(source, opts, name_), name_)) {}

std::string Template::render(const Map& vars) const {
  Frame globals;
  globals.vars["namespace"] = Value::function(make_namespace);
  globals.vars["range"] = Value::function(builtin_range);
  globals.vars["dict"] = Value::function([](const CallArgs& a) {
    Map m;
    for (const auto& [k, v] : a.kw) m.set(k, v);
    return Value(std::move(m));
  });
  globals.vars["raise_exception"] = Value::function([](const CallArgs& a) -> Value {
    throw RuntimeFailure{"raise_exception: " + (a.pos.empty() ? std::string() : a.pos[0].str())};
  });
  globals.vars["strftime_now"] = Value::function([](const CallArgs& a) {
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    char buf[256];
    size_t n =
        std::strftime(buf, sizeof buf, a.pos.empty() ? "%Y-%m-%d" : a.pos[0].str().c_str(), &tm);
    return Value(std::string(buf, n));
  });
  Frame root;
  root.parent = &globals;
  for (const auto& [k, v] : vars.items()) root.vars[k] = v;
  Interp interp(name_);
  interp.set_root(&root);
  std::string out;
  interp.exec_body(body_, root, out);
  return out;
}

std::string Template::render(const nlohmann::ordered_json& vars) const {
  Value v = Value::from_json(vars.is_null() ? nlohmann::ordered_json::object() : vars);
  if (!v.is_map()) throw Error(name_ + ": template variables must be a JSON object");
  return render(v.as_map());
}

std::string render(const std::string& source, const nlohmann::ordered_json& vars, Options opts) {
  return Template(source, opts).render(vars);
}

}  // namespace hone::jinja
