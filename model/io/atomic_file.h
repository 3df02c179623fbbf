// Writing files so that a crash or an error never leaves a half-written one: data goes to
// "<path>.tmp", is fsynced, then renamed over <path>, and the folder is fsynced.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

namespace hone {

// An open temporary file; `write` appends, errors name the temporary path.
class AtomicWriter {
 public:
  explicit AtomicWriter(int fd, std::string tmp) : fd_(fd), tmp_(std::move(tmp)) {}
  void write(const void* data, size_t n);
  void write(const std::string& s) { write(s.data(), s.size()); }

 private:
  int fd_;
  std::string tmp_;
};

// Throws Error("<path>: exists and is not a regular file (a character device); refusing to
// replace it") unless `path` is absent or a regular file. A rename over a device node, a FIFO, a
// symbolic link or a folder would replace that node itself (export --force to /dev/full once
// turned the device into a regular file).
void check_replaceable_file(const std::string& path);

// Calls fill(writer) on "<path>.tmp", then fsyncs and renames it over `path`. On any error the
// temporary file is removed and the Error rethrown; `path` is untouched. Refuses (before
// writing) a `path` that check_replaceable_file refuses.
void write_file_atomically(const std::string& path, const std::function<void(AtomicWriter&)>& fill);

// Fills a fresh temporary sibling folder "<out>.tmp-XXXXXX" (fill gets its path), then swaps it in
// as `out`: an absent or empty `out` is replaced by rename(2); a non-empty one is refused unless
// `force`, and then moved aside and removed only once the new folder is in place. On any error
// the temporary folder is removed and `out` is untouched. Refuses (before fill) an `out` that
// exists and is not a folder; creates `out`'s parent folders.
void write_folder_atomically(const std::string& out, bool force,
                             const std::function<void(const std::string& tmp)>& fill);

// For files written by other libraries (e.g. HDF5) to `tmp`: fsync, rename over `path`, fsync
// the folder. Removes `tmp` and throws on failure, or when `path` is not replaceable.
void commit_file(const std::string& tmp, const std::string& path);

}  // namespace hone
