// Guarded output folders, with the real `hone` binary: one run per folder (a lock naming the
// holder), folders that cannot be written are found before step 1 with the OS's reason, a file
// size limit fails the write instead of killing the run, and a refused run writes nothing.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "recipes/checkpoint.h"
#include "recipes/run_checkpoint.h"
#include "tmpdir.h"
#include "train_helpers.h"

using namespace hone;
namespace fs = std::filesystem;

namespace {

// Runs `hone -q args...` with stdout and stderr into `log`, the file size limited to `fsize`
// bytes (0 = unlimited) in the child only; returns the exit code or 128 + signal.
int run_limited(const std::vector<std::string>& args, const std::string& log, rlim_t fsize) {
  std::string bin = std::string(HONE_BINARY_DIR) + "/hone";
  std::vector<std::string> all = {bin, "-q"};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
    }
    if (fsize > 0) {
      struct rlimit rl = {fsize, fsize};
      setrlimit(RLIMIT_FSIZE, &rl);
    }
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

std::vector<std::string> temp_files_under(const std::string& dir) {
  std::vector<std::string> found;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->path().extension() == ".tmp") found.push_back(it->path().string());
  return found;
}

class RunGuard : public ::testing::Test {
 protected:
  test::TempDir dir;
};

// The issue: started 0.05 s apart, two runs into one folder both "succeeded" with interleaved
// checkpoints. The second is refused while the first holds the folder, naming its pid; the lock
// goes with the process, so after a SIGKILL the folder is free again.
TEST_F(RunGuard, ASecondRunIntoTheSameFolderIsRefusedNamingTheHolder) {
  const std::string out = dir.file("shared");
  const std::string recipe = test::write_small_recipe(dir.file("r.yaml"), out, 5000);
  pid_t first = test::spawn_train(recipe);
  ASSERT_GT(first, 0);
  ASSERT_TRUE(test::wait_for(checkpoint_path(out + "/checkpoints", 1), first));
  for (const std::string extra : {" --resume", ""}) {
    test::Outcome r = test::run_hone("train " + recipe + extra);
    SCOPED_TRACE("second run: train" + extra);
    EXPECT_EQ(r.status, 1) << r.out;
    EXPECT_NE(r.out.find("pid " + std::to_string(first)), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(out), std::string::npos) << r.out;
  }
  kill(first, SIGKILL);
  waitpid(first, nullptr, 0);
  // The kernel released the lock: a resume runs (to the step it stopped at: no further training).
  const std::string latest = latest_checkpoint(out + "/checkpoints");
  ASSERT_FALSE(latest.empty());
  const int64_t at = std::stoll(fs::path(latest).stem().string().substr(5));
  test::Outcome r =
      test::run_hone("train " + recipe + " training.max_steps=" + std::to_string(at) + " --resume");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(fs::exists(out + "/adapter_model.safetensors"));
}

// `ulimit -f`: SIGXFSZ used to kill the run mid-checkpoint, leaving a .tmp. Now the write fails
// with EFBIG, the error says so, the temporary file is removed and the exit status is 1.
TEST_F(RunGuard, AFileSizeLimitFailsTheCheckpointWriteCleanly) {
  const std::string out = dir.file("limited");
  const std::string recipe = test::write_small_recipe(dir.file("r.yaml"), out, 3);
  const std::string log = dir.file("log.txt");
  // A first run without the limit caches the corpus's token store (about 200 KB), so that the
  // limited run's first large write is its checkpoint.
  const std::string warm = test::write_small_recipe(dir.file("w.yaml"), dir.file("warm"), 2);
  ASSERT_EQ(run_limited({"train", warm}, log, 0), 0) << test::slurp(log);
  // Room for recipe.yaml and metrics.jsonl, not for a checkpoint (about 300 KB here).
  const int status = run_limited({"train", recipe}, log, 64 * 1024);
  const std::string msg = test::slurp(log);
  EXPECT_EQ(status, 1) << msg;
  EXPECT_NE(msg.find("File too large"), std::string::npos) << msg;
  EXPECT_NE(msg.find(out + "/checkpoints/step-00000001.h5"), std::string::npos) << msg;
  EXPECT_EQ(temp_files_under(out), std::vector<std::string>{});
  EXPECT_TRUE(latest_checkpoint(out + "/checkpoints").empty());
}

// The same for every command that writes files: SIGXFSZ is ignored process-wide, so an export
// past the limit fails with "File too large", exit 1, and leaves no temporary file.
TEST_F(RunGuard, AFileSizeLimitFailsAnExportCleanly) {
  const std::string out = dir.file("exported");
  fs::create_directories(out);
  const std::string log = dir.file("log.txt");
  // The f32 GGUF of stories260K is about 1 MB.
  const int status =
      run_limited({"export", "--model", test::repo_file("data/samples/stories260K/stories260K.bin"),
                   "--format", "gguf", "--out", out + "/model.gguf"},
                  log, 64 * 1024);
  const std::string msg = test::slurp(log);
  EXPECT_EQ(status, 1) << msg;
  EXPECT_NE(msg.find("File too large"), std::string::npos) << msg;
  EXPECT_EQ(temp_files_under(out), std::vector<std::string>{});
  EXPECT_FALSE(fs::exists(out + "/model.gguf"));
}

