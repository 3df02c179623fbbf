// The one exception type hone's libraries throw; only the CLI's main turns it into an exit code.
#pragma once

#include <stdexcept>
#include <string>

namespace hone {

// Messages name the place first and the problem second, e.g.
// "model.safetensors: header length 912 exceeds file size 100".
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace hone
