// The value model of the Jinja interpreter: Python-like dynamic values (None, bool, int, float,
// str, list, dict, callables) plus Jinja's Undefined, so templates behave as under HF's jinja2.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace hone::jinja {

class Value;
using List = std::vector<Value>;

// Insertion-ordered dict with string keys: Python dicts keep insertion order and tojson shows it.
class Map {
 public:
  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value v);
  const std::vector<std::pair<std::string, Value>>& items() const { return items_; }
  size_t size() const;        // defined below Value: clang needs Value complete here
  bool is_namespace = false;  // namespace() objects are the only ones `set x.attr = ...` may write

 private:
  std::vector<std::pair<std::string, Value>> items_;
  std::unordered_map<std::string, size_t> index_;
};

struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  // The positional argument i, or the keyword `name`, or nullptr.
  const Value* get(size_t i, const std::string& name) const;
};
using Function = std::function<Value(const CallArgs&)>;

// A failure inside the interpreter's built-ins; the evaluator adds the template position and
// rethrows it as hone::Error.
struct RuntimeFailure {
  std::string message;
};

class Value {
 public:
  enum class Kind { Undefined, None, Bool, Int, Float, String, Array, Object, Callable };

  Value() = default;  // Undefined
  Value(bool b) : kind_(Kind::Bool), i_(b) {}
  Value(int i) : kind_(Kind::Int), i_(i) {}
  Value(int64_t i) : kind_(Kind::Int), i_(i) {}
  Value(double f) : kind_(Kind::Float), f_(f) {}
  Value(std::string s) : kind_(Kind::String), s_(std::move(s)) {}
  Value(const char* s) : kind_(Kind::String), s_(s) {}
  Value(List l) : kind_(Kind::Array), list_(std::make_shared<List>(std::move(l))) {}
  Value(Map m) : kind_(Kind::Object), map_(std::make_shared<Map>(std::move(m))) {}

  // hint: the message used when the undefined value is used in a way that needs a value.
  static Value undefined(std::string hint = "");
  static Value none();
  static Value function(Function f);
  static Value tuple(List items);  // a list that prints as Python's tuple: (1, 2)
  static Value from_json(const nlohmann::ordered_json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::Undefined; }
  bool is_none() const { return kind_ == Kind::None; }
  bool is_bool() const { return kind_ == Kind::Bool; }
  bool is_int() const { return kind_ == Kind::Int; }
  bool is_float() const { return kind_ == Kind::Float; }
  bool is_number() const {
    return kind_ == Kind::Int || kind_ == Kind::Float || kind_ == Kind::Bool;
  }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_list() const { return kind_ == Kind::Array; }
  bool is_map() const { return kind_ == Kind::Object; }
  bool is_function() const { return kind_ == Kind::Callable; }
  bool is_tuple() const { return kind_ == Kind::Array && tuple_; }

  bool as_bool() const { return i_ != 0; }
  int64_t as_int() const { return kind_ == Kind::Float ? static_cast<int64_t>(f_) : i_; }
  double as_float() const { return kind_ == Kind::Float ? f_ : static_cast<double>(i_); }
  const std::string& as_string() const { return s_; }
  const List& as_list() const { return *list_; }
  const Map& as_map() const { return *map_; }
  Map& mutable_map() const { return *map_; }
  const Function& as_function() const { return *fn_; }
  const std::string& undefined_hint() const { return s_; }

  bool truthy() const;
  std::string str() const;   // Python str(); Undefined renders as ""
  std::string repr() const;  // Python repr()
  // Python json.dumps(ensure_ascii=False, sort_keys=False) as transformers' tojson filter does;
  // indent < 0 means no indent (separators ", " and ": ").
  std::string to_json(int indent = -1) const;
  nlohmann::ordered_json to_json_value() const;
  std::string type_name() const;  // Python's name for the type, for error messages

 private:
  Kind kind_ = Kind::Undefined;
  bool tuple_ = false;
  int64_t i_ = 0;
  double f_ = 0;
  std::string s_;
  std::shared_ptr<List> list_;
  std::shared_ptr<Map> map_;
  std::shared_ptr<Function> fn_;
};

inline size_t Map::size() const {
  return items_.size();
}

bool operator==(const Value& a, const Value& b);
// Python ordering for numbers, strings and lists; throws RuntimeFailure otherwise.
int compare(const Value& a, const Value& b);
// Python repr() of a float: shortest round-trip digits, "1.0", "1e-05", "1e+16".
std::string format_float(double f);

}  // namespace hone::jinja
