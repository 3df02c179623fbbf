#include "recipes/run_folder.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "autograd/error.h"

namespace hone {

namespace fs = std::filesystem;

FolderLock::FolderLock(const std::string& dir, const std::string& what) {
  const std::string path = (fs::path(dir) / ".hone.lock").string();
  // No O_TRUNC: the file may be another run's live lock; it is rewritten only once ours.
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw Error(what + ": cannot create the lock file " + path + ": " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    char buf[32] = {};
    const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
    ::close(fd_);
    fd_ = -1;
    if (e != EWOULDBLOCK) throw Error(what + ": cannot lock " + path + ": " + std::strerror(e));
    std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    throw Error(what + ": " + dir + " is in use by another hone run (pid " +
                (pid.empty() ? "unknown" : pid) + ", holding " + path +
                "); wait for it to end, or choose another folder");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) < 0) {
    const int e = errno;
    ::close(fd_);
    fd_ = -1;
    throw Error(what + ": cannot write the lock file " + path + ": " + std::strerror(e));
  }
}

FolderLock::~FolderLock() {
  // The file stays: removing it would let a third run lock a new file while a second still
  // waits on the old one. Closing releases the lock.
  if (fd_ >= 0) ::close(fd_);
}

void check_writable(const std::string& dir, const std::string& what) {
  const std::string probe =
      (fs::path(dir) / (".hone-write-probe-" + std::to_string(::getpid()))).string();
  int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(what + ": cannot write in " + dir + ": " + std::strerror(errno));
  const char byte = 0;
  const bool ok = ::write(fd, &byte, 1) == 1;
  const int e = errno;
  ::close(fd);
  ::unlink(probe.c_str());
  if (!ok) throw Error(what + ": cannot write in " + dir + ": " + std::strerror(e));
}

}  // namespace hone
