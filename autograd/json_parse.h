// Parsing the JSON hone reads from files (safetensors headers, config.json, tokenizer.json,
// tokenizer_config.json, adapter_config.json, index files, JSONL data lines) with the nesting
// depth bounded. nlohmann's parser itself is iterative, but dump(), copies and comparisons
// recurse, so a value nested 200,000 levels deep would overflow the stack later, far from the
// file that caused it. Header-only, so only the libraries that parse JSON link nlohmann.
#pragma once

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <string_view>

#include "autograd/error.h"

namespace hone {

// Deeper than any real file (tokenizer.json: 5, chat data with tool calls: about 10), shallow
// enough that every recursive walk over a parsed value is safe on a 1 MiB thread stack.
inline constexpr int kMaxJsonDepth = 512;

// nlohmann's message without its "[json.exception.parse_error.101] " prefix.
inline std::string json_error_text(const std::exception& e) {
  std::string s = e.what();
  if (s.starts_with("[json.exception")) {
    if (auto p = s.find("] "); p != std::string::npos) s = s.substr(p + 2);
  }
  return s;
}

// Called for every parse event as nlohmann's parser_callback_t is (depth, event, value); return
// false to drop the value. May throw hone::Error to reject the input.
template <class Json>
using JsonEvent = std::function<bool(int, typename Json::parse_event_t, Json&)>;

// Parses `text`. Throws hone::Error "<origin>: invalid JSON: <what and where>" or "<origin>:
// JSON nested deeper than 512 levels"; with an empty `origin` the message starts at "invalid" /
// "JSON" (for callers that prefix "file:line: " themselves).
template <class Json = nlohmann::json>
Json parse_json(std::string_view text, const std::string& origin,
                const JsonEvent<Json>& on_event = nullptr) {
  const std::string at = origin.empty() ? "" : origin + ": ";
  struct TooDeep {};
  auto cb = [&](int depth, typename Json::parse_event_t ev, Json& value) {
    // `depth` counts the containers enclosing this event; a new container is one more level.
    if ((ev == Json::parse_event_t::object_start || ev == Json::parse_event_t::array_start) &&
        depth + 1 > kMaxJsonDepth)
      throw TooDeep{};
    return on_event ? on_event(depth, ev, value) : true;
  };
  try {
    return Json::parse(text.data(), text.data() + text.size(), cb);
  } catch (const TooDeep&) {
    throw Error(at + "JSON nested deeper than " + std::to_string(kMaxJsonDepth) +
                " levels (arrays/objects inside each other); hone refuses such input");
  } catch (const nlohmann::json::exception& e) {
    throw Error(at + "invalid JSON: " + json_error_text(e));
  }
}

// The whole file `path`, parsed as parse_json does; errors name `path`.
template <class Json = nlohmann::json>
Json parse_json_file(const std::string& path, const JsonEvent<Json>& on_event = nullptr) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open for reading");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(path + ": read error");
  return parse_json<Json>(ss.view(), path, on_event);
}

}  // namespace hone
