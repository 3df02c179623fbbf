#include "data/jinja/syntax.h"

#include <algorithm>
#include <cstring>

#include "autograd/error.h"
#include "data/hf_text.h"

namespace hone::jinja {

namespace {

// Line and column (1-based, in bytes) of offsets into the normalised source.
class LineMap {
 public:
  explicit LineMap(const std::string& s) {
    starts_.push_back(0);
    for (size_t i = 0; i < s.size(); ++i)
      if (s[i] == '\n') starts_.push_back(i + 1);
  }
  std::pair<int, int> at(size_t off) const {
    auto it = std::upper_bound(starts_.begin(), starts_.end(), off) - 1;
    return {static_cast<int>(it - starts_.begin()) + 1, static_cast<int>(off - *it) + 1};
  }

 private:
  std::vector<size_t> starts_;
};

[[noreturn]] void fail_at(const std::string& name, int line, int col, const std::string& msg) {
  throw Error(name + ":" + std::to_string(line) + ":" + std::to_string(col) + ": " + msg);
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

class Lexer {
 public:
  Lexer(const std::string& source, const Options& opts, const std::string& name)
      : opts_(opts), name_(name) {
    // jinja2 normalises every newline sequence to "\n" and drops one trailing newline.
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        src_ += '\n';
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else {
        src_ += source[i];
      }
    }
    if (!opts.keep_trailing_newline && !src_.empty() && src_.back() == '\n') src_.pop_back();
    lines_ = std::make_unique<LineMap>(src_);
  }

  std::vector<Token> run() {
    const size_t n = src_.size();
    size_t pos = 0;
    bool strip_next = false;  // the previous tag ended with '-'
    while (pos <= n) {
      size_t open = find_tag(pos);
      std::string text = src_.substr(pos, (open == std::string::npos ? n : open) - pos);
      if (strip_next) {
        size_t k = 0;
        while (k < text.size() && is_space(text[k])) ++k;
        text.erase(0, k);
      }
      if (open == std::string::npos) {
        push_text(pos, std::move(text));
        break;
      }
      const char kind = src_[open + 1];
      const char mod = open + 2 < n ? src_[open + 2] : '\0';
      if (mod == '-') {
        while (!text.empty() && is_space(text.back())) text.pop_back();
      } else if (kind != '{' && mod != '+' && opts_.lstrip_blocks) {
        // Spaces and tabs from the start of the line up to a block or comment tag go.
        size_t nl = text.find_last_of('\n');
        size_t from = nl == std::string::npos ? 0 : nl + 1;
        bool line_start = nl != std::string::npos || pos == 0 || src_[pos - 1] == '\n';
        if (line_start && text.find_first_not_of(" \t", from) == std::string::npos)
          text.erase(from);
      }
      push_text(pos, std::move(text));
      strip_next = false;
      size_t p = open + 2 + ((mod == '-' || mod == '+') ? 1 : 0);

      if (kind == '#') {
        size_t end = src_.find("#}", p);
        if (end == std::string::npos) fail(open, "unclosed comment");
        pos = end + 2;
        if (end > p && src_[end - 1] == '-')
          strip_next = true;
        else if (opts_.trim_blocks && pos < n && src_[pos] == '\n')
          ++pos;
        continue;
      }

      const bool block = kind == '%';
      push(block ? Tok::BlockBegin : Tok::VarBegin, block ? "{%" : "{{", open);
      const size_t first_token = out_.size();
      bool plus_end = false;
      p = lex_tag(p, block, strip_next, plus_end);
      pos = p;
      if (block && !strip_next && !plus_end && opts_.trim_blocks && pos < n && src_[pos] == '\n')
        ++pos;

      // {% raw %}: everything up to {% endraw %} is text.
      if (block && out_.size() == first_token + 2 && out_[first_token].type == Tok::Name &&
          out_[first_token].text == "raw") {
        out_.resize(first_token - 1);
        pos = lex_raw(pos, open, strip_next);
      }
    }
    push(Tok::Eof, "", n);
    return std::move(out_);
  }

 private:
  size_t find_tag(size_t from) const {
    for (size_t i = from; i + 1 < src_.size(); ++i)
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#'))
        return i;
    return std::string::npos;
  }

  [[noreturn]] void fail(size_t off, const std::string& msg) const {
    auto [l, c] = lines_->at(off);
    fail_at(name_, l, c, msg);
  }

  void push(Tok t, std::string text, size_t off) {
    auto [l, c] = lines_->at(off);
    out_.push_back(Token{t, std::move(text), l, c});
  }

  void push_text(size_t off, std::string text) {
    if (!text.empty()) push(Tok::Text, std::move(text), off);
  }

  // Lexes the inside of a tag starting at p; returns the offset after its closing delimiter.
  size_t lex_tag(size_t p, bool block, bool& strip_after, bool& plus_end) {
    const size_t n = src_.size();
    int depth = 0;
    const char* close = block ? "%}" : "}}";
    for (;;) {
      while (p < n && is_space(src_[p])) ++p;
      if (p >= n) fail(p, std::string("unexpected end of template, expected '") + close + "'");
      if (depth == 0) {
        if ((src_[p] == '-' || src_[p] == '+') && src_.compare(p + 1, 2, close) == 0 &&
            (block || src_[p] == '-')) {
          strip_after = src_[p] == '-';
          plus_end = src_[p] == '+';
          push(block ? Tok::BlockEnd : Tok::VarEnd, close, p);
          return p + 3;
        }
        if (src_.compare(p, 2, close) == 0) {
          push(block ? Tok::BlockEnd : Tok::VarEnd, close, p);
          return p + 2;
        }
      }
      char c = src_[p];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t s = p;
        while (p < n && (std::isalnum(static_cast<unsigned char>(src_[p])) || src_[p] == '_')) ++p;
        push(Tok::Name, src_.substr(s, p - s), s);
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        size_t s = p;
        bool is_float = false;
        while (p < n && (std::isdigit(static_cast<unsigned char>(src_[p])) || src_[p] == '_')) ++p;
        if (p + 1 < n && src_[p] == '.' && std::isdigit(static_cast<unsigned char>(src_[p + 1]))) {
          is_float = true;
          ++p;
          while (p < n && (std::isdigit(static_cast<unsigned char>(src_[p])) || src_[p] == '_'))
            ++p;
        }
        if (p < n && (src_[p] == 'e' || src_[p] == 'E')) {
          size_t q = p + 1;
          if (q < n && (src_[q] == '+' || src_[q] == '-')) ++q;
          if (q < n && std::isdigit(static_cast<unsigned char>(src_[q]))) {
            is_float = true;
            p = q;
            while (p < n && std::isdigit(static_cast<unsigned char>(src_[p]))) ++p;
          }
        }
        std::string num = src_.substr(s, p - s);
        num.erase(std::remove(num.begin(), num.end(), '_'), num.end());
        push(is_float ? Tok::Float : Tok::Int, num, s);
      } else if (c == '\'' || c == '"') {
        size_t s = p;
        p = lex_string(p);
        out_.back().line = lines_->at(s).first;
        out_.back().col = lines_->at(s).second;
      } else {
        static const char* two[] = {"//", "**", "==", "!=", "<=", ">="};
        std::string op;
        for (const char* t : two)
          if (src_.compare(p, 2, t) == 0) op = t;
        if (op.empty()) {
          if (!std::strchr("+-*/%~<>=()[]{},.:|", c))
            fail(p, std::string("unexpected character '") + c + "'");
          op = std::string(1, c);
        }
        if (op == "(" || op == "[" || op == "{") ++depth;
        if (op == ")" || op == "]" || op == "}") {
          if (depth == 0) fail(p, "unexpected '" + op + "'");
          --depth;
        }
        push(Tok::Op, op, p);
        p += op.size();
      }
    }
  }

