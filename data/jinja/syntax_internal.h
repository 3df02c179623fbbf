// What the lexer (lexer.cpp) and the parser (syntax.cpp) share: one format for their errors, so
// a lexical and a syntax error point at the template the same way.
#pragma once

#include <string>

#include "autograd/error.h"

namespace hone::jinja::detail {

// Throws hone::Error "<name>:line:col: msg".
[[noreturn]] inline void fail_at(const std::string& name, int line, int col,
                                 const std::string& msg) {
  throw Error(name + ":" + std::to_string(line) + ":" + std::to_string(col) + ": " + msg);
}

}  // namespace hone::jinja::detail
