// The evaluator of template.h: statements and expressions over frames of variables. What values,
// filters and tests do is in template_methods.cpp and template_filters.cpp.
#include "data/jinja/template.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <ctime>
#include <unordered_map>

#include "autograd/error.h"
#include "data/jinja/pystring.h"
#include "data/jinja/template_filters.h"
#include "data/jinja/template_methods.h"

namespace hone::jinja {

namespace {

using namespace pystr;
using namespace detail;

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

// The parser bounds one template's nesting (kMaxNesting); a macro calling itself stacks one
// evaluation of its body on another, so evaluations in progress are bounded too (under 1 KB of
// stack each), and so is what a namespace can hold across loop iterations (kMaxValueNesting).
constexpr int kMaxEvalNesting = 512;
constexpr int kMaxMacroNesting = 200;
// Above kMaxJsonDepth (512): a namespace may hold any value the template's variables hold.
constexpr int kMaxValueNesting = 1024;

// The levels of lists and dicts in v (0 for a scalar). Throws when v holds `target` (storing v in
// it would make a cycle, which printing would follow forever) or nests deeper than
// kMaxValueNesting; `seen` memoises shared containers so a value built as [x, x] costs no more
// than x.
int value_height(const Value& v, const Map* target, std::unordered_map<const void*, int>& seen,
                 int depth) {
  if (!v.is_list() && !v.is_map()) return 0;
  if (depth > kMaxValueNesting)
    throw RuntimeFailure{"value nested too deeply (more than " + std::to_string(kMaxValueNesting) +
                         " levels)"};
  const void* key =
      v.is_list() ? static_cast<const void*>(&v.as_list()) : static_cast<const void*>(&v.as_map());
  if (key == target)
    throw RuntimeFailure{"cannot store a namespace inside itself (the value refers back to it)"};
  auto it = seen.find(key);
  if (it != seen.end()) return it->second;
  int h = 0;
  if (v.is_list()) {
    for (const auto& e : v.as_list()) h = std::max(h, value_height(e, target, seen, depth + 1));
  } else {
    for (const auto& [k, e] : v.as_map().items())
      h = std::max(h, value_height(e, target, seen, depth + 1));
  }
  seen.emplace(key, h + 1);
  return h + 1;
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
    Nested level(*this, n);
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

  // One evaluation in progress; refused past kMaxEvalNesting.
  class Nested {
   public:
    Nested(Interp& in, const Node& n) : in_(in) {
      if (in_.nesting_ >= kMaxEvalNesting)
        in_.fail(n, "template recursion too deep (more than " + std::to_string(kMaxEvalNesting) +
                        " nested evaluations)");
      ++in_.nesting_;
    }
    ~Nested() { --in_.nesting_; }
    Nested(const Nested&) = delete;
    Nested& operator=(const Nested&) = delete;

   private:
    Interp& in_;
  };

  Flow exec(const Node& n, Frame& f, std::string& out) {
    Nested level(*this, n);
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
      case NodeKind::Set:
        exec_set(n, f);
        return Flow::Normal;
      case NodeKind::SetBlock:
        exec_set_block(n, f);
        return Flow::Normal;
      case NodeKind::Macro: {
        const Node* node = &n;
        f.vars[n.str] =
            Value::function([this, node](const CallArgs& a) { return call_macro(*node, a); });
        return Flow::Normal;
      }
      case NodeKind::FilterBlock:
        exec_filter_block(n, f, out);
        return Flow::Normal;
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

  [[gnu::noinline]] Flow exec_for(const Node& n, Frame& f, std::string& out) {
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
    if (++depth_ > kMaxMacroNesting) {
      --depth_;
      throw RuntimeFailure{"macro recursion too deep (more than " +
                           std::to_string(kMaxMacroNesting) + " calls)"};
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
    for (const auto& kv : a.kw) {
      const std::string& k = kv.first;  // not a structured binding: clang 14 cannot capture one
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

  // The larger cases of eval_inner and exec_inner live apart, so that the frame every level of
  // nesting pays for stays small (it is several times larger under ASan).
  [[gnu::noinline]] void exec_set(const Node& n, Frame& f) {
    Value v = eval(*n.a, f);
    if (!n.str.empty()) {
      const Value* ns = f.find(n.names[0]);
      if (!ns || !ns->is_map() || !ns->as_map().is_namespace)
        throw RuntimeFailure{"cannot assign attribute on non-namespace object '" + n.names[0] +
                             "'"};
      // A namespace is the one value that lives across loop iterations: bound what it holds.
      std::unordered_map<const void*, int> seen;
      value_height(v, &ns->as_map(), seen, 1);
      ns->mutable_map().set(n.str, std::move(v));
    } else {
      assign(f, n.names, std::move(v));
    }
  }

  [[gnu::noinline]] void exec_set_block(const Node& n, Frame& f) {
    std::string s;
    exec_body(n.items, f, s);
    Value v(std::move(s));
    if (n.a) v = apply_chain(*n.a, f, v);
    f.vars[n.names[0]] = std::move(v);
  }

  [[gnu::noinline]] void exec_filter_block(const Node& n, Frame& f, std::string& out) {
    std::string s;
    exec_body(n.items, f, s);
    out += apply_chain(*n.a, f, Value(std::move(s))).str();
  }

  [[gnu::noinline]] Value eval_list(const Node& n, Frame& f) {
    List l;
    for (const auto& e : n.items) l.push_back(eval(*e, f));
    return n.flag ? Value::tuple(std::move(l)) : Value(std::move(l));
  }

  [[gnu::noinline]] Value eval_dict(const Node& n, Frame& f) {
    Map m;
    for (size_t i = 0; i < n.items.size(); ++i)
      m.set(eval(*n.items[i], f).str(), eval(*n.items2[i], f));
    return m;
  }

  [[gnu::noinline]] Value eval_filter(const Node& n, Frame& f) {
    Value input = n.a ? eval(*n.a, f) : filter_input_;
    return apply_filter(n.str, input, eval_args(n, f));
  }

  [[gnu::noinline]] Value eval_test(const Node& n, Frame& f) {
    Value v = eval(*n.a, f);
    bool r = apply_test(n.str, v, eval_args(n, f));
    return Value(n.flag ? !r : r);
  }

  [[gnu::noinline]] Value eval_slice(const Node& n, Frame& f) {
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

  [[gnu::noinline]] Value eval_call(const Node& n, Frame& f) {
    Value callee = eval(*n.a, f);
    CallArgs a = eval_args(n, f);
    if (callee.is_undefined()) fail_undefined(callee);
    if (!callee.is_function())
      throw RuntimeFailure{"'" + callee.type_name() + "' object is not callable"};
    return callee.as_function()(a);
  }

  [[gnu::noinline]] Value eval_sign(const Node& n, Frame& f) {
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

  [[gnu::noinline]] Value eval_compare(const Node& n, Frame& f) {
    Value left = eval(*n.items[0], f);
    for (size_t i = 0; i < n.names.size(); ++i) {
      Value right = eval(*n.items[i + 1], f);
      if (!compare_op(n.names[i], left, right)) return Value(false);
      left = std::move(right);
    }
    return Value(true);
  }

  Value eval_inner(const Node& n, Frame& f) {
    switch (n.kind) {
      case NodeKind::Literal:
        return n.literal;
      case NodeKind::Name: {
        const Value* v = f.find(n.str);
        return v ? *v : Value::undefined("'" + n.str + "' is undefined");
      }
      case NodeKind::ListLit:
        return eval_list(n, f);
      case NodeKind::DictLit:
        return eval_dict(n, f);
      case NodeKind::GetAttr:
        return getattr(eval(*n.a, f), n.str);
      case NodeKind::GetItem:
        return getitem(eval(*n.a, f), eval(*n.b, f));
      case NodeKind::Slice:
        return eval_slice(n, f);
      case NodeKind::Call:
        return eval_call(n, f);
      case NodeKind::Filter:
        return eval_filter(n, f);
      case NodeKind::Test:
        return eval_test(n, f);
      case NodeKind::Not:
        return Value(!eval(*n.a, f).truthy());
      case NodeKind::Neg:
      case NodeKind::Pos:
        return eval_sign(n, f);
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
      case NodeKind::Compare:
        return eval_compare(n, f);
      case NodeKind::Cond:
        if (eval(*n.a, f).truthy()) return eval(*n.b, f);
        return n.c ? eval(*n.c, f)
                   : Value::undefined("the conditional expression was false and has no else");
      default:
        fail(n, "statement used as an expression");
    }
  }

  std::string name_;
  Frame* root_ = nullptr;
  Value filter_input_;
  int depth_ = 0;    // macro calls in progress
  int nesting_ = 0;  // Nested levels on the stack
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
