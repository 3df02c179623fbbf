// Running `hone` under mpirun from a test, on the fixture models of ../shared (vocabulary 256,
// read through a byte-level tokenizer.json the test writes: one token per byte, no merges).
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "common.h"
#include "hone_process.h"

namespace hone::test {

// GPT-2's byte-to-character map: printable bytes stand for themselves, the rest move to 256+.
inline void write_byte_tokenizer(const std::string& path) {
  nlohmann::json vocab = nlohmann::json::object();
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    const int cp = printable ? b : next++;
    std::string ch;  // UTF-8 of code point cp (< 0x800)
    if (cp < 0x80) {
      ch = std::string(1, static_cast<char>(cp));
    } else {
      ch += static_cast<char>(0xC0 | (cp >> 6));
      ch += static_cast<char>(0x80 | (cp & 0x3F));
    }
    vocab[ch] = b;
  }
  const nlohmann::json byte_level = {{"type", "ByteLevel"},
                                     {"add_prefix_space", false},
                                     {"trim_offsets", true},
                                     {"use_regex", true}};
  const nlohmann::json tok = {{"version", "1.0"},
                              {"added_tokens", nlohmann::json::array()},
                              {"normalizer", nullptr},
                              {"pre_tokenizer", byte_level},
                              {"post_processor", nullptr},
                              {"decoder", byte_level},
                              {"model",
                               {{"type", "BPE"},
                                {"vocab", vocab},
                                {"merges", nlohmann::json::array()},
                                {"byte_fallback", false}}}};
  std::ofstream(path) << tok.dump();
}

// A recipe training fixture model `model` (tiny-llama, tiny-qwen2, ...) on the repository's
// tinyshakespeare slices: LoRA on every projection with dropout, 4 micro-batches per step, one
// thread per process, a checkpoint every step. `extra` is appended YAML.
inline std::string write_fixture_recipe(const std::string& dir, const std::string& model,
                                        const std::string& extra = "") {
  const std::string tok = dir + "/tokenizer.json";
  write_byte_tokenizer(tok);
  const std::string src = HONE_SOURCE_DIR;
  const std::string path = dir + "/recipe.yaml";
  std::ofstream f(path);
  f << "model:\n  path: " << (shared_dir() / "fixtures/models" / model).string()
    << "\n  tokenizer: " << tok << "\n"
    << "lora:\n  rank: 4\n  alpha: 8\n  dropout: 0.1\n  targets: all-linear\n"
    << "data:\n  train: " << src << "/data/samples/tinyshakespeare/train.txt\n  val: " << src
    << "/data/samples/tinyshakespeare/val.txt\n  seq_len: 32\n  add_bos: false\n"
    << "  add_eos: false\n"
    << "training:\n  batch_size: 2\n  grad_accum: 4\n  max_steps: 4\n  seed: 7\n  threads: 1\n"
    << "optimizer:\n  lr: 3.0e-3\n  weight_decay: 0.01\n"
    << "scheduler:\n  name: cosine\n  warmup_steps: 1\n"
    << "eval:\n  every: 2\n  max_batches: 3\n"
    << "checkpoint:\n  every: 1\n  keep: 10\n"
    << "output:\n  dir: " << dir << "/out\n"
    << "logging:\n  every: 1\n"
    << extra;
  return path;
}

// Open MPI keeps its session files under /tmp/ompi.HOST.UID, shared by every mpirun of the user;
// two mpiruns started at once (ctest -j2) race to create it and one fails ("mkdir ... File
// exists"). Each test process gives its mpiruns a base of their own (removed at exit), through
// the environment they inherit.
class PrivateMpiSessionDir {
 public:
  PrivateMpiSessionDir() {
    char tmpl[] = "/tmp/hone-mpi-XXXXXX";
    if (const char* d = mkdtemp(tmpl)) {
      dir_ = d;
      setenv("OMPI_MCA_orte_tmpdir_base", d, 1);
    }
  }
  ~PrivateMpiSessionDir() {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

 private:
  std::string dir_;
};

inline void use_private_mpi_session_dir() {
  static PrivateMpiSessionDir dir;
}

inline std::string mpirun_prefix(int np) {
  use_private_mpi_session_dir();
  // As root (CI) OpenMPI refuses to start without --allow-run-as-root; 4 ranks on 2 cores need
  // --oversubscribe.
  return "mpirun --allow-run-as-root --oversubscribe -np " + std::to_string(np) + " ";
}

// `hone -q ARGS` on np ranks; stderr joins stdout unless redirects say otherwise.
inline Outcome run_hone_mpi(int np, const std::string& args,
                            const std::string& redirects = "2>&1") {
  return run_command(mpirun_prefix(np) + std::string(HONE_BINARY_DIR) + "/hone -q " + args + " " +
                     redirects);
}

// Why MPI tests cannot run here ("" when they can): a build without MPI, or no working mpirun.
inline std::string mpi_unavailable() {
  static const std::string why = [] {
    const Outcome info = run_hone("info");
    if (info.out.find("MPI: none") != std::string::npos)
      return std::string("hone built without MPI");
    const Outcome two = run_hone_mpi(2, "info", ">/dev/null 2>&1");
    if (two.status != 0)
      return "mpirun cannot start 2 ranks here (exit " + std::to_string(two.status) + ")";
    return std::string();
  }();
  return why;
}

#define HONE_REQUIRE_MPI() \
  if (const std::string why = ::hone::test::mpi_unavailable(); !why.empty()) GTEST_SKIP() << why

// metrics.jsonl without the timing and communication fields: what must be equal between runs.
inline std::string metrics_without_timing(const std::string& path) {
  std::ifstream in(path);
  std::string line, out;
  while (std::getline(in, line)) {
    nlohmann::json j = nlohmann::json::parse(line);
    j.erase("elapsed_s");
    j.erase("tokens_per_s");
    j.erase("sent_bytes");  // communication, not training
    out += j.dump() + "\n";
  }
  return out;
}

}  // namespace hone::test