  size_t lex_string(size_t p) {
    const char q = src_[p];
    const size_t start = p++;
    std::string s;
    while (p < src_.size() && src_[p] != q) {
      char c = src_[p];
      if (c != '\\') {
        s += c;
        ++p;
        continue;
      }
      if (p + 1 >= src_.size()) break;
      char e = src_[p + 1];
      p += 2;
      switch (e) {
        case 'n':
          s += '\n';
          break;
        case 't':
          s += '\t';
          break;
        case 'r':
          s += '\r';
          break;
        case 'b':
          s += '\b';
          break;
        case 'f':
          s += '\f';
          break;
        case 'v':
          s += '\v';
          break;
        case 'a':
          s += '\a';
          break;
        case '0':
          s += '\0';
          break;
        case '\\':
          s += '\\';
          break;
        case '\'':
          s += '\'';
          break;
        case '"':
          s += '"';
          break;
        case '\n':
          break;
        case 'x':
        case 'u':
        case 'U': {
          size_t len = e == 'x' ? 2 : (e == 'u' ? 4 : 8);
          uint32_t cp = 0;
          for (size_t k = 0; k < len; ++k) {
            char h = p + k < src_.size() ? src_[p + k] : '\0';
            if (!std::isxdigit(static_cast<unsigned char>(h)))
              fail(p - 2, "truncated \\" + std::string(1, e) + " escape");
            cp = cp * 16 + static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(h))
                                                     ? h - '0'
                                                     : (std::tolower(h) - 'a' + 10));
          }
          if (cp > 0x10FFFF) fail(p - 2, "invalid \\U escape");
          hftext::append_utf8(s, cp);
          p += len;
          break;
        }
        default:
          s += '\\';
          s += e;
      }
    }
    if (p >= src_.size()) fail(start, "unterminated string literal");
    push(Tok::String, std::move(s), start);
    return p + 1;
  }

  // Text up to the matching {% endraw %}; returns the offset after it.
  size_t lex_raw(size_t pos, size_t raw_open, bool& strip_next) {
    const size_t n = src_.size();
    for (size_t i = pos; (i = src_.find("{%", i)) != std::string::npos; i += 2) {
      size_t p = i + 2;
      bool strip_before = p < n && src_[p] == '-';
      if (p < n && (src_[p] == '-' || src_[p] == '+')) ++p;
      while (p < n && is_space(src_[p])) ++p;
      if (src_.compare(p, 6, "endraw") != 0) continue;
      p += 6;
      while (p < n && is_space(src_[p])) ++p;
      bool strip_after = p < n && src_[p] == '-';
      if (strip_after) ++p;
      if (src_.compare(p, 2, "%}") != 0) continue;
      std::string text = src_.substr(pos, i - pos);
      if (strip_next) {
        size_t k = 0;
        while (k < text.size() && is_space(text[k])) ++k;
        text.erase(0, k);
      }
      if (strip_before)
        while (!text.empty() && is_space(text.back())) text.pop_back();
      push_text(pos, std::move(text));
      strip_next = strip_after;
      p += 2;
      if (!strip_after && opts_.trim_blocks && p < n && src_[p] == '\n') ++p;
      return p;
    }
    fail(raw_open, "missing {% endraw %}");
  }

  std::string src_;
  Options opts_;
  std::string name_;
  std::unique_ptr<LineMap> lines_;
  std::vector<Token> out_;
};

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
    fail_at(name_, t.line, t.col, msg);
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
        body.push_back(std::move(n));
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
          n->a = std::move(tup);
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
      n->items2.push_back(parse_if(peek()));
    } else if (found == "else") {
      expect_block_end();
      n->items2 = parse_body({"endif"}, found);
      expect_block_end();
    } else {
      expect_block_end();
    }
    return n;
  }

  // ---- expressions, lowest precedence first (jinja2's parser order) ----

  NodePtr parse_expr() {
    auto e = parse_or();
    while (at_name("if")) {
      auto n = make(NodeKind::Cond, next());
      n->b = std::move(e);
      n->a = parse_or();
      if (accept_name("else")) n->c = parse_expr();
      e = std::move(n);
    }
    return e;
  }

  NodePtr parse_or() {
    auto e = parse_and();
    while (at_name("or")) {
      auto n = make(NodeKind::Or, next());
      n->a = std::move(e);
      n->b = parse_and();
      e = std::move(n);
    }
    return e;
  }

  NodePtr parse_and() {
    auto e = parse_not();
    while (at_name("and")) {
      auto n = make(NodeKind::And, next());
      n->a = std::move(e);
      n->b = parse_not();
      e = std::move(n);
    }
    return e;
  }

  NodePtr parse_not() {
    if (at_name("not")) {
      auto n = make(NodeKind::Not, next());
      n->a = parse_not();
      return n;
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
    return cmp ? std::move(cmp) : std::move(first);
  }

  NodePtr binary(const Token& t, std::string op, NodePtr l, NodePtr r) {
    auto n = make(NodeKind::Binary, t);
    n->str = std::move(op);
    n->a = std::move(l);
    n->b = std::move(r);
    return n;
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
      const Token& t = next();
      e = make(t.text == "-" ? NodeKind::Neg : NodeKind::Pos, t);
      e->a = parse_unary(false);
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
            e = std::move(tup);
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
          return n;
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
          return n;
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
          e = std::move(n);
        } else {
          auto n = make(NodeKind::GetAttr, t);
          n->a = std::move(e);
          n->str = expect_identifier();
          e = std::move(n);
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
          e = std::move(n);
        } else {
          auto n = make(NodeKind::Slice, t);
          n->a = std::move(e);
          for (auto& p : parts) n->items.push_back(std::move(p));
          e = std::move(n);
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
    return n;
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
        e = std::move(n);
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
        e = std::move(n);
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
};

}  // namespace

std::vector<Token> tokenize(const std::string& source, const Options& opts,
                            const std::string& name) {
  return Lexer(source, opts, name).run();
}

std::vector<NodePtr> parse(const std::vector<Token>& tokens, const std::string& name) {
  return Parser(tokens, name).parse_template();
}

}  // namespace hone::jinja
