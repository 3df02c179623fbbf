// Shared pieces of the libFuzzer targets (tests/fuzz/fuzz_*.cpp): a scratch folder per process,
// the input written to a file for the parsers that take a path, and one input split into several
// files. hone::Error is the expected outcome of bad input; anything else (a crash, a sanitizer
// report, another exception escaping, a hang) is a finding.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "autograd/error.h"

namespace hone::fuzz {

// A folder of its own under $TMPDIR for this process (ctest points TMPDIR into the build tree),
// removed at a normal exit; a crashed run leaves it for inspection.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    std::string tmpl = (std::filesystem::temp_directory_path() / "hone_fuzz_XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) std::abort();
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return std::filesystem::path(tmpl);
  }();
  return dir;
}

// A subfolder of the scratch folder (created), for parsers that look beside the file they read.
inline std::string scratch_subdir(const std::string& name) {
  const auto p = scratch_dir() / name;
  std::filesystem::create_directories(p);
  return p.string();
}

// Writes `bytes` to `dir`/`name` (truncating) and returns the path.
inline std::string write_file(const std::string& dir, const std::string& name,
                              std::string_view bytes) {
  const std::string path = (std::filesystem::path(dir) / name).string();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) std::abort();  // the harness itself failed, not the parser
  return path;
}

// Called with every hone::Error a target catches: silent while fuzzing; with HONE_FUZZ_VERBOSE set
// (e.g. when replaying one input by hand) it prints the message, to see how far an input got.
inline void expected(const hone::Error& e) {
  static const bool verbose = std::getenv("HONE_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "hone::Error: %s\n", e.what());
}

// Reads every byte each tensor of a name -> Tensor map claims, so a view past its buffer shows up
// under ASan.
template <class TensorMap>
inline void read_every_byte(const TensorMap& tensors) {
  unsigned sum = 0;
  for (const auto& [name, t] : tensors) {
    const auto* p = static_cast<const unsigned char*>(t.raw());
    for (size_t i = 0; i < t.nbytes(); ++i) sum += p[i];
  }
  volatile unsigned sink = sum;
  (void)sink;
}

inline std::string_view as_view(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Splits an input at every occurrence of `sep`: "a<sep>b" -> {"a", "b"}. Seeds for targets that
// read two files (tokenizer.json + tokenizer_config.json) keep both in one input this way.
inline std::vector<std::string_view> split(std::string_view in, std::string_view sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (size_t at; (at = in.find(sep, start)) != std::string_view::npos; start = at + sep.size())
    parts.push_back(in.substr(start, at - start));
  parts.push_back(in.substr(start));
  return parts;
}

}  // namespace hone::fuzz
