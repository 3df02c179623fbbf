// The training loop, explicit top to bottom:
//   batch -> forward -> loss -> backward (accumulate) -> clip -> step -> schedule -> log -> eval
//   -> checkpoint.
#include "recipes/train.h"

#include <tbb/global_control.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "autograd/kernels/bf16_gemm.h"
#include "autograd/kernels/blas.h"
#include "autograd/kernels/compute_choice.h"
#include "lora/peft.h"
#include "model/io/atomic_file.h"
#include "optim/clip.h"
#include "recipes/llama_perplexity.h"
#include "recipes/metrics_log.h"
#include "recipes/parallel/comm.h"
#include "recipes/parallel/layout.h"
#include "recipes/parallel/stage_state.h"
#include "recipes/plan.h"
#include "recipes/plan_parallel.h"
#include "recipes/report/train_report.h"
#include "recipes/resume_policy.h"
#include "recipes/run_checkpoint.h"
#include "recipes/run_folder.h"
#include "recipes/train_step.h"

namespace hone {

namespace fs = std::filesystem;

namespace {

std::atomic<int> g_signal{0};
extern "C" void on_signal(int sig) {
  g_signal.store(sig);
}

// Installs SIGINT/SIGTERM handlers for the run and restores the previous ones after.
class SignalScope {
 public:
  SignalScope() {
    g_signal.store(0);
    prev_int_ = std::signal(SIGINT, on_signal);
    prev_term_ = std::signal(SIGTERM, on_signal);
  }
  ~SignalScope() {
    std::signal(SIGINT, prev_int_);
    std::signal(SIGTERM, prev_term_);
  }

 private:
  void (*prev_int_)(int);
  void (*prev_term_)(int);
};

// Limits TBB and OpenBLAS to the recipe's thread count (0 = all cores) for the run.
class ThreadScope {
 public:
  explicit ThreadScope(int threads) : prev_blas_(kernels::blas_threads()) {
    if (threads > 0) {
      tbb_ = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                   static_cast<size_t>(threads));
      kernels::set_blas_threads(threads);
    }
  }
  ~ThreadScope() { kernels::set_blas_threads(prev_blas_); }

 private:
  int prev_blas_;
  std::unique_ptr<tbb::global_control> tbb_;
};

// Sets the frozen-base products' arithmetic from the recipe's training.compute_dtype for the
// run, and back after. Refuses bf16 where it cannot run, before anything is written.
class ComputeScope {
 public:
  explicit ComputeScope(const RecipeConfig& cfg)
      : prev_(kernels::bf16_products()),
        choice_(kernels::apply_compute(cfg.training.compute_dtype,
                                       cfg.source + ": training.compute_dtype")) {}
  ~ComputeScope() { kernels::set_bf16_products(prev_); }
  ComputeScope(const ComputeScope&) = delete;
  ComputeScope& operator=(const ComputeScope&) = delete;
  std::string line() const { return "hone: compute: " + choice_.describe(); }

 private:
  bool prev_;
  kernels::ComputeChoice choice_;
};

double rss_mib() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / 1048576.0;
}

std::string fmt_duration(double s) {
  char buf[32];
  long t = static_cast<long>(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  return buf;
}

// Ignores SIGXFSZ for the run: past a file size limit (ulimit -f) a write then fails with EFBIG,
// reported and cleaned up like any failed write, instead of the signal killing the process
// mid-checkpoint and leaving its temporary file behind.
class IgnoreFileSizeSignal {
 public:
  IgnoreFileSizeSignal() : prev_(std::signal(SIGXFSZ, SIG_IGN)) {}
  ~IgnoreFileSizeSignal() { std::signal(SIGXFSZ, prev_); }

 private:
  void (*prev_)(int);
};

// Whether `dir` is `root` or inside it (both absolute and normalised by the recipe parser).
bool inside(const std::string& dir, const std::string& root) {
  const fs::path rel = fs::path(dir).lexically_relative(root);
  return !rel.empty() && *rel.begin() != "..";
}

void say(bool quiet, const std::string& line) {
  if (!quiet) std::cerr << line << "\n";
}

// The blocks this rank's stage holds (the whole model without a pipeline). The model's block
// count is read from its file's header; a recipe with more stages than blocks is refused.
LayerRange stage_range(const RecipeConfig& cfg, const Parallel& par) {
  if (par.stages == 1) return {};
  const int64_t layers = load_model_files(cfg.model.path, LayerRange{0, 0}).config.num_layers;
  try {
    make_rank_layout(par.world->size(), par.stages, cfg.training.grad_accum, layers, "mpirun -np");
  } catch (const Error& e) {
    throw Error(cfg.source + ": training.pipeline_stages: " + e.what());
  }
  return stage_layers(layers, par.stages, par.stage);
}

}  // namespace

