// Data- and pipeline-parallel training under mpirun on localhost: every layout (ranks that divide
// the step's micro-batches, stages that divide the blocks) gives bitwise the single process's
// adapter, losses and held-out figures; resume works across a change of layout; a signal to the
// launcher saves; a killed rank ends the job.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <thread>

#include "mpi_helpers.h"
#include "tmpdir.h"

extern char** environ;

namespace fs = std::filesystem;
using namespace hone::test;

namespace {

std::string adapter(const std::string& out) {
  return read_bytes(out + "/adapter_model.safetensors");
}

class DataParallel : public ::testing::TestWithParam<const char*> {};

// Data parallel (D = 2, 4), pipeline (S = 2), both (S = 2 × D = 2), and the pipeline with
// activation checkpointing: every layout trains the single process's adapter, bit for bit.
TEST_P(DataParallel, EveryLayoutGivesTheSingleProcessRunBitwise) {
  HONE_REQUIRE_SHARED(model, std::string("fixtures/models/") + GetParam());
  HONE_REQUIRE_MPI();
  TempDir dir;
  const std::string recipe = write_fixture_recipe(dir.path().string(), GetParam());
  const Outcome one = run_hone("train " + recipe + " output.dir=" + dir.file("n1"));
  ASSERT_EQ(one.status, 0) << one.out;
  const std::string expected = adapter(dir.file("n1"));
  ASSERT_FALSE(expected.empty());
  struct Layout {
    int np;
    const char* overrides;
  };
  int run = 0;
  for (const Layout& l : {Layout{2, ""}, Layout{4, ""}, Layout{2, "training.pipeline_stages=2"},
                          Layout{4, "training.pipeline_stages=2"},
                          Layout{2,
                                 "training.pipeline_stages=2 "
                                 "training.activation_checkpointing=true"}}) {
    char name[16];
    std::snprintf(name, sizeof name, "run%d", run++);
    const std::string out = dir.file(name);
    const std::string what = std::to_string(l.np) + " ranks " + l.overrides;
    const Outcome r =
        run_hone_mpi(l.np, "train " + recipe + " output.dir=" + out + " " + l.overrides);
    ASSERT_EQ(r.status, 0) << what << "\n" << r.out;
    EXPECT_EQ(adapter(out), expected) << what;
    // Training losses, gradient norms, learning rates and held-out losses, every one exact.
    EXPECT_EQ(metrics_without_timing(out + "/metrics.jsonl"),
              metrics_without_timing(dir.file("n1") + "/metrics.jsonl"))
        << what;
    // One set of outputs, as a single process writes them; the same final checkpoint.
    EXPECT_TRUE(fs::exists(out + "/recipe.yaml"));
    EXPECT_EQ(read_bytes(out + "/adapter_config.json"),
              read_bytes(dir.file("n1") + "/adapter_config.json"));
  }
}

INSTANTIATE_TEST_SUITE_P(FixtureModels, DataParallel,
                         ::testing::Values("tiny-llama", "tiny-qwen2"));

TEST(DataParallelLayout, RanksThatDoNotDivideTheMicroBatchesAreRefusedWithTheNearestValues) {
  HONE_REQUIRE_SHARED(model, "fixtures/models/tiny-llama");
  HONE_REQUIRE_MPI();
  TempDir dir;
  const std::string recipe = write_fixture_recipe(dir.path().string(), "tiny-llama");
  const Outcome r = run_hone_mpi(3, "train " + recipe);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("recipe.yaml: grad_accum 4 does not divide among 3 data-parallel ranks; "
                       "use mpirun -np 2 or 4, or training.grad_accum=3 or 6"),
            std::string::npos)
      << r.out;
  EXPECT_FALSE(fs::exists(dir.file("out/recipe.yaml")));  // nothing written
  // tiny-llama has 2 blocks: 4 stages cannot hold one each.
  const Outcome stages = run_hone_mpi(4, "train " + recipe + " training.pipeline_stages=4");
  EXPECT_NE(stages.status, 0);
  EXPECT_NE(stages.out.find("training.pipeline_stages: 4 pipeline stages exceed the model's 2 "
                            "blocks"),
            std::string::npos)
      << stages.out;
  EXPECT_FALSE(fs::exists(dir.file("out/recipe.yaml")));
}

