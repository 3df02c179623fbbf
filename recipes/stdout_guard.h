// Standard output that knows why it failed. A full disk (`hone tokenize > file`), a closed pipe
// or /dev/full must not end in exit 0 with the output cut: std::cout is pointed at a buffer that
// writes to fd 1 with write(2) and keeps the first errno, so `main` can check it once at exit and
// name the reason ("No space left on device").
#pragma once

#include <memory>
#include <string>

namespace hone {

class StdoutGuard {
 public:
  // Installs the buffer into std::cout (restored by the destructor).
  StdoutGuard();
  ~StdoutGuard();
  StdoutGuard(const StdoutGuard&) = delete;
  StdoutGuard& operator=(const StdoutGuard&) = delete;

  // True once a write to stdout failed; later writes are dropped.
  bool failed() const;
  // Flushes std::cout (and C stdio's stdout) and closes fd 1. Returns "" when every byte
  // reached stdout, else "stdout: write failed: <strerror>".
  std::string finish();

 private:
  class Buf;
  std::unique_ptr<Buf> buf_;
  std::streambuf* prev_;
};

}  // namespace hone