// Sets the immutable attribute on `path` (refused even to root) for the object's lifetime; when
// the file system or the process cannot, falls back to mode 0555 (enough for non-root users).
class Unwritable {
 public:
  explicit Unwritable(std::string path) : path_(std::move(path)) {
    fs::create_directories(path_);
    int fd = ::open(path_.c_str(), O_RDONLY | O_DIRECTORY);
    int flags = 0;
    if (fd >= 0 && ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
      int imm = flags | FS_IMMUTABLE_FL;
      immutable_ = ioctl(fd, FS_IOC_SETFLAGS, &imm) == 0;
    }
    if (fd >= 0) ::close(fd);
    if (!immutable_) fs::permissions(path_, fs::perms(0555));
  }
  ~Unwritable() {
    if (immutable_) {
      int fd = ::open(path_.c_str(), O_RDONLY | O_DIRECTORY);
      int flags = 0;
      if (fd >= 0 && ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
        flags &= ~FS_IMMUTABLE_FL;
        ioctl(fd, FS_IOC_SETFLAGS, &flags);
      }
      if (fd >= 0) ::close(fd);
    }
    std::error_code ec;
    fs::permissions(path_, fs::perms(0755), ec);
  }
  // Whether creating a file there really fails for this process.
  bool effective() const {
    const std::string probe = path_ + "/probe";
    int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) return true;
    ::close(fd);
    ::unlink(probe.c_str());
    return false;
  }

 private:
  std::string path_;
  bool immutable_ = false;
};

// The issue: an existing read-only or immutable checkpoint folder was found only at the first
// checkpoint, minutes in, as "cannot create HDF5 file" with no cause. Now before step 1 (nothing is
// written to the output folder) with the OS's reason. Two folders root cannot write: an immutable
// one on the temp file system and /sys (sysfs creates no files, for root neither).
TEST_F(RunGuard, AnUnwritableCheckpointFolderIsFoundBeforeStepOneWithTheReason) {
  const std::string locked = dir.file("ckpt-locked");
  Unwritable guard(locked);
  std::vector<std::string> folders;
  if (guard.effective()) folders.push_back(locked);
  if (fs::is_directory("/sys/kernel")) folders.push_back("/sys/kernel");
  if (folders.empty()) GTEST_SKIP() << "no folder this process cannot write to";
  for (const std::string& ckpt : folders) {
    SCOPED_TRACE(ckpt);
    const std::string out = dir.file("out");
    fs::remove_all(out);
    const std::string recipe = test::write_small_recipe(dir.file("r.yaml"), out, 3);
    test::Outcome r = test::run_hone("train " + recipe + " checkpoint.dir=" + ckpt);
    EXPECT_EQ(r.status, 1) << r.out;
    EXPECT_NE(r.out.find("checkpoint.dir"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(ckpt), std::string::npos) << r.out;
    const bool reason = r.out.find("Operation not permitted") != std::string::npos ||
                        r.out.find("Permission denied") != std::string::npos ||
                        r.out.find("Read-only file system") != std::string::npos;
    EXPECT_TRUE(reason) << r.out;
    EXPECT_FALSE(fs::exists(out + "/recipe.yaml")) << r.out;
    EXPECT_FALSE(fs::exists(out + "/metrics.jsonl")) << r.out;
  }
}

// The issue: a run refused because the folder holds an earlier run's checkpoints had already
// overwritten that run's recipe.yaml (and metrics). A refused run writes nothing.
TEST_F(RunGuard, ARefusedRunLeavesTheEarlierRunsFilesByteIdentical) {
  const std::string out = dir.file("earlier");
  const std::string recipe = test::write_small_recipe(dir.file("r.yaml"), out, 3);
  test::Outcome a = test::run_hone("train " + recipe);
  ASSERT_EQ(a.status, 0) << a.out;
  const std::string recipe_yaml = test::slurp(out + "/recipe.yaml");
  const std::string metrics = test::slurp(out + "/metrics.jsonl");
  const std::string adapter = test::slurp(out + "/adapter_model.safetensors");
  ASSERT_FALSE(recipe_yaml.empty());
  ASSERT_FALSE(metrics.empty());

  test::Outcome b = test::run_hone("train " + recipe + " optimizer.lr=1e-3 training.max_steps=5");
  EXPECT_EQ(b.status, 1) << b.out;
  EXPECT_NE(b.out.find("earlier run"), std::string::npos) << b.out;
  EXPECT_TRUE(test::slurp(out + "/recipe.yaml") == recipe_yaml);
  EXPECT_TRUE(test::slurp(out + "/metrics.jsonl") == metrics);
  EXPECT_TRUE(test::slurp(out + "/adapter_model.safetensors") == adapter);
  EXPECT_EQ(temp_files_under(out), std::vector<std::string>{});
}

}  // namespace
