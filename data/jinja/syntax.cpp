// The parser half of syntax.h: tokens (lexer.cpp) → AST, in jinja2's precedence order.
#include "data/jinja/syntax.h"

#include <algorithm>

#include "data/jinja/syntax_internal.h"

namespace hone::jinja {

namespace {

std::string describe(const Token& t) {
  switch (t.type) {
    case Tok::Eof:
      return "end of template";
    case Tok::Text:
      return "template text";
    case Tok::String:
      return "string literal";
    default:
      return "'" + t.text + "'";
  }
}

class Parser {
 public:
  Parser(const std::vector<Token>& toks, const std::string& name) : t_(toks), name_(name) {}

  std::vector<NodePtr> parse_template() {
    std::string found;
    auto body = parse_body({}, found);
    return body;
  }

 private:
  const Token& peek(size_t k = 0) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  const Token& next() {
    const Token& t = t_[i_];
    if (i_ + 1 < t_.size()) ++i_;
    return t;
  }
  bool at_op(const char* op, size_t k = 0) const {
    return peek(k).type == Tok::Op && peek(k).text == op;
  }
  bool at_name(const char* name, size_t k = 0) const {
    return peek(k).type == Tok::Name && peek(k).text == name;
  }
  bool accept_op(const char* op) {
    if (!at_op(op)) return false;
    next();
    return true;
  }
  bool accept_name(const char* name) {
    if (!at_name(name)) return false;
    next();
    return true;
  }
  [[noreturn]] void fail(const Token& t, const std::string& msg) const {
    detail::fail_at(name_, t.line, t.col, msg);
  }
  void expect_op(const char* op) {
    if (!accept_op(op))
      fail(peek(), std::string("expected '") + op + "' but found " + describe(peek()));
  }
  void expect(Tok type, const char* what) {
    if (peek().type != type)
      fail(peek(), std::string("expected ") + what + " but found " + describe(peek()));
    next();
  }
  void expect_block_end() { expect(Tok::BlockEnd, "'%}'"); }
  std::string expect_identifier() {
    if (peek().type != Tok::Name) fail(peek(), "expected a name but found " + describe(peek()));
    return next().text;
  }

  [[noreturn]] void too_deep(int line, int col) const {
    detail::fail_at(
        name_, line, col,
        "template nested too deeply (more than " + std::to_string(kMaxNesting) + " levels)");
  }

  // One level of the parser's own recursion (a bracket, a block, a unary operator): bounds the
  // stack before any node of a deep nest is complete, e.g. in "(((((...".
  class Nest {
   public:
    explicit Nest(Parser& p) : p_(p) {
      if (++p_.nest_ > kMaxNesting) p_.too_deep(p_.peek().line, p_.peek().col);
    }
    ~Nest() { --p_.nest_; }
    Nest(const Nest&) = delete;
    Nest& operator=(const Nest&) = delete;

   private:
    Parser& p_;
  };

  // Marks n complete: its height from its (complete) children, refused past kMaxNesting. Every
  // node with children goes through here, so flat chains ("1+1+1...", "x|f|f...", "a.b.c...")
  // that the parser builds in a loop are bounded too.
  NodePtr done(NodePtr n) const {
    int h = 0;
    auto see = [&h](const NodePtr& c) {
      if (c) h = std::max(h, c->height);
    };
    see(n->a);
    see(n->b);
    see(n->c);
    for (const auto& c : n->items) see(c);
    for (const auto& c : n->items2) see(c);
    for (const auto& kv : n->kwargs) see(kv.second);
    n->height = h + 1;
    if (n->height > kMaxNesting) too_deep(n->line, n->col);
    return n;
  }

  NodePtr make(NodeKind k, const Token& at) {
    auto n = std::make_unique<Node>();
    n->kind = k;
    n->line = at.line;
    n->col = at.col;
    return n;
  }

