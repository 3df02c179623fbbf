// Peak memory of a streaming merge + HF export on a SmolLM2-135M-shaped model (random weights).
//   bench_merge_memory make-base DIR   writes DIR/base (config.json + model.safetensors, f32) and
//                                      DIR/adapter (PEFT, r=16 on all seven projections)
//   bench_merge_memory merge BASE ADAPTER OUT [f32|bf16|f16] [MAX_SHARD_SIZE]
//                                      runs the merge and prints one JSON line
// bench/merge_memory.sh runs both under /usr/bin/time -f %M and compares the peak RSS with the
// output size.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>

#include "autograd/rng.h"
#include "lora/peft.h"
#include "model/io/atomic_file.h"
#include "model/io/hf_export.h"
#include "model/io/safetensors.h"
#include "model/random_weights.h"
#include "model/shapes.h"
#include "recipes/merge_export.h"

using namespace hone;
namespace fs = std::filesystem;

namespace {

void make_base(const std::string& dir) {
  const ModelConfig cfg = model_shape("smollm2-135m");
  fs::create_directories(fs::path(dir) / "base");
  auto weights = random_weights(cfg, 1);
  write_safetensors((fs::path(dir) / "base" / "model.safetensors").string(), weights,
                    {{"format", "pt"}});
  write_file_atomically((fs::path(dir) / "base" / "config.json").string(),
                        [&](AtomicWriter& w) { w.write(hf_config_json(cfg, DType::F32)); });
  Transformer model(cfg, weights);
  LoraConfig lc;
  lc.rank = 16;
  lc.alpha = 32;
  lc.targets = {"all-linear"};
  LoraAdapters ad(model, lc);
  Rng r(2);
  float* v = ad.values().data<float>();
  for (int64_t i = 0; i < ad.values().numel(); ++i) v[i] = static_cast<float>(r.normal() * 0.01);
  save_peft_adapter((fs::path(dir) / "adapter").string(), ad, "smollm2-135m-shaped");
}

uint64_t folder_bytes(const std::string& dir) {
  uint64_t n = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) n += e.file_size();
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "make-base" && argc == 3) {
      make_base(argv[2]);
      return 0;
    }
    if (mode == "merge" && argc >= 5) {
      MergeOptions o;
      o.base = argv[2];
      o.adapters = {argv[3]};
      o.out = argv[4];
      o.dtype = argc > 5 ? argv[5] : "f32";
      o.max_shard_size = argc > 6 ? argv[6] : "";
      o.force = true;
      const auto t0 = std::chrono::steady_clock::now();
      MergeSummary s = run_merge(o);
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::cout << "{\"bench\": \"merge_memory\", \"dtype\": \"" << o.dtype
                << "\", \"max_shard_size\": \"" << o.max_shard_size
                << "\", \"files\": " << s.files.size() << ", \"tensors\": " << s.tensors
                << ", \"merged_tensors\": " << s.merged_tensors
                << ", \"output_bytes\": " << folder_bytes(o.out) << ", \"seconds\": " << secs << "}"
                << std::endl;
      return 0;
    }
    std::cerr << "usage: bench_merge_memory make-base DIR\n"
                 "       bench_merge_memory merge BASE ADAPTER OUT [f32|bf16|f16] [MAX_SHARD]\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "bench_merge_memory: " << e.what() << "\n";
    return 1;
  }
}