TrainSummary run_train(const TrainOptions& opts) {
  IgnoreFileSizeSignal no_sigxfsz;
  // Under mpirun every rank runs this function; rank 0 alone prints and writes files.
  Comm& comm = world();
  const bool lead = comm.rank() == 0;
  TrainOptions o = opts;
  if (!lead) o.quiet = true;
  // 1. The recipe, validated in full before any work or any output.
  Run run;
  run.cfg = load_recipe(o.recipe, o.overrides);
  check_recipe_paths(run.cfg);
  const RecipeConfig& cfg = run.cfg;
  // The blocks' count is checked against the stages once the model's config is read.
  try {
    make_rank_layout(comm.size(), cfg.training.pipeline_stages, cfg.training.grad_accum, 0,
                     "mpirun -np");
  } catch (const Error& e) {
    throw Error(cfg.source + ": " + e.what());
  }
  const Parallel par = make_parallel(comm, static_cast<int>(cfg.training.pipeline_stages));
  const LayerRange stage = stage_range(cfg, par);
  // Before any output: refuse a run the planner predicts will not fit (this rank's share).
  if (o.memory_limit >= 0) {
    PlanSpec spec = plan_spec_for(cfg);
    if (comm.size() > 1) {
      const RankLayout layout{comm.size(), par.stages, par.replicas};
      spec = plan_parallel(spec, layout, cfg.training.grad_accum, 1, 1)
                 .stages[static_cast<size_t>(par.stage)]
                 .spec;
    }
    const int64_t available = o.memory_limit > 0 ? o.memory_limit : available_memory_bytes();
    check_plan_fits(cfg, spec, available);
    say(o.quiet, "hone: predicted peak memory " + human_bytes(plan_memory(spec).peak) + " of " +
                     human_bytes(available) + " available");
  }
  std::error_code ec;
  if (lead) fs::create_directories(cfg.output.dir, ec);
  if (ec)
    throw Error(cfg.source + ": output.dir: cannot create " + cfg.output.dir + ": " + ec.message());
  if (lead) fs::create_directories(cfg.checkpoint.dir, ec);
  if (ec)
    throw Error(cfg.source + ": checkpoint.dir: cannot create " + cfg.checkpoint.dir + ": " +
                ec.message());
  // One run per folder, and every folder writable, before any work or any output: a refusal
  // comes now, never at the first checkpoint, and never after an earlier run's files changed.
  std::unique_ptr<FolderLock> out_lock, ckpt_lock;
  if (lead) {
    out_lock = std::make_unique<FolderLock>(cfg.output.dir, cfg.source + ": output.dir");
    if (!inside(cfg.checkpoint.dir, cfg.output.dir))
      ckpt_lock = std::make_unique<FolderLock>(cfg.checkpoint.dir, cfg.source + ": checkpoint.dir");
    check_writable(cfg.output.dir, cfg.source + ": output.dir");
    check_writable(cfg.checkpoint.dir, cfg.source + ": checkpoint.dir");
    check_writable(fs::path(cfg.logging.metrics_file).parent_path().string(),
                   cfg.source + ": logging.metrics_file");
  }

  // The checkpoint to resume, verified and compared with the recipe before the model loads.
  std::unique_ptr<ResumePoint> resume;
  std::vector<std::string> warnings;
  if (!o.resume.empty()) {
    std::string path = o.resume == "latest" ? latest_checkpoint(cfg.checkpoint.dir) : o.resume;
    if (path.empty()) throw Error(cfg.checkpoint.dir + ": no checkpoint to resume from");
    resume = std::make_unique<ResumePoint>(open_run_checkpoint(path));
    warnings = check_resume_changes(path, resume->recipe, cfg, resume->step);
  } else if (lead && !latest_checkpoint(cfg.checkpoint.dir).empty()) {
    throw Error(cfg.checkpoint.dir +
                ": holds checkpoints of an earlier run; resume it with "
                "--resume, or set checkpoint.dir / output.dir to a new folder");
  }
  ThreadScope threads(cfg.training.threads);
  ComputeScope compute(cfg);
  const std::string resolved = to_yaml(cfg);
  if (!o.quiet) std::cerr << "hone: resolved recipe\n" << resolved;

  // 2. Model, data, adapters, optimizer.
  load_base(run, stage);
  // Rank 0 tokenizes first and fills the token cache the others then read.
  if (lead) load_data(run, o.quiet);
  comm.barrier();
  if (!lead) load_data(run, true);
  prepare_training(run);
  say(o.quiet, "hone: " + run.model_id + "; LoRA " + run.lora_id + "; " +
                   std::to_string(run.data.train.size()) + " train / " +
                   std::to_string(run.data.val.size()) + " val windows of " +
                   std::to_string(cfg.data.seq_len) + " tokens; " +
                   std::to_string(run.total_steps) + " steps");
  say(o.quiet, compute.line());
  if (run.schedule.warmup_steps < cfg.scheduler.warmup_steps)
    say(!lead, "hone: note: scheduler.warmup_steps " + std::to_string(cfg.scheduler.warmup_steps) +
                   " is longer than the run's " + std::to_string(run.total_steps) +
                   " steps; warming up over all " + std::to_string(run.schedule.warmup_steps));

  // 3. Resume, or evaluate the base model for the "before" figure.
  TrainSummary sum;
  sum.total_steps = run.total_steps;
  std::string metrics_so_far;
  int64_t step = 0;
  if (resume) {
    const std::string length = check_resume_length(*resume, run.total_steps);
    if (!length.empty()) warnings.push_back(length);
    step = restore_run_checkpoint(run, *resume, &metrics_so_far);
    for (const std::string& w : warnings) say(!lead, "hone: warning: " + w);
    say(o.quiet, "hone: resumed from " + resume->path + " at step " + std::to_string(step));
    resume.reset();  // its tensors are copied into the run
  }
  // Every refusal is behind us: only now is anything of the run written.
  std::unique_ptr<MetricsLog> metrics_file;
  if (lead) {
    write_file_atomically((fs::path(cfg.output.dir) / "recipe.yaml").string(),
                          [&](AtomicWriter& w) { w.write(resolved); });
    metrics_file = std::make_unique<MetricsLog>(cfg.logging.metrics_file, metrics_so_far);
  }
  // report.html beside the metrics, rewritten at every evaluation and at the end (rank 0).
  std::unique_ptr<report::TrainReport> run_report;
  if (lead) {
    run_report = std::make_unique<report::TrainReport>(run, resolved, !o.resume.empty());
    if (step == 0) run_report->sample_before(run);
    run_report->write(metrics_file->text());
  }
  auto log_metrics = [&](const nlohmann::json& j) {
    if (metrics_file) metrics_file->add(j);
  };
  auto eval_now = [&](int64_t at) {
    EvalResult e = evaluate(*run.model, run.adapters.get(), run.data.val, cfg.training.batch_size,
                            cfg.eval.max_batches, par);
    log_metrics(
        {{"step", at}, {"val_loss", e.loss}, {"val_ppl", e.perplexity}, {"val_tokens", e.tokens}});
    say(!lead, "hone: step " + std::to_string(at) + " val loss " + std::to_string(e.loss) +
                   " ppl " + std::to_string(e.perplexity));
    if (run_report) run_report->write(metrics_file->text());
    return e.loss;
  };
  const bool has_val = !run.data.val.empty();
  if (has_val && step == 0) sum.val_before = eval_now(0);

  // 4. The loop.
  SignalScope signals;
  const bool tty = isatty(STDERR_FILENO);
  auto t_start = std::chrono::steady_clock::now();
  int64_t tokens_since = 0;
  auto t_since = t_start;
  std::string last_good = latest_checkpoint(cfg.checkpoint.dir);
  auto save = [&](int64_t at) {
    const std::string path = checkpoint_path(cfg.checkpoint.dir, at);
    const std::optional<WholeState> whole = gather_whole_state(run, par);
    if (lead) {
      save_run_checkpoint(run, at, metrics_file->text(), path, whole ? &*whole : nullptr);
      prune_checkpoints(cfg.checkpoint.dir, cfg.checkpoint.keep);
    }
    last_good = path;
  };
  const int64_t first_step = step;
  CollapseWatch collapse(run.model_config.vocab_size);
  int64_t sent_before = comm.bytes_sent();
  while (step < run.total_steps) {
    const double lr = lr_at(run.schedule, step, run.total_steps);
    std::vector<Batch> micro;
    for (int64_t m = 0; m < cfg.training.grad_accum; ++m) micro.push_back(run.loader->next());
    const double loss = accumulate_step(*run.model, *run.adapters, micro, par);
    const double gnorm = clip_step_gradients(*run.adapters, cfg.training.grad_clip, par);
    if (!std::isfinite(loss) || !std::isfinite(gnorm))
      throw Error("step " + std::to_string(step + 1) + ": non-finite " +
                  (std::isfinite(loss) ? "gradient norm" : "loss") +
                  "; stopped without updating. Last good checkpoint: " +
                  (last_good.empty() ? "none" : last_good) +
                  " (try a lower optimizer.lr or training.grad_clip)");
    int64_t n_targets = 0;
    for (const Batch& b : micro) n_targets += b.n_targets;
    const std::string collapsed = collapse.observe(loss, gnorm, n_targets);
    if (!collapsed.empty()) {
      std::ostringstream lr_now;
      lr_now << cfg.optimizer.lr;
      throw Error("step " + std::to_string(step + 1) + ": the run collapsed: " + collapsed +
                  "; training cannot recover from this. The learning rate is likely far too " +
                  "high: try a lower optimizer.lr (now " + lr_now.str() + ")");
    }
    run.optimizer->step(lr);
    ++step;
    // One small message per step tells every rank whether any has seen a signal, and rank 0
    // the bytes each rank sent for the step.
    struct StepNote {
      int64_t signal, sent;
    };
    const std::vector<StepNote> notes =
        allgather_value(comm, StepNote{g_signal.load(), comm.bytes_sent() - sent_before});
    sent_before = comm.bytes_sent();
    const bool stop =
        std::any_of(notes.begin(), notes.end(), [](const StepNote& n) { return n.signal != 0; });
    sum.last_loss = loss;
    for (const Batch& b : micro) tokens_since += b.batch * b.seq;

    if (step % cfg.logging.every == 0 || step == run.total_steps) {
      auto now = std::chrono::steady_clock::now();
      const double dt = std::chrono::duration<double>(now - t_since).count();
      const double elapsed = std::chrono::duration<double>(now - t_start).count();
      const double tps = dt > 0 ? static_cast<double>(tokens_since) / dt : 0.0;
      const double eta = elapsed / static_cast<double>(step - first_step) *
                         static_cast<double>(run.total_steps - step);
      nlohmann::json row = {{"step", step},       {"loss", loss},        {"lr", lr},
                            {"grad_norm", gnorm}, {"tokens_per_s", tps}, {"elapsed_s", elapsed}};
      if (comm.size() > 1) {
        // Payload bytes each rank sent in this step (gradient exchange, activations).
        std::vector<int64_t> sent;
        for (const StepNote& n : notes) sent.push_back(n.sent);
        row["sent_bytes"] = sent;
      }
      log_metrics(row);
      if (!o.quiet) {
        char line[256];
        std::snprintf(line, sizeof line,
                      "step %lld/%lld | loss %.4f | lr %.2e | %.0f tok/s | ETA %s | mem %.0f MiB",
                      static_cast<long long>(step), static_cast<long long>(run.total_steps), loss,
                      lr, tps, fmt_duration(eta).c_str(), rss_mib());
        std::cerr << (tty ? "\r" : "") << line << (tty ? "\033[K" : "\n") << std::flush;
      }
      tokens_since = 0;
      t_since = now;
    }
    if (has_val && cfg.eval.every > 0 && step % cfg.eval.every == 0 && step < run.total_steps) {
      if (tty && !o.quiet) std::cerr << "\n";
      const auto e0 = std::chrono::steady_clock::now();
      eval_now(step);
      t_since += std::chrono::steady_clock::now() - e0;  // tokens/s counts training time only
    }
    if (cfg.checkpoint.every > 0 && step % cfg.checkpoint.every == 0 && step < run.total_steps)
      save(step);
    // A signal reaches the ranks at different moments: they stop together, at the first step
    // end where any of them has seen one.
    if (stop) {
      save(step);
      if (run_report) run_report->write(metrics_file->text());
      if (tty && !o.quiet) std::cerr << "\n";
      say(!lead, "hone: interrupted at step " + std::to_string(step) + "; checkpoint " + last_good +
                     " (resume with --resume)");
      sum.interrupted = true;
      sum.steps_done = step;
      sum.last_checkpoint = last_good;
      return sum;
    }
  }
  if (tty && !o.quiet) std::cerr << "\n";
  // Quiet drops the story (recipe, progress), never the result: the final loss, held-out loss
  // and adapter path. Rank 0 alone says them.
  if (o.quiet && step > first_step)
    say(!lead, "hone: step " + std::to_string(step) + " loss " + std::to_string(sum.last_loss));

  // 5. The end: final checkpoint, the adapter in PEFT format, the "after" figure.
  save(step);
  if (has_val) sum.val_after = eval_now(step);
  const std::optional<WholeState> whole = gather_whole_state(run, par);
  if (lead) {
    metrics_file->close();
    save_whole_peft_adapter(cfg.output.dir, run, whole ? &*whole : nullptr);
    run_report->sample_after(run);
    run_report->write(metrics_file->text());
  }
  sum.steps_done = step;
  sum.adapter_dir = cfg.output.dir;
  sum.last_checkpoint = last_good;
  say(!lead, "hone: adapter written to " + cfg.output.dir);
  return sum;
}

