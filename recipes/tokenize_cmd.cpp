#include "recipes/tokenize_cmd.h"

#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "autograd/error.h"
#include "autograd/json_parse.h"
#include "recipes/model_tokenizer.h"

namespace hone {

namespace {

void print_ids(const std::vector<int32_t>& ids, std::ostream& out) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(ids[i]);
  }
  s += "]\n";
  out << s;
}

}  // namespace

int run_tokenize(const std::string& tokenizer_path, bool lines, bool special, std::istream& in,
                 std::ostream& out) {
  const auto tok = open_tokenizer(tokenizer_path);
  if (!lines) {
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    print_ids(tok->encode(text, special, special), out);
    return 0;
  }
  // A failed write (full disk, closed pipe) stops the loop; the caller reports why.
  for (std::string line; out && std::getline(in, line);)
    print_ids(tok->encode(line, special, special), out);
  return 0;
}

int run_detokenize(const std::string& tokenizer_path, std::istream& in, std::ostream& out) {
  const auto tok = open_tokenizer(tokenizer_path);
  size_t lineno = 0;
  for (std::string line; out && std::getline(in, line);) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::vector<int32_t> ids;
    try {
      const auto j = parse_json<nlohmann::json>(line, "");
      if (!j.is_array()) throw Error("not a JSON array");
      for (const auto& v : j) {
        if (!v.is_number_integer()) throw Error("not an integer: " + v.dump());
        const auto id = v.get<int64_t>();
        if (id < 0 || id >= tok->vocab_size()) {
          throw Error("id " + std::to_string(id) + " out of range [0, " +
                      std::to_string(tok->vocab_size()) + ")");
        }
        ids.push_back(static_cast<int32_t>(id));
      }
    } catch (const std::exception& e) {
      throw Error("detokenize: stdin:" + std::to_string(lineno) + ": " + e.what());
    }
    out << tok->decode(ids) << '\n';
  }
  return 0;
}

}  // namespace hone
