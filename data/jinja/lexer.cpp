// The lexer half of syntax.h: template text → tokens. jinja2's newline normalisation and its
// whitespace control (trim_blocks, lstrip_blocks, '-' / '+' on tags, {% raw %}) happen here, so
// the parser (syntax.cpp) sees only the text that renders.
#include <algorithm>
#include <cstring>

#include "data/hf_text.h"
#include "data/jinja/syntax.h"
#include "data/jinja/syntax_internal.h"

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
    detail::fail_at(name_, l, c, msg);
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

}  // namespace

std::vector<Token> tokenize(const std::string& source, const Options& opts,
                            const std::string& name) {
  return Lexer(source, opts, name).run();
}

}  // namespace hone::jinja