double run_eval(const std::string& recipe, const std::vector<std::string>& overrides,
                const std::string& adapter_dir, bool quiet) {
  Run run;
  run.cfg = load_recipe(recipe, overrides);
  check_recipe_paths(run.cfg);
  ThreadScope threads(run.cfg.training.threads);
  ComputeScope compute(run.cfg);
  Comm& group = world();
  const Parallel par = make_parallel(group, static_cast<int>(run.cfg.training.pipeline_stages));
  load_base(run, stage_range(run.cfg, par));
  if (group.rank() == 0) load_data(run, quiet);  // rank 0 fills the token cache the others read
  group.barrier();
  if (group.rank() != 0) load_data(run, true);
  if (run.data.val.empty())
    throw Error(run.cfg.source + ": data.val / data.val_fraction: the recipe has no held-out data");
  std::unique_ptr<LoraAdapters> adapters;
  if (!adapter_dir.empty()) adapters = load_peft_adapter(adapter_dir, *run.model);
  if (!quiet && group.rank() == 0) std::cerr << compute.line() << "\n";
  // Under mpirun the batches are shared out among every rank; rank 0 prints.
  EvalResult e = evaluate(*run.model, adapters.get(), run.data.val, run.cfg.training.batch_size,
                          run.cfg.eval.max_batches, par);
  char line[160];
  std::snprintf(line, sizeof line, "val loss %.4f  perplexity %.3f  (%lld tokens%s)\n", e.loss,
                e.perplexity, static_cast<long long>(e.tokens),
                adapter_dir.empty() ? ", base model" : "");
  if (group.rank() == 0) std::cout << line;  // through std::cout, which main checks at exit
  return e.loss;
}

