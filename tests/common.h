// Helpers shared by the tests: where ../shared is, and skipping when it is absent.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace hone::test {

inline std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("HONE_SHARED")) return env;
  return HONE_SHARED_DIR;
}

// Full path of a file under ../shared, or "" when it is not there.
inline std::string shared_file(const std::string& rel) {
  auto p = shared_dir() / rel;
  return std::filesystem::exists(p) ? p.string() : std::string();
}

}  // namespace hone::test

// Skips the current test (reported as skipped, never passed) when ../shared/rel is missing.
#define HONE_REQUIRE_SHARED(var, rel)               \
  std::string var = ::hone::test::shared_file(rel); \
  if (var.empty()) GTEST_SKIP() << "../shared/" << (rel) << " not present"
