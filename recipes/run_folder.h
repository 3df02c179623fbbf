// Guarding a run's folders before any work: one run per folder at a time, and every folder the
// run will write to proven writable, so a refusal comes before step 1 and before any output.
#pragma once

#include <string>

namespace hone {

// An exclusive lock on `dir` for the object's lifetime: flock on <dir>/.hone.lock, which holds
// the holder's pid. The kernel drops it when the process ends, however it ends. Throws, naming
// `what` (e.g. "recipe.yaml: output.dir"), the folder and the holder's pid, when another process
// holds it, and with the OS's reason when the lock file cannot be created.
class FolderLock {
 public:
  FolderLock(const std::string& dir, const std::string& what);
  ~FolderLock();
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;

 private:
  int fd_ = -1;
};

// Creates, writes and removes a probe file in `dir`; throws naming `what`, the folder and the
// OS's reason ("Read-only file system", "Permission denied", "No space left on device", ...).
void check_writable(const std::string& dir, const std::string& what);

}  // namespace hone