// The step-2 checkpoint of a run on one layout (ranks, stages), resumed on another, ends in the
// adapter of the uninterrupted run.
TEST(DataParallelResume, ACheckpointResumesOnAnotherLayoutToTheSameAdapter) {
  HONE_REQUIRE_SHARED(model, "fixtures/models/tiny-llama");
  HONE_REQUIRE_MPI();
  TempDir dir;
  const std::string recipe = write_fixture_recipe(dir.path().string(), "tiny-llama");
  const Outcome whole = run_hone_mpi(2, "train " + recipe + " output.dir=" + dir.file("whole"));
  ASSERT_EQ(whole.status, 0) << whole.out;
  const Outcome single = run_hone("train " + recipe + " output.dir=" + dir.file("single"));
  ASSERT_EQ(single.status, 0) << single.out;
  const Outcome piped = run_hone_mpi(
      4, "train " + recipe + " output.dir=" + dir.file("piped") + " training.pipeline_stages=2");
  ASSERT_EQ(piped.status, 0) << piped.out;
  struct Case {
    std::string from;  // run whose step-2 checkpoint is resumed
    int np;            // ranks resuming it (1: no mpirun)
    std::string overrides;
  };
  int n = 0;
  for (const Case& c : {Case{"whole", 1, ""}, Case{"single", 4, ""}, Case{"single", 2, ""},
                        Case{"single", 2, "training.pipeline_stages=2"}, Case{"piped", 1, ""},
                        Case{"piped", 2, ""}}) {
    const std::string out = dir.file("resumed" + std::to_string(n++));
    fs::create_directories(out + "/checkpoints");
    fs::copy_file(dir.file(c.from + "/checkpoints/step-00000002.h5"),
                  out + "/checkpoints/step-00000002.h5");
    fs::copy_file(dir.file(c.from + "/metrics.jsonl"), out + "/metrics.jsonl");
    const std::string args =
        "train " + recipe + " output.dir=" + out + " " + c.overrides + " --resume";
    const Outcome r = c.np == 1 ? run_hone(args) : run_hone_mpi(c.np, args);
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_EQ(adapter(out), adapter(dir.file("whole")))
        << c.from << " resumed on " << c.np << " " << c.overrides;
  }
}

// mpirun started in the background, its stderr to `log`.
pid_t spawn_mpirun(int np, const std::vector<std::string>& hone_args, const std::string& log) {
  use_private_mpi_session_dir();
  std::vector<std::string> args = {"mpirun",           "--allow-run-as-root",
                                   "--oversubscribe",  "-np",
                                   std::to_string(np), std::string(HONE_BINARY_DIR) + "/hone"};
  args.insert(args.end(), hone_args.begin(), hone_args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, log.c_str(), O_WRONLY | O_CREAT, 0644);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  posix_spawnp(&pid, "mpirun", &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

// The pid of rank `rank` among mpirun's children, or -1.
pid_t rank_pid(pid_t mpirun, int rank) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string stat = read_bytes(e.path().string() + "/stat");
    const size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    std::string state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid != mpirun) continue;
    const std::string env = read_bytes(e.path().string() + "/environ");
    if (env.find(std::string("OMPI_COMM_WORLD_RANK=") + std::to_string(rank) + '\0') !=
        std::string::npos)
      return std::stoi(name);
  }
  return -1;
}

