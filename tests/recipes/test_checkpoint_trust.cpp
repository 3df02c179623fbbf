// Checkpoints a resume can trust: every corruption of a real checkpoint written by `hone train` is
// refused naming the file (or provably changes nothing), malformed fields name the file and the
// field, and a resume with a changed recipe is refused or warned about, key by key.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <set>

#include "recipes/checkpoint.h"
#include "recipes/run_checkpoint.h"
#include "tmpdir.h"
#include "train_helpers.h"

using namespace hone;
namespace fs = std::filesystem;

namespace {

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// True when `got` holds exactly what `want` holds: a resume reads nothing else from the file, so
// it then continues exactly as from the pristine checkpoint.
bool same_content(const CheckpointData& got, const CheckpointData& want) {
  if (got.strings != want.strings || got.tensors.size() != want.tensors.size()) return false;
  for (const auto& [name, t] : want.tensors) {
    auto it = got.tensors.find(name);
    if (it == got.tensors.end() || !same_bits(it->second, t)) return false;
  }
  return true;
}

// A real run's checkpoints: `steps` steps into dir/run, one checkpoint per step, all kept.
class CheckpointTrust : public ::testing::Test {
 protected:
  test::TempDir dir;
  std::string out, recipe;
  void train(int steps) {
    out = dir.file("run");
    recipe = test::write_small_recipe(dir.file("run.yaml"), out, steps);
    test::Outcome r = test::run_hone("train " + recipe + " checkpoint.keep=0");
    ASSERT_EQ(r.status, 0) << r.out;
  }
};

// The issue: 17 of 30 random single-bit flips were resumed into a different adapter. Here a
// couple of thousand single-bit flips spread over the whole file, and 4 KiB blocks zeroed every
// 2 KiB: each corrupt copy must be refused with an error naming it, or read back exactly as the
// original (then the resume, which reads nothing else, is the same).
TEST_F(CheckpointTrust, EveryBitFlipAndZeroedBlockIsRefusedOrChangesNothing) {
  train(3);
  const std::string pristine = checkpoint_path(out + "/checkpoints", 2);
  const std::string bytes = test::read_bytes(pristine);
  ASSERT_GT(bytes.size(), 8192u);
  const CheckpointData want = read_checkpoint(pristine);

  const std::string bad = dir.file("corrupt-copy.h5");
  int refused = 0, harmless = 0;
  std::vector<std::string> silent;  // corruptions read back as different data
  std::string harmless_example;
  auto probe = [&](const std::string& corrupt, const std::string& what) {
    test::write_bytes(bad, corrupt);
    try {
      CheckpointData got = read_checkpoint(bad);
      if (same_content(got, want)) {
        ++harmless;
        if (harmless_example.empty()) harmless_example = corrupt;
      } else {
        silent.push_back(what);
      }
    } catch (const Error& e) {
      ++refused;
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << what << ": " << e.what();
    }
  };
  std::mt19937 rng(15);
  // HDF5 puts metadata in 2 KiB blocks among the data, densest at the start: a flip every
  // ~40 bytes there, every ~130 after, at random bits and phases (seeded: the same each run).
  std::vector<size_t> offsets;
  for (size_t i = 0; i < bytes.size(); i += i < 16384 ? 20 + rng() % 40 : 70 + rng() % 120)
    offsets.push_back(i);
  offsets.push_back(bytes.size() - 1);
  for (size_t off : offsets) {
    std::string c = bytes;
    const int bit = static_cast<int>(rng() % 8);
    c[off] = static_cast<char>(c[off] ^ (1 << bit));
    probe(c, "bit " + std::to_string(bit) + " of byte " + std::to_string(off));
  }
  for (size_t off = 0; off < bytes.size(); off += 2048) {
    std::string c = bytes;
    const size_t n = std::min<size_t>(4096, bytes.size() - off);
    std::fill_n(c.begin() + static_cast<std::ptrdiff_t>(off), n, '\0');
    probe(c, "4 KiB zeroed at " + std::to_string(off));
  }
  std::string list;
  for (size_t i = 0; i < silent.size() && i < 20; ++i) list += "\n  " + silent[i];
  EXPECT_EQ(silent.size(), 0u) << silent.size() << " of " << refused + harmless + silent.size()
                               << " corruptions read back as different data:" << list;
  EXPECT_GT(refused, 0);

  // End to end through the CLI: a corrupt checkpoint is refused with exit 1, naming it ...
  std::string c = bytes;
  std::fill_n(c.begin() + static_cast<std::ptrdiff_t>(bytes.size() / 2), 4096, '\0');
  test::write_bytes(bad, c);
  test::Outcome refused_run = test::run_hone("train " + recipe + " --resume " + bad);
  EXPECT_EQ(refused_run.status, 1) << refused_run.out;
  EXPECT_NE(refused_run.out.find(bad), std::string::npos) << refused_run.out;
  // ... and a corruption judged harmless (it fell in bytes HDF5 never reads) resumes into the very
  // adapter the pristine checkpoint gives.
  if (!harmless_example.empty()) {
    test::Outcome a = test::run_hone("train " + recipe + " --resume " + pristine);
    ASSERT_EQ(a.status, 0) << a.out;
    const std::string adapter = test::slurp(out + "/adapter_model.safetensors");
    test::write_bytes(bad, harmless_example);
    test::Outcome b = test::run_hone("train " + recipe + " --resume " + bad);
    ASSERT_EQ(b.status, 0) << b.out;
    EXPECT_TRUE(test::slurp(out + "/adapter_model.safetensors") == adapter);
  }
}

// A field a resume parses ("step", the RNG state, the data cursor) that is not a number: the
// error names the file and the field (it was "internal error: stoll", exit 2).
TEST_F(CheckpointTrust, NonNumericFieldsNameTheFileAndTheField) {
  train(2);
  const CheckpointData good = read_checkpoint(checkpoint_path(out + "/checkpoints", 1));
  int n = 0;
  for (const std::string field : {"step", "dropout_rng", "data_cursor"}) {
    for (const std::string value : {"12x", "", "-3", "99999999999999999999999"}) {
      CheckpointData d = good;
      d.strings[field] = value;
      const std::string path = dir.file("bad-" + std::to_string(n++) + ".h5");
      write_checkpoint(path, d);
      test::Outcome r = test::run_hone("train " + recipe + " --resume " + path);
      SCOPED_TRACE(field + "=\"" + value + "\"");
      EXPECT_EQ(r.status, 1) << r.out;
      EXPECT_NE(r.out.find(path), std::string::npos) << r.out;
      EXPECT_NE(r.out.find(field + ": "), std::string::npos) << r.out;
      EXPECT_EQ(r.out.find("internal error"), std::string::npos) << r.out;
    }
  }
}

// A checkpoint of an older hone carries no checksums: it cannot be verified, so it is refused
// with a message saying so (README, "Resuming").
TEST_F(CheckpointTrust, CheckpointsWithoutChecksumsAreRefusedSayingWhy) {
  train(2);
  // Written by hone before checkpoints carried checksums (format hone-checkpoint-1).
  const std::string path = dir.file("old.h5");
  fs::copy_file(test::repo_file("tests/recipes/data/checkpoint-format-1.h5"), path);
  test::Outcome r = test::run_hone("train " + recipe + " --resume " + path);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find(path), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("checksum"), std::string::npos) << r.out;
}

