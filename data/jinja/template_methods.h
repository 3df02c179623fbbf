// The Python semantics of values as the evaluator touches them: iteration, `in`, len(),
// attribute and item lookup (with str and dict methods) and the operators. Shared by the
// interpreter (template.cpp) and the filters (template_filters.cpp); errors are RuntimeFailure.
#pragma once

#include <cstddef>
#include <string>

#include "data/jinja/value.h"

namespace hone::jinja::detail {

[[noreturn]] void fail_undefined(const Value& v);
List iterate(const Value& v);  // a dict's keys, a string's characters; Undefined is empty
bool contains(const Value& container, const Value& item);
Value length_of(const Value& v);
// The argument at position i or keyword `name`, else def.
Value arg_or(const CallArgs& a, size_t i, const std::string& name, Value def);
Value string_method(const std::string& s, const std::string& name, const CallArgs& a);
Value items_of(const Map& m);  // dict.items(): (key, value) tuples
Value getattr(const Value& obj, const std::string& name);
Value getitem(const Value& obj, const Value& key);
// op: == != in "not in" < <= > >=
bool compare_op(const std::string& op, const Value& a, const Value& b);
// op: ~ + - * / // % **, with Python's semantics on 64-bit integers (overflow is an error)
Value binary(const std::string& op, const Value& a, const Value& b);

}  // namespace hone::jinja::detail
