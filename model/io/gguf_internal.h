// What the GGUF reader (gguf.cpp) and writer (gguf_writer.cpp) share: the byte order they assume,
// the limits both enforce and the "<path>: <problem>" error.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>

#include "autograd/error.h"

namespace hone::gguf_detail {

static_assert(std::endian::native == std::endian::little, "GGUF I/O assumes little-endian");

[[noreturn]] inline void fail(const std::string& path, const std::string& what) {
  throw Error(path + ": " + what);
}

constexpr uint64_t kDefaultAlignment = 32;
constexpr size_t kMaxTensorName = 63;  // ggml's GGML_MAX_NAME (64) minus the NUL
constexpr int kMaxArrayDepth = 8;

}  // namespace hone::gguf_detail