// Resuming with a changed recipe: keys that would break an exact continuation are refused, naming
// the key with both values; legitimate changes go ahead with a warning saying the run is no longer
// the one checkpointed; max_steps below the checkpoint's step is refused.
TEST_F(CheckpointTrust, ResumeRefusesOrWarnsPerChangedKey) {
  train(4);
  const std::string recipe_yaml = test::slurp(out + "/recipe.yaml");
  // Resumes below start from a copy: a resume at the last step rewrites that step's checkpoint.
  const std::string at4 = dir.file("at-step-4.h5");
  fs::copy_file(checkpoint_path(out + "/checkpoints", 4), at4);
  struct Refusal {
    std::string override_arg, needle;
  };
  const std::vector<Refusal> refusals = {
      {"training.batch_size=2", "training.batch_size"},
      {"training.grad_accum=2", "training.grad_accum"},
      {"training.seed=8", "training.seed"},
      {"data.shuffle_seed=9", "data.shuffle_seed"},
      {"lora.dropout=0.2", "lora.dropout"},
      {"lora.alpha=4", "lora.alpha"},
      {"optimizer.name=sgd", "optimizer.name"},
      {"training.max_steps=2", "training.max_steps"},
  };
  for (const Refusal& c : refusals) {
    test::Outcome r = test::run_hone("train " + recipe + " " + c.override_arg + " --resume");
    SCOPED_TRACE(c.override_arg);
    EXPECT_EQ(r.status, 1) << r.out;
    EXPECT_NE(r.out.find(c.needle), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("internal error"), std::string::npos) << r.out;
    // Nothing of the earlier run is touched by a refused one.
    EXPECT_TRUE(test::slurp(out + "/recipe.yaml") == recipe_yaml);
  }
  // Both values are named.
  test::Outcome b = test::run_hone("train " + recipe + " training.batch_size=2 --resume");
  EXPECT_NE(b.out.find("training.batch_size"), std::string::npos) << b.out;
  EXPECT_NE(b.out.find("checkpoint: 4"), std::string::npos) << b.out;
  EXPECT_NE(b.out.find("recipe: 2"), std::string::npos) << b.out;
  test::Outcome m = test::run_hone("train " + recipe + " training.max_steps=3 --resume");
  EXPECT_NE(m.out.find("step 4"), std::string::npos) << m.out;

  struct Warning {
    std::string override_arg, needle;
  };
  const std::vector<Warning> warnings = {
      {"optimizer.lr=1e-3", "optimizer.lr"},
      {"scheduler.name=linear", "scheduler.name"},
      {"training.max_steps=6", "training.max_steps"},
  };
  for (const Warning& c : warnings) {
    SCOPED_TRACE(c.override_arg);
    test::Outcome r = test::run_hone("train " + recipe + " " + c.override_arg + " --resume " + at4);
    EXPECT_EQ(r.status, 0) << r.out;
    EXPECT_NE(r.out.find("warning"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(c.needle), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("no longer the same run"), std::string::npos) << r.out;
  }
  // Changes that cannot alter the adapter (evaluation, logging, checkpoint cadence) pass silently.
  test::Outcome q =
      test::run_hone("train " + recipe + " eval.max_batches=1 checkpoint.every=2 --resume " + at4);
  EXPECT_EQ(q.status, 0) << q.out;
  EXPECT_EQ(q.out.find("warning"), std::string::npos) << q.out;
}

}  // namespace
