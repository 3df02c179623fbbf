// Running the real `hone` binary from a test, and reading files back.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

namespace hone::test {

struct Outcome {
  int status;  // exit code, or 128 + signal
  std::string out;
};

// A shell command's exit status and captured output.
inline Outcome run_command(const std::string& cmd) {
  std::array<char, 4096> buf;
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {-1, ""};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int st = pclose(p);
  int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return {code, out};
}

// `hone -q ARGS`. `redirects` are the shell's, applied in order: by default stderr joins the
// captured stdout; "2>&1 >FILE" captures stderr alone and sends stdout to FILE.
inline Outcome run_hone(const std::string& args, const std::string& redirects = "2>&1") {
  return run_command(std::string(HONE_BINARY_DIR) + "/hone -q " + args + " " + redirects);
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace hone::test
