// Throughput of a LoRA training step (forward, backward and, by default, the AdamW update), in
// tokens/s, for the real stories260K checkpoint and for random-weight models of published shapes.
// bench/peer_pytorch.py is the PyTorch side of the same step (bench/compare.sh runs both).
//
//   bench_train_step [--model stories260K|smollm2-135m|qwen2.5-0.5b|llama3.2-1b] [--seq 512]
//                    [--batch 1] [--rank 16] [--steps 5] [--warmup 1] [--optimizer adamw|none]
//                    [--threads N] [--weight-dtype f32|bf16|q8_0|q4_0] [--checkpointing 0|1]
//                    [--compute-dtype auto|f32|bf16]
//                    [--fused-head 0|1]  (1: LM head + loss fused whatever the logits' size)
//
// Random-weight shapes are drawn straight into the storage dtype (an 8B shape in q4_0 never
// exists in f32). The JSON line carries the memory planner's prediction (recipes/plan.h) beside
// the measured peak RSS.
#include <sys/resource.h>
#include <tbb/global_control.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "autograd/block_cache.h"
#include "autograd/kernels/blas.h"
#include "autograd/kernels/compute_choice.h"
#include "lora/lora.h"
#include "model/io/model_files.h"
#include "model/random_weights.h"
#include "model/shapes.h"
#include "optim/adamw.h"
#include "recipes/plan.h"

