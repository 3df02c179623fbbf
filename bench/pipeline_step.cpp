// Pipeline- and data-parallel training steps of a published shape with random weights, as
// `make bench` draws them (bench_train_step), through the driver's own step (accumulate_step over
// recipes/parallel): run alone for the single process, or under `mpirun -np N ... --stages S`.
// Each rank prints one JSON line: its stage's layers, the loss of every step (the same on every
// rank), its peak RSS, and the bytes it sent per step beside what the planner (hone plan)
// predicts for its stage.
//
//   bench_pipeline_step [--model llama3-8b] [--weight-dtype q4_0] [--checkpointing 1] [--seq 128]
//                       [--batch 1] [--rank 16] [--grad-accum 1] [--steps 2] [--threads 1]
//                       [--stages 1]
#include <sys/resource.h>
#include <tbb/global_control.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "autograd/kernels/blas.h"
#include "lora/lora.h"
#include "model/random_weights.h"
#include "model/shapes.h"
#include "optim/adamw.h"
#include "recipes/parallel/groups.h"
#include "recipes/parallel/layout.h"
#include "recipes/plan_parallel.h"
#include "recipes/train_step.h"

using namespace hone;

int main(int argc, char** argv) {
  kernels::blas_ensure_fast_kernel(argc, argv);
  std::string which = "llama3-8b", weight_dtype = "q4_0";
  int64_t seq = 128, batch = 1, rank = 16, grad_accum = 1;
  int steps = 2, threads = 1, stages = 1;
  bool checkpointing = true;
  CLI::App app{"bench_pipeline_step: LoRA steps of a model shape across MPI ranks"};
  app.add_option("--model", which, "a shape of model/shapes.h")->capture_default_str();
  app.add_option("--weight-dtype", weight_dtype)
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "bf16", "q8_0", "q4_0"}));
  app.add_option("--checkpointing", checkpointing)->capture_default_str();
  app.add_option("--seq", seq)->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--batch", batch)->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--rank", rank)->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--grad-accum", grad_accum)->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--steps", steps)->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--threads", threads)->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--stages", stages)->capture_default_str()->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  const DType wd = weight_dtype == "bf16"   ? DType::BF16
                   : weight_dtype == "q8_0" ? DType::Q8_0
                   : weight_dtype == "q4_0" ? DType::Q4_0
                                            : DType::F32;
  kernels::set_blas_threads(threads);
  tbb::global_control tbb_threads(tbb::global_control::max_allowed_parallelism,
                                  static_cast<size_t>(threads));
  int rc = 0;
  try {
    Comm& comm = world();
    const ModelConfig cfg = model_shape(which);
    const RankLayout layout =
        make_rank_layout(comm.size(), stages, grad_accum, cfg.num_layers, "mpirun -np");
    const Parallel par = make_parallel(comm, stages);
    const LayerRange range = stages == 1 ? LayerRange{0, static_cast<int>(cfg.num_layers)}
                                         : stage_layers(cfg.num_layers, stages, par.stage);
    // Only this stage's tensors are drawn, with the values the whole model's call gives them.
    std::map<std::string, Tensor> weights =
        random_weights(cfg, 1234, wd, stages == 1 ? TensorFilter{} : range_filter(range, cfg));
    Transformer model(cfg, weights, wd, stages == 1 ? LayerRange{} : range);
    weights.clear();
    model.set_activation_checkpointing(checkpointing);
    LoraConfig lc;
    lc.rank = rank;
    lc.alpha = 2.0 * static_cast<double>(rank);
    lc.targets = {"all-linear"};
    LoraAdapters adapters(model, lc);
    AdamWConfig oc;
    oc.lr = 1e-4;
    oc.weight_decay = 0.01;
    AdamW opt(adapters.values(), adapters.grads(), oc);
    // What the planner predicts for this rank.
    PlanSpec spec;
    spec.model = cfg;
    spec.weight_dtype = wd;
    spec.lora = lc;
    spec.batch = batch;
    spec.seq = seq;
    spec.checkpointing = checkpointing;
    spec.threads = threads;
    const ParallelPlan plan = plan_parallel(spec, layout, grad_accum, 1, 1);
    const StagePlan& mine = plan.stages[static_cast<size_t>(par.stage)];
    const int64_t planned_sent =
        mine.pp_bytes + (par.replicas > 1 ? dp_bytes_sent(adapters.num_parameters(), par.replicas,
                                                          grad_accum / par.replicas, par.replica)
                                          : 0);

    Rng rng(7);
    std::vector<Batch> micro(static_cast<size_t>(grad_accum));
    for (Batch& b : micro) {
      b.batch = batch;
      b.seq = seq;
      for (int64_t i = 0; i < batch * seq; ++i) {
        b.ids.push_back(static_cast<int32_t>(rng.next_u64() % cfg.vocab_size));
        b.targets.push_back(static_cast<int32_t>(rng.next_u64() % cfg.vocab_size));
      }
      b.n_targets = batch * seq;
    }
    std::string losses, secs, sent;
    for (int s = 0; s < steps; ++s) {
      const int64_t before = Comm::bytes_sent();
      const auto t0 = std::chrono::steady_clock::now();
      const double loss = accumulate_step(model, adapters, micro, par);
      opt.step(oc.lr);
      const double dt =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      char buf[64];
      std::snprintf(buf, sizeof buf, "%s%.9g", s ? ", " : "", loss);
      losses += buf;
      std::snprintf(buf, sizeof buf, "%s%.2f", s ? ", " : "", dt);
      secs += buf;
      std::snprintf(buf, sizeof buf, "%s%lld", s ? ", " : "",
                    static_cast<long long>(Comm::bytes_sent() - before));
      sent += buf;
    }
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    std::printf(
        "{\"bench\": \"pipeline_step\", \"model\": \"%s\", \"weight_dtype\": \"%s\", "
        "\"checkpointing\": %s, \"seq\": %lld, \"grad_accum\": %lld, \"ranks\": %d, "
        "\"stages\": %d, \"rank_in_world\": %d, \"stage\": %d, \"layers\": \"%s\", "
        "\"threads\": %d, \"losses\": [%s], \"step_seconds\": [%s], \"peak_rss_kib\": %ld, "
        "\"plan_peak_kib\": %lld, \"sent_bytes_per_step\": [%s], \"plan_sent_bytes\": %lld}\n",
        which.c_str(), weight_dtype.c_str(), checkpointing ? "true" : "false",
        static_cast<long long>(seq), static_cast<long long>(grad_accum), comm.size(), stages,
        comm.rank(), par.stage, range.str().c_str(), threads, losses.c_str(), secs.c_str(),
        ru.ru_maxrss, static_cast<long long>(mine.memory.peak / 1024), sent.c_str(),
        static_cast<long long>(planned_sent));
    std::fflush(stdout);
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_pipeline_step: %s\n", e.what());
    rc = 1;
  }
  finalize_world();
  return rc;
}
