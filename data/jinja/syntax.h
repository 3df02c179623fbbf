// Lexer and parser of the Jinja subset that chat templates use: template text → token stream
// (with jinja2's whitespace control applied) → AST.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "data/jinja/value.h"

namespace hone::jinja {

struct Options {
  bool trim_blocks = true;    // transformers renders with trim_blocks=True ...
  bool lstrip_blocks = true;  // ... and lstrip_blocks=True
  bool keep_trailing_newline = false;
};

enum class Tok { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };

struct Token {
  Tok type;
  std::string text;  // text, name, operator, or the unescaped string literal
  int line = 1, col = 1;
};

// Throws hone::Error "<name>:line:col: message" on a lexical error.
std::vector<Token> tokenize(const std::string& source, const Options& opts,
                            const std::string& name);

enum class NodeKind {
  // expressions
  Literal,
  Name,
  ListLit,
  DictLit,
  GetAttr,
  GetItem,
  Slice,
  Call,
  Filter,
  Test,
  Not,
  Neg,
  Pos,
  And,
  Or,
  Binary,
  Compare,
  Cond,
  // statements
  Text,
  Output,
  If,
  For,
  Set,
  SetBlock,
  Macro,
  Break,
  Continue,
  FilterBlock,
  CallBlock
};

// The most levels of nesting a parsed template may have (real chat templates nest fewer than 20).
// Bounding the tree's height bounds every recursion over it: the parser's, the evaluator's and the
// nodes' own destructors; a deeper template is a syntax error, "template nested too deeply".
inline constexpr int kMaxNesting = 256;

struct Node;
using NodePtr = std::unique_ptr<Node>;

// One node shape for all kinds; the comment on each kind's parser says which slots it uses.
struct Node {
  NodeKind kind;
  int line = 0, col = 0;
  int height = 1;               // levels of nodes from this one down to its deepest leaf
  std::string str;              // name, attribute, operator, filter/test name, text
  Value literal;                // Literal
  NodePtr a, b, c;              // operands
  std::vector<NodePtr> items;   // arguments, list items, dict keys, body
  std::vector<NodePtr> items2;  // dict values, else-body
  std::vector<std::pair<std::string, NodePtr>> kwargs;
  std::vector<std::string> names;  // for/set targets, macro parameters, compare operators
  bool flag = false;               // negated test; for-loop has else; list literal is a tuple
};

// Parses a whole template into its top-level statement list.
std::vector<NodePtr> parse(const std::vector<Token>& tokens, const std::string& name);

}  // namespace hone::jinja