using namespace hone;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  kernels::blas_ensure_fast_kernel(argc, argv);
  std::string which = "stories260K", model_path = "data/samples/stories260K/stories260K.bin";
  int64_t seq = 512, batch = 1, rank = 16;
  int steps = 5, warmup = 1, threads = 0;
  std::string optimizer = "adamw", weight_dtype = "f32", compute_dtype = "auto";
  bool checkpointing = false, fused_head = false;
  CLI::App app{"bench_train_step: tokens/s of one LoRA training step"};
  app.add_option("--model", which, "stories260K or a shape of model/shapes.h")
      ->capture_default_str();
  app.add_option("--model-path", model_path, "stories260K checkpoint")->capture_default_str();
  app.add_option("--seq", seq)->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--batch", batch)->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--rank", rank)->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--steps", steps)->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup)->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--optimizer", optimizer)
      ->capture_default_str()
      ->check(CLI::IsMember({"adamw", "none"}));
  app.add_option("--threads", threads, "0 = all cores")->capture_default_str();
  app.add_option("--weight-dtype", weight_dtype, "storage of the frozen base")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "bf16", "q8_0", "q4_0"}));
  app.add_option("--compute-dtype", compute_dtype,
                 "frozen-base products: auto (bf16 where faster here), f32, bf16")
      ->capture_default_str();
  app.add_option("--checkpointing", checkpointing, "activation checkpointing (0/1)")
      ->capture_default_str();
  app.add_option("--fused-head", fused_head, "1: LM head + loss fused whatever the logits' size")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  const DType wd = weight_dtype == "bf16"   ? DType::BF16
                   : weight_dtype == "q8_0" ? DType::Q8_0
                   : weight_dtype == "q4_0" ? DType::Q4_0
                                            : DType::F32;
  // One thread count for both pools: OpenBLAS's and TBB's (0 = all cores).
  std::unique_ptr<tbb::global_control> tbb_threads;
  if (threads > 0) {
    kernels::set_blas_threads(threads);
    tbb_threads = std::make_unique<tbb::global_control>(
        tbb::global_control::max_allowed_parallelism, static_cast<size_t>(threads));
  }
  try {
    const int64_t runtime_bytes = current_rss_bytes();
    ModelConfig cfg;
    std::map<std::string, Tensor> weights;
    DType source = wd;  // how the weights are drawn or read, before the model converts them
    if (which == "stories260K") {
      ModelFiles f = load_model_files(model_path);
      cfg = f.config;
      weights = std::move(f.tensors);
      source = DType::F32;
    } else {  // a published shape with random weights (model/shapes.h), drawn as stored
      cfg = model_shape(which);
      cfg.validate(which);
      weights = random_weights(cfg, 1234, wd);
    }
    const kernels::ComputeChoice compute = kernels::apply_compute(compute_dtype, "--compute-dtype");
    Transformer model(cfg, weights, wd);
    weights.clear();        // the model holds its own copies (converted when bf16)
    block_cache_release();  // the converted sources' memory goes back to the system
    model.set_activation_checkpointing(checkpointing);
    if (fused_head) model.set_fused_loss_bytes(0);
    LoraConfig lc;
    lc.rank = rank;
    lc.alpha = 2.0 * static_cast<double>(rank);
    lc.targets = {"all-linear"};
    LoraAdapters adapters(model, lc);
    PlanSpec spec;
    spec.model = cfg;
    spec.weight_dtype = wd;
    spec.bf16_products = compute.bf16;
    spec.source_bytes = planned_converted_bytes(spec, source);  // held while converting
    spec.lora = lc;
    spec.batch = batch;
    spec.seq = seq;
    spec.checkpointing = checkpointing;
    if (fused_head) spec.fused_loss_bytes = 0;
    spec.optimizer_states = optimizer == "adamw" ? 2 : 0;
    spec.threads = kernels::blas_threads();
    spec.runtime_bytes = planned_runtime_bytes(runtime_bytes);
    spec.runtime_bytes += planned_bf16_runtime_bytes(spec, compute.bf16);
    const MemoryPlan plan = plan_memory(spec);
    AdamWConfig oc;  // torch.optim.AdamW's defaults but lr
    oc.lr = 1e-4;
    oc.weight_decay = 0.01;
    std::unique_ptr<AdamW> opt;
    if (optimizer == "adamw")
      opt = std::make_unique<AdamW>(adapters.values(), adapters.grads(), oc);

    std::vector<int32_t> ids(batch * seq), targets(batch * seq);
    Rng rng(7);
    for (auto& t : ids) t = static_cast<int32_t>(rng.next_u64() % cfg.vocab_size);
    for (auto& t : targets) t = static_cast<int32_t>(rng.next_u64() % cfg.vocab_size);

    double total = 0, loss = 0;
    std::string times;  // each measured step's seconds, as a JSON list's items
    for (int s = 0; s < warmup + steps; ++s) {
      auto t0 = std::chrono::steady_clock::now();
      Tape tape;
      adapters.zero_grad();
      Var l = model.loss(&tape, ids, targets, batch, seq);
      tape.backward(l);
      if (opt) opt->step(oc.lr);
      double dt = seconds_since(t0);
      loss = l.value().item(0);
      if (s >= warmup) {
        total += dt;
        char buf[32];
        std::snprintf(buf, sizeof buf, "%s%.3f", times.empty() ? "" : ", ", dt);
        times += buf;
      }
    }
    const double tps = static_cast<double>(batch * seq * steps) / total;
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    std::printf(
        "{\"impl\": \"hone\", \"model\": \"%s\", \"params\": %lld, \"lora_params\": %lld, "
        "\"batch\": %lld, \"seq\": %lld, \"rank\": %lld, \"optimizer\": \"%s\", "
        "\"weight_dtype\": \"%s\", \"compute_dtype\": \"%s\", \"compute_dtype_asked\": \"%s\", "
        "\"checkpointing\": %s, "
        "\"fused_head\": %s, \"threads\": %d, "
        "\"steps\": %d, "
        "\"sec_per_step\": %.4f, \"step_seconds\": [%s], \"tokens_per_s\": %.1f, \"loss\": %.4f, "
        "\"peak_rss_kib\": %ld, "
        "\"plan_peak_rss_kib\": %lld, \"start_rss_kib\": %lld, \"blas\": \"%s\"}\n",
        which.c_str(), static_cast<long long>(model.num_parameters()),
        static_cast<long long>(adapters.num_parameters()), static_cast<long long>(batch),
        static_cast<long long>(seq), static_cast<long long>(rank), optimizer.c_str(),
        weight_dtype.c_str(), compute.name(), compute_dtype.c_str(),
        checkpointing ? "true" : "false", plan.fused_head ? "true" : "false",
        kernels::blas_threads(), steps, total / steps, times.c_str(), tps, loss, ru.ru_maxrss,
        static_cast<long long>(plan.peak / 1024), static_cast<long long>(runtime_bytes / 1024),
        kernels::blas_info().c_str());
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_train_step: %s\n", e.what());
    return 1;
  }
  return 0;
}
