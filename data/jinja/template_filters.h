// Jinja's filters (`x | name(args)`) and tests (`x is name args`) as HF chat templates use them;
// internal to the interpreter (template.cpp). Errors are RuntimeFailure.
#pragma once

#include <string>

#include "data/jinja/value.h"

namespace hone::jinja::detail {

Value apply_filter(const std::string& name, const Value& v, const CallArgs& a);
bool apply_test(const std::string& name, const Value& v, const CallArgs& a);

}  // namespace hone::jinja::detail