  // Statements until a block tag whose name is in `stop`; that tag's begin and name are consumed
  // and the name returned in `found`.
  std::vector<NodePtr> parse_body(const std::vector<std::string>& stop, std::string& found) {
    std::vector<NodePtr> body;
    for (;;) {
      const Token& t = peek();
      if (t.type == Tok::Eof) {
        if (!stop.empty()) {
          std::string want;
          for (const auto& s : stop) want += (want.empty() ? "'" : " or '") + s + "'";
          fail(t, "unexpected end of template; expected " + want);
        }
        return body;
      }
      if (t.type == Tok::Text) {
        auto n = make(NodeKind::Text, t);
        n->str = next().text;
        body.push_back(std::move(n));
      } else if (t.type == Tok::VarBegin) {
        next();
        auto n = make(NodeKind::Output, t);
        n->a = parse_expr();
        expect(Tok::VarEnd, "'}}'");
        body.push_back(done(std::move(n)));
      } else if (t.type == Tok::BlockBegin) {
        const Token& name = peek(1);
        if (name.type == Tok::Name &&
            std::find(stop.begin(), stop.end(), name.text) != stop.end()) {
          next();
          found = next().text;
          return body;
        }
        next();
        body.push_back(parse_statement());
      } else {
        fail(t, "unexpected " + describe(t));
      }
    }
  }

  NodePtr parse_statement() {
    Nest nest(*this);
    return done(parse_tag());
  }

  NodePtr parse_tag() {
    const Token& t = peek();
    if (t.type != Tok::Name) fail(t, "expected a tag name but found " + describe(t));
    const std::string tag = next().text;
    std::string found;
    if (tag == "if") return parse_if(t);
    if (tag == "for") {
      auto n = make(NodeKind::For, t);
      n->names.push_back(expect_identifier());
      while (accept_op(",")) n->names.push_back(expect_identifier());
      if (!accept_name("in")) fail(peek(), "expected 'in' but found " + describe(peek()));
      n->a = parse_or();
      if (accept_name("if")) n->b = parse_expr();
      if (at_name("recursive")) fail(peek(), "recursive loops are not supported");
      expect_block_end();
      n->items = parse_body({"else", "endfor"}, found);
      if (found == "else") {
        n->flag = true;
        expect_block_end();
        n->items2 = parse_body({"endfor"}, found);
      }
      expect_block_end();
      return n;
    }
    if (tag == "set") {
      auto n = make(NodeKind::Set, t);
      n->names.push_back(expect_identifier());
      if (accept_op(".")) {
        n->str = expect_identifier();  // set ns.attr = ...
      } else {
        while (accept_op(",")) n->names.push_back(expect_identifier());
      }
      if (accept_op("=")) {
        n->a = parse_expr();
        if (at_op(",")) {  // set a, b = x, y
          auto tup = make(NodeKind::ListLit, peek());
          tup->items.push_back(std::move(n->a));
          while (accept_op(",")) tup->items.push_back(parse_expr());
          n->a = done(std::move(tup));
        }
        expect_block_end();
        return n;
      }
      if (!n->str.empty() || n->names.size() != 1) fail(peek(), "expected '='");
      n->kind = NodeKind::SetBlock;
      if (at_op("|")) n->a = parse_filters(nullptr);
      expect_block_end();
      n->items = parse_body({"endset"}, found);
      expect_block_end();
      return n;
    }
    if (tag == "macro") {
      auto n = make(NodeKind::Macro, t);
      n->str = expect_identifier();
      expect_op("(");
      while (!at_op(")")) {
        std::string param = expect_identifier();
        NodePtr def;
        if (accept_op("=")) def = parse_expr();
        n->kwargs.emplace_back(param, std::move(def));
        if (!accept_op(",")) break;
      }
      expect_op(")");
      expect_block_end();
      n->items = parse_body({"endmacro"}, found);
      if (peek().type == Tok::Name) next();
      expect_block_end();
      return n;
    }
    if (tag == "filter") {
      auto n = make(NodeKind::FilterBlock, t);
      n->a = parse_filters(nullptr, /*first_has_pipe=*/false);
      expect_block_end();
      n->items = parse_body({"endfilter"}, found);
      expect_block_end();
      return n;
    }
    if (tag == "break" || tag == "continue") {
      auto n = make(tag == "break" ? NodeKind::Break : NodeKind::Continue, t);
      expect_block_end();
      return n;
    }
    if (tag == "generation") {  // transformers' assistant-mask marker: renders its body
      auto n = make(NodeKind::If, t);
      n->a = make(NodeKind::Literal, t);
      n->a->literal = Value(true);
      expect_block_end();
      n->items = parse_body({"endgeneration"}, found);
      expect_block_end();
      return n;
    }
    fail(t, "unknown tag '" + tag + "'");
  }

