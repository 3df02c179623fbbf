#include "recipes/metrics_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "autograd/error.h"
#include "model/io/atomic_file.h"

namespace hone {

MetricsLog::MetricsLog(std::string path, std::string initial)
    : path_(std::move(path)), text_(std::move(initial)) {
  write_file_atomically(path_, [&](AtomicWriter& w) { w.write(text_); });
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0) throw Error(path_ + ": cannot open for appending: " + std::strerror(errno));
}

MetricsLog::~MetricsLog() {
  if (fd_ >= 0) ::close(fd_);
}

void MetricsLog::add(const nlohmann::json& record) {
  const std::string line = record.dump() + "\n";
  if (fd_ < 0) throw Error(path_ + ": cannot write metrics: the file is closed");
  const char* p = line.data();
  size_t n = line.size();
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error(path_ + ": cannot write metrics: " + std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  text_ += line;
}

void MetricsLog::close() {
  if (fd_ < 0) return;
  const int fd = fd_;
  fd_ = -1;
  const bool synced = ::fsync(fd) == 0;
  const int e = errno;
  if (::close(fd) != 0 || !synced)
    throw Error(path_ + ": cannot write metrics: " + std::strerror(synced ? errno : e));
}

}  // namespace hone