// Waits up to `seconds` for pid to end; its exit status, or -1 when it did not end.
int wait_exit(pid_t pid, int seconds) {
  for (int i = 0; i < seconds * 100; ++i) {
    int st = 0;
    if (waitpid(pid, &st, WNOHANG) == pid)
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return -1;
}

bool wait_for_file(const std::string& path, int seconds) {
  for (int i = 0; i < seconds * 100; ++i) {
    if (fs::exists(path)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// The uninterrupted single-process run of `recipe` for `steps` steps: its adapter.
std::string reference_adapter(const TempDir& dir, const std::string& recipe,
                              const std::string& overrides) {
  const Outcome r =
      run_hone("train " + recipe + " " + overrides + " output.dir=" + dir.file("ref"));
  EXPECT_EQ(r.status, 0) << r.out;
  return adapter(dir.file("ref"));
}

// Long enough (a few seconds) that the job is still running when the test strikes.
const std::string kLong = "training.max_steps=2000 checkpoint.every=20 checkpoint.keep=2";
const std::vector<std::string> kLongArgs = {"training.max_steps=2000", "checkpoint.every=20",
                                            "checkpoint.keep=2"};

TEST(DataParallelFailure, AKilledRankEndsTheJobNamingItAndTheLastCheckpointResumes) {
  HONE_REQUIRE_SHARED(model, "fixtures/models/tiny-llama");
  HONE_REQUIRE_MPI();
  TempDir dir;
  const std::string recipe = write_fixture_recipe(dir.path().string(), "tiny-llama");
  const std::string log = dir.file("mpirun.log");
  std::vector<std::string> args = {"-q", "train", recipe};
  args.insert(args.end(), kLongArgs.begin(), kLongArgs.end());
  const pid_t mpirun = spawn_mpirun(2, args, log);
  ASSERT_GT(mpirun, 0);
  ASSERT_TRUE(wait_for_file(dir.file("out/checkpoints/step-00000020.h5"), 60));
  const pid_t victim = rank_pid(mpirun, 1);
  ASSERT_GT(victim, 0);
  kill(victim, SIGKILL);
  const int status = wait_exit(mpirun, 30);
  ASSERT_NE(status, -1) << "the job did not end within 30 s of its rank 1 being killed";
  EXPECT_NE(status, 0);
  const std::string said = read_bytes(log);
  EXPECT_NE(said.find("rank 1"), std::string::npos) << said;
  EXPECT_FALSE(fs::exists(dir.file("out/adapter_model.safetensors")));
  // The newest checkpoint left behind is whole: resumed, it ends where an uninterrupted run does.
  const Outcome r = run_hone("train " + recipe + " " + kLong + " --resume");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(adapter(dir.file("out")), reference_adapter(dir, recipe, kLong));
}

TEST(DataParallelFailure, SigtermToTheLauncherSavesACheckpointThatResumes) {
  HONE_REQUIRE_SHARED(model, "fixtures/models/tiny-llama");
  HONE_REQUIRE_MPI();
  TempDir dir;
  const std::string recipe = write_fixture_recipe(dir.path().string(), "tiny-llama");
  const std::string log = dir.file("mpirun.log");
  std::vector<std::string> args = {"train", recipe};
  args.insert(args.end(), kLongArgs.begin(), kLongArgs.end());
  const pid_t mpirun = spawn_mpirun(2, args, log);
  ASSERT_GT(mpirun, 0);
  ASSERT_TRUE(wait_for_file(dir.file("out/checkpoints/step-00000020.h5"), 60));
  kill(mpirun, SIGTERM);
  const int status = wait_exit(mpirun, 30);
  ASSERT_NE(status, -1) << "the job did not end within 30 s of SIGTERM";
  const std::string said = read_bytes(log);
  const size_t at = said.find("hone: interrupted at step ");
  ASSERT_NE(at, std::string::npos) << said;
  const int step = std::stoi(said.substr(at + 26));
  char name[64];
  std::snprintf(name, sizeof name, "out/checkpoints/step-%08d.h5", step);
  EXPECT_TRUE(fs::exists(dir.file(name))) << name;
  const Outcome r = run_hone_mpi(2, "train " + recipe + " " + kLong + " --resume");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(adapter(dir.file("out")), reference_adapter(dir, recipe, kLong));
}

// `hone eval` shares the held-out batches out among the ranks and prints one line: the single
// process's.
TEST(DataParallelEval, EvalUnderMpirunPrintsTheSingleProcessFigureOnce) {
  HONE_REQUIRE_SHARED(model, "fixtures/models/tiny-llama");
  HONE_REQUIRE_MPI();
  TempDir dir;
  const std::string recipe = write_fixture_recipe(dir.path().string(), "tiny-llama", "");
  ASSERT_EQ(run_hone("train " + recipe).status, 0);
  const std::string args = "eval " + recipe + " eval.max_batches=5 --adapter " + dir.file("out");
  const Outcome one = run_hone(args, "2>/dev/null");
  ASSERT_EQ(one.status, 0);
  ASSERT_NE(one.out.find("val loss"), std::string::npos) << one.out;
  for (int np : {2, 3}) {
    const Outcome r = run_hone_mpi(np, args, "2>/dev/null");
    ASSERT_EQ(r.status, 0);
    EXPECT_EQ(r.out, one.out) << np << " ranks";
  }
  // Two stages (the adapter's slices on each), and two stages × two replicas.
  for (int np : {2, 4}) {
    const Outcome r = run_hone_mpi(np, args + " training.pipeline_stages=2", "2>/dev/null");
    ASSERT_EQ(r.status, 0);
    EXPECT_EQ(r.out, one.out) << np << " ranks in 2 stages";
  }
  const Outcome inspect = run_hone_mpi(2, "data inspect " + recipe, "2>/dev/null");
  ASSERT_EQ(inspect.status, 0);
  EXPECT_EQ(inspect.out, run_hone("data inspect " + recipe, "2>/dev/null").out);
}

}  // namespace