  NodePtr parse_if(const Token& t) {
    auto n = make(NodeKind::If, t);
    n->a = parse_expr();
    expect_block_end();
    std::string found;
    n->items = parse_body({"elif", "else", "endif"}, found);
    if (found == "elif") {
      Nest nest(*this);  // an elif chain nests one If in the next
      n->items2.push_back(parse_if(peek()));
    } else if (found == "else") {
      expect_block_end();
      n->items2 = parse_body({"endif"}, found);
      expect_block_end();
    } else {
      expect_block_end();
    }
    return done(std::move(n));
  }

  // ---- expressions, lowest precedence first (jinja2's parser order) ----

  NodePtr parse_expr() {
    Nest nest(*this);
    auto e = parse_or();
    while (at_name("if")) {
      auto n = make(NodeKind::Cond, next());
      n->b = std::move(e);
      n->a = parse_or();
      if (accept_name("else")) n->c = parse_expr();
      e = done(std::move(n));
    }
    return e;
  }

  NodePtr parse_or() {
    auto e = parse_and();
    while (at_name("or")) {
      auto n = make(NodeKind::Or, next());
      n->a = std::move(e);
      n->b = parse_and();
      e = done(std::move(n));
    }
    return e;
  }

  NodePtr parse_and() {
    auto e = parse_not();
    while (at_name("and")) {
      auto n = make(NodeKind::And, next());
      n->a = std::move(e);
      n->b = parse_not();
      e = done(std::move(n));
    }
    return e;
  }

  NodePtr parse_not() {
    if (at_name("not")) {
      Nest nest(*this);
      auto n = make(NodeKind::Not, next());
      n->a = parse_not();
      return done(std::move(n));
    }
    return parse_compare();
  }

  NodePtr parse_compare() {
    auto first = parse_math1();
    NodePtr cmp;
    for (;;) {
      std::string op;
      const Token& t = peek();
      if (t.type == Tok::Op && (t.text == "==" || t.text == "!=" || t.text == "<" ||
                                t.text == "<=" || t.text == ">" || t.text == ">=")) {
        op = t.text;
        next();
      } else if (at_name("in")) {
        op = "in";
        next();
      } else if (at_name("not") && at_name("in", 1)) {
        op = "not in";
        next();
        next();
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(NodeKind::Compare, t);
        cmp->items.push_back(std::move(first));
      }
      cmp->names.push_back(op);
      cmp->items.push_back(parse_math1());
    }
    return cmp ? done(std::move(cmp)) : std::move(first);
  }

  NodePtr binary(const Token& t, std::string op, NodePtr l, NodePtr r) {
    auto n = make(NodeKind::Binary, t);
    n->str = std::move(op);
    n->a = std::move(l);
    n->b = std::move(r);
    return done(std::move(n));
  }

  NodePtr parse_math1() {
    auto e = parse_concat();
    while (at_op("+") || at_op("-")) {
      const Token& t = next();
      e = binary(t, t.text, std::move(e), parse_concat());
    }
    return e;
  }

  NodePtr parse_concat() {
    auto e = parse_math2();
    while (at_op("~")) {
      const Token& t = next();
      e = binary(t, "~", std::move(e), parse_math2());
    }
    return e;
  }

