#include "model/io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "autograd/error.h"

namespace hone {

namespace {

void fsync_parent(const std::string& path) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = std::filesystem::current_path();
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

const char* kind_of(mode_t m) {
  if (S_ISDIR(m)) return "a folder";
  if (S_ISLNK(m)) return "a symbolic link";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

void fsync_dir(const std::filesystem::path& dir) {
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

// A fresh sibling folder "<out><tag>XXXXXX" (same filesystem, so rename is atomic).
std::filesystem::path make_sibling_dir(const std::filesystem::path& out, const std::string& tag) {
  std::string templ = out.string() + tag + "XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data()))
    throw Error(out.string() + ": cannot create temporary folder " + templ + ": " +
                std::strerror(errno));
  return std::filesystem::path(buf.data());
}

}  // namespace

void check_replaceable_file(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    throw Error(path + ": cannot stat: " + std::strerror(errno));
  }
  if (S_ISREG(st.st_mode)) return;
  throw Error(path + ": exists and is not a regular file (" + kind_of(st.st_mode) +
              "); refusing to replace it");
}

void AtomicWriter::write(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error(tmp_ + ": write failed: " + std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void write_file_atomically(const std::string& path,
                           const std::function<void(AtomicWriter&)>& fill) {
  check_replaceable_file(path);
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) throw Error(tmp + ": cannot create: " + std::strerror(errno));
  try {
    AtomicWriter w(fd, tmp);
    fill(w);
    if (::fsync(fd) != 0) throw Error(tmp + ": fsync failed: " + std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw Error(tmp + ": close failed: " + std::strerror(e));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw Error(path + ": rename from " + tmp + " failed: " + std::strerror(e));
  }
  fsync_parent(path);
}

void commit_file(const std::string& tmp, const std::string& path) {
  try {
    check_replaceable_file(path);
  } catch (const Error&) {
    ::unlink(tmp.c_str());
    throw;
  }
  int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw Error(tmp + ": cannot reopen to commit: " + std::strerror(e));
  }
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0 || std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw Error(path + ": could not replace with " + tmp + ": " + std::strerror(e));
  }
  fsync_parent(path);
}

void write_folder_atomically(const std::string& out_dir, bool force,
                             const std::function<void(const std::string& tmp)>& fill) {
  namespace fs = std::filesystem;
  if (out_dir.empty()) throw Error("output folder is empty");
  fs::path out = fs::path(out_dir).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();  // "dir/" -> "dir"
  std::error_code ec;
  bool replace = false;
  if (fs::exists(out, ec)) {
    if (!fs::is_directory(out, ec)) throw Error(out.string() + ": exists and is not a folder");
    if (!fs::is_empty(out, ec)) {
      if (!force)
        throw Error(out.string() +
                    ": folder exists and is not empty (choose another --out, or pass --force to "
                    "replace it)");
      replace = true;
    }
  } else if (out.has_parent_path()) {
    fs::create_directories(out.parent_path(), ec);
    if (ec) throw Error(out.parent_path().string() + ": cannot create folder: " + ec.message());
  }

  const fs::path tmp = make_sibling_dir(out, ".tmp-");
  try {
    // mkdtemp makes the folder 0700; the finished one gets a folder's usual mode (0777 less
    // the umask, as mkdir would give it).
    const mode_t mask = ::umask(0);
    ::umask(mask);
    if (::chmod(tmp.c_str(), 0777 & ~mask) != 0)
      throw Error(tmp.string() + ": cannot set the folder's mode: " + std::strerror(errno));
    fill(tmp.string());
    // Swap the finished folder in. An existing one is moved aside first (rename onto an empty
    // placeholder), and removed only once the new folder is in place.
    if (replace) {
      const fs::path old = make_sibling_dir(out, ".old-");
      if (std::rename(out.c_str(), old.c_str()) != 0) {
        const int e = errno;
        fs::remove(old, ec);
        throw Error(out.string() + ": cannot move the existing folder aside: " + std::strerror(e));
      }
      if (std::rename(tmp.c_str(), out.c_str()) != 0) {
        const int e = errno;
        std::rename(old.c_str(), out.c_str());
        throw Error(out.string() + ": rename from " + tmp.string() +
                    " failed: " + std::strerror(e));
      }
      fs::remove_all(old, ec);
    } else {
      // An empty existing folder is replaced by rename(2) directly.
      if (std::rename(tmp.c_str(), out.c_str()) != 0)
        throw Error(out.string() + ": rename from " + tmp.string() +
                    " failed: " + std::strerror(errno));
    }
    fsync_dir(out.has_parent_path() ? out.parent_path() : fs::current_path());
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace hone
