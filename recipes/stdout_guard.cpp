#include "recipes/stdout_guard.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <streambuf>

namespace hone {

// A write(2)-backed buffer for fd 1. Line-buffered on a terminal (so an interactive
// `hone tokenize --lines` answers each line), fully buffered otherwise.
class StdoutGuard::Buf : public std::streambuf {
 public:
  Buf() : line_(::isatty(STDOUT_FILENO) == 1) { reset(); }
  int error() const { return err_; }
  bool wrote() const { return wrote_; }

 protected:
  int_type overflow(int_type c) override {
    if (!drain()) return traits_type::eof();
    if (!traits_type::eq_int_type(c, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(c);
      pbump(1);
      if (line_ && traits_type::to_char_type(c) == '\n' && !drain()) return traits_type::eof();
    }
    return traits_type::not_eof(c);
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    const std::streamsize put = std::streambuf::xsputn(s, n);
    if (line_ && std::memchr(s, '\n', static_cast<size_t>(n)) && !drain()) return 0;
    return put;
  }
  int sync() override { return drain() ? 0 : -1; }

 private:
  void reset() { setp(data_, data_ + sizeof data_); }
  // Writes out the buffer; after the first failure everything is dropped and false returned.
  bool drain() {
    const char* p = pbase();
    size_t n = static_cast<size_t>(pptr() - pbase());
    while (n > 0 && err_ == 0) {
      const ssize_t w = ::write(STDOUT_FILENO, p, n);
      if (w < 0) {
        if (errno != EINTR) err_ = errno;
        continue;
      }
      wrote_ = true;
      p += w;
      n -= static_cast<size_t>(w);
    }
    reset();
    return err_ == 0;
  }

  char data_[1 << 16];
  bool line_;
  bool wrote_ = false;
  int err_ = 0;
};

StdoutGuard::StdoutGuard() : buf_(std::make_unique<Buf>()) {
  prev_ = std::cout.rdbuf(buf_.get());
}

StdoutGuard::~StdoutGuard() {
  std::cout.rdbuf(prev_);
}

bool StdoutGuard::failed() const {
  return buf_->error() != 0;
}

std::string StdoutGuard::finish() {
  std::cout.flush();
  int err = buf_->error();
  // Anything written through C stdio (nothing should be) is flushed and checked as well.
  if (err == 0 && std::fflush(stdout) != 0) err = errno;
  if (err == 0 && std::ferror(stdout)) err = EIO;
  // close(2) reports errors a file system defers (NFS); a stdout closed by the caller (>&-)
  // is only an error when something was to be written to it.
  if (err == 0 && ::close(STDOUT_FILENO) != 0 && !(errno == EBADF && !buf_->wrote())) err = errno;
  return err == 0 ? "" : std::string("stdout: write failed: ") + std::strerror(err);
}

}  // namespace hone