  NodePtr parse_math2() {
    auto e = parse_pow();
    while (at_op("*") || at_op("/") || at_op("//") || at_op("%")) {
      const Token& t = next();
      e = binary(t, t.text, std::move(e), parse_pow());
    }
    return e;
  }

  NodePtr parse_pow() {
    auto e = parse_unary(true);
    while (at_op("**")) {
      const Token& t = next();
      e = binary(t, "**", std::move(e), parse_unary(true));
    }
    return e;
  }

  NodePtr parse_unary(bool with_filter) {
    NodePtr e;
    if (at_op("-") || at_op("+")) {
      Nest nest(*this);
      const Token& t = next();
      e = make(t.text == "-" ? NodeKind::Neg : NodeKind::Pos, t);
      e->a = parse_unary(false);
      e = done(std::move(e));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filters(std::move(e));
    return e;
  }

  NodePtr parse_primary() {
    const Token& t = peek();
    switch (t.type) {
      case Tok::Name: {
        next();
        auto lit = [&](Value v) {
          auto n = make(NodeKind::Literal, t);
          n->literal = std::move(v);
          return n;
        };
        if (t.text == "true" || t.text == "True") return lit(Value(true));
        if (t.text == "false" || t.text == "False") return lit(Value(false));
        if (t.text == "none" || t.text == "None") return lit(Value::none());
        auto n = make(NodeKind::Name, t);
        n->str = t.text;
        return n;
      }
      case Tok::String: {
        std::string s;
        while (peek().type == Tok::String) s += next().text;  // adjacent literals concatenate
        auto n = make(NodeKind::Literal, t);
        n->literal = Value(std::move(s));
        return n;
      }
      case Tok::Int:
      case Tok::Float: {
        next();
        auto n = make(NodeKind::Literal, t);
        try {
          n->literal = t.type == Tok::Int ? Value(static_cast<int64_t>(std::stoll(t.text)))
                                          : Value(std::stod(t.text));
        } catch (const std::exception&) {
          fail(t, "number out of range: " + t.text);
        }
        return n;
      }
      case Tok::Op:
        if (t.text == "(") {
          next();
          if (accept_op(")")) {
            auto empty = make(NodeKind::ListLit, t);
            empty->flag = true;  // a tuple
            return empty;
          }
          auto e = parse_expr();
          if (at_op(",")) {
            auto tup = make(NodeKind::ListLit, t);
            tup->flag = true;
            tup->items.push_back(std::move(e));
            while (accept_op(",") && !at_op(")")) tup->items.push_back(parse_expr());
            e = done(std::move(tup));
          }
          expect_op(")");
          return e;
        }
        if (t.text == "[") {
          next();
          auto n = make(NodeKind::ListLit, t);
          while (!at_op("]")) {
            n->items.push_back(parse_expr());
            if (!accept_op(",")) break;
          }
          expect_op("]");
          return done(std::move(n));
        }
        if (t.text == "{") {
          next();
          auto n = make(NodeKind::DictLit, t);
          while (!at_op("}")) {
            n->items.push_back(parse_expr());
            expect_op(":");
            n->items2.push_back(parse_expr());
            if (!accept_op(",")) break;
          }
          expect_op("}");
          return done(std::move(n));
        }
        break;
      default:
        break;
    }
    fail(t, "unexpected " + describe(t));
  }

  NodePtr parse_postfix(NodePtr e) {
    for (;;) {
      const Token& t = peek();
      if (at_op(".")) {
        next();
        if (peek().type == Tok::Int) {
          auto n = make(NodeKind::GetItem, t);
          n->a = std::move(e);
          n->b = make(NodeKind::Literal, peek());
          const Token& idx = next();
          try {
            n->b->literal = Value(static_cast<int64_t>(std::stoll(idx.text)));
          } catch (const std::exception&) {
            fail(idx, "number out of range: " + idx.text);
          }
          e = done(std::move(n));
        } else {
          auto n = make(NodeKind::GetAttr, t);
          n->a = std::move(e);
          n->str = expect_identifier();
          e = done(std::move(n));
        }
      } else if (at_op("[")) {
        next();
        NodePtr parts[3];
        int colons = 0;
        for (;;) {
          if (at_op(":")) {
            next();
            if (++colons > 2) fail(peek(), "too many ':' in slice");
            continue;
          }
          if (at_op("]")) break;
          if (parts[colons]) fail(peek(), "expected ']' but found " + describe(peek()));
          parts[colons] = parse_expr();
        }
        expect_op("]");
        if (colons == 0) {
          if (!parts[0]) fail(t, "empty subscript");
          auto n = make(NodeKind::GetItem, t);
          n->a = std::move(e);
          n->b = std::move(parts[0]);
          e = done(std::move(n));
        } else {
          auto n = make(NodeKind::Slice, t);
          n->a = std::move(e);
          for (auto& p : parts) n->items.push_back(std::move(p));
          e = done(std::move(n));
        }
      } else if (at_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  void parse_args(Node& n) {
    expect_op("(");
    while (!at_op(")")) {
      if (peek().type == Tok::Name && at_op("=", 1)) {
        std::string k = next().text;
        next();
        n.kwargs.emplace_back(k, parse_expr());
      } else {
        if (!n.kwargs.empty()) fail(peek(), "positional argument follows keyword argument");
        n.items.push_back(parse_expr());
      }
      if (!accept_op(",")) break;
    }
    expect_op(")");
  }

  NodePtr parse_call(NodePtr callee) {
    auto n = make(NodeKind::Call, peek());
    n->line = callee->line;  // errors point at the callee's name, not at '('
    n->col = callee->col;
    n->a = std::move(callee);
    parse_args(*n);
    return done(std::move(n));
  }

  bool starts_primary(const Token& t) const {
    switch (t.type) {
      case Tok::String:
      case Tok::Int:
      case Tok::Float:
        return true;
      case Tok::Name:
        return t.text != "else" && t.text != "or" && t.text != "and" && t.text != "if" &&
               t.text != "in" && t.text != "is" && t.text != "not";
      case Tok::Op:
        return t.text == "(" || t.text == "[" || t.text == "{";
      default:
        return false;
    }
  }

  // Filters (`| name(args)`), tests (`is [not] name args`) and calls after a unary expression.
  // With e == nullptr (filter blocks, set blocks) the first filter's input is supplied at run time.
  NodePtr parse_filters(NodePtr e, bool first_has_pipe = true) {
    bool need_pipe = first_has_pipe;
    for (;;) {
      const Token& t = peek();
      if (!need_pipe || at_op("|")) {
        if (need_pipe) next();
        need_pipe = true;
        auto n = make(NodeKind::Filter, peek());
        n->str = expect_identifier();
        n->a = std::move(e);
        if (at_op("(")) parse_args(*n);
        e = done(std::move(n));
      } else if (e && at_name("is")) {
        next();
        auto n = make(NodeKind::Test, t);
        n->flag = accept_name("not");
        const Token& nm = peek();
        if (nm.type == Tok::Name) {
          n->str = next().text;
        } else if (nm.type == Tok::Op && (nm.text == "==" || nm.text == "!=" || nm.text == "<" ||
                                          nm.text == "<=" || nm.text == ">" || nm.text == ">=")) {
          n->str = next().text;
        } else {
          fail(nm, "expected a test name but found " + describe(nm));
        }
        n->a = std::move(e);
        if (at_op("(")) {
          parse_args(*n);
        } else if (starts_primary(peek())) {
          n->items.push_back(parse_postfix(parse_primary()));
        }
        e = done(std::move(n));
      } else if (e && at_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  const std::vector<Token>& t_;
  std::string name_;
  size_t i_ = 0;
  int nest_ = 0;  // levels of Nest on the stack
};

}  // namespace

std::vector<NodePtr> parse(const std::vector<Token>& tokens, const std::string& name) {
  return Parser(tokens, name).parse_template();
}

}  // namespace hone::jinja