double run_eval_llama_perplexity(const LlamaPerplexityOptions& o) {
  Run run;
  run.cfg = load_recipe(o.recipe, o.overrides);
  // The text is --text's, so the recipe's corpora need not exist; its model must.
  RecipeConfig model_only = run.cfg;
  model_only.data.train.clear();
  model_only.data.val.clear();
  check_recipe_paths(model_only);
  std::string file = o.text_file;
  if (file.empty()) file = run.cfg.data.val;
  if (file.empty())
    throw Error(run.cfg.source + ": data.val: no held-out text file; give --text FILE");
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(file + ": cannot read the text to evaluate");
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  ThreadScope threads(run.cfg.training.threads);
  load_base(run);
  std::unique_ptr<LoraAdapters> adapters;
  if (!o.adapter_dir.empty()) adapters = load_peft_adapter(o.adapter_dir, *run.model);
  const int64_t n_ctx = o.n_ctx > 0 ? o.n_ctx : run.cfg.data.seq_len;
  LlamaPerplexity r;
  try {
    r = llama_perplexity(*run.model, adapters.get(), *run.tokenizer, text, n_ctx, o.max_chunks,
                         run.cfg.training.batch_size);
  } catch (const Error& e) {
    throw Error(file + ": " + e.what());
  }
  char line[200];
  std::snprintf(
      line, sizeof line,
      "llama-perplexity: PPL = %.4f +/- %.5f  (%lld chunks of %lld tokens, %lld scored%s)\n",
      r.perplexity, r.uncertainty, static_cast<long long>(r.chunks), static_cast<long long>(n_ctx),
      static_cast<long long>(r.scored), o.adapter_dir.empty() ? ", base model" : "");
  if (world().rank() == 0) std::cout << line;
  return r.perplexity;
}

}  // namespace hone
