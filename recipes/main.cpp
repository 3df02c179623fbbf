// The hone CLI: parses arguments with CLI11 and dispatches to the drivers in recipes/.
// The only place an Error becomes an exit code.
#include <tbb/info.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <csignal>
#include <iostream>
#include <thread>
#include <vector>

#include "autograd/error.h"
#include "autograd/kernels/bf16_gemm.h"
#include "autograd/kernels/blas.h"
#include "autograd/kernels/compute_choice.h"
#include "recipes/data_inspect.h"
#include "recipes/generate.h"
#include "recipes/inspect.h"
#include "recipes/merge_export.h"
#include "recipes/parallel/comm.h"
#include "recipes/plan.h"
#include "recipes/report/run_files.h"
#include "recipes/stdout_guard.h"
#include "recipes/tokenize_cmd.h"
#include "recipes/train.h"

namespace {

std::string runtime_banner() {
  return "hone: " + hone::kernels::blas_info() + "; TBB " +
         std::to_string(tbb::info::default_concurrency()) + " threads";
}

// Thrown when stdout broke mid-command, to stop the work; main's final check names the reason.
struct StdoutBroken {};

// A failed rank ends the whole job at once: the others may be waiting for it in a collective.
// Most errors (the recipe, the rank layout) are the same on every rank: rank 0 says it and ends
// the job, and the others, a second later, would only repeat it. A rank failing alone (a file
// missing on its machine) still says why, with its rank, before it ends the job.
void hold_back_repeats() {
  if (hone::launched_by_mpi() && hone::world().rank() != 0)
    std::this_thread::sleep_for(std::chrono::seconds(1));
}

int fail(int code) {
  if (hone::launched_by_mpi() && hone::world().size() > 1) {
    std::cerr.flush();
    hone::abort_world(code);
  }
  return code;
}

// Set by recipes/CMakeLists.txt for this file alone (so a new commit recompiles main.cpp only).
#ifndef HONE_VERSION
#define HONE_VERSION "unknown"
#endif
#ifndef HONE_GIT_COMMIT
#define HONE_GIT_COMMIT ""
#endif

std::string version_line() {
  const std::string commit = HONE_GIT_COMMIT;
  return std::string("hone ") + HONE_VERSION + (commit.empty() ? "" : " (git " + commit + ")");
}

// Edits (insert, delete, substitute, swap two neighbours) from a to b: "trian" is one from "train".
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min(
          {d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

// CLI11 answers a misspelt command with "A subcommand is required"; name it, and the nearest
// command. Walks the words while the current command has subcommands and no positionals (hone
// and `hone data`, whose flags take no value). Empty when every command word is known.
std::string unknown_command(const CLI::App& app, int argc, char** argv) {
  const CLI::App* cur = &app;
  std::string path;
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    if (word.empty() || word[0] == '-') continue;
    const auto subs = cur->get_subcommands([](const CLI::App*) { return true; });
    if (subs.empty()) return "";
    const CLI::App* next = nullptr;
    const CLI::App* nearest = nullptr;
    size_t best = 3;  // suggest only a command at most two edits away
    for (const CLI::App* s : subs) {
      if (s->get_name() == word) next = s;
      const size_t dist = edit_distance(word, s->get_name());
      if (dist < best) best = dist, nearest = s;
    }
    if (next) {
      path += word + " ";
      cur = next;
      continue;
    }
    return "unknown command '" + path + word + "' (" +
           (nearest ? "did you mean '" + path + nearest->get_name() + "'?)" : "see --help)");
  }
  return "";
}

int run_cli(int argc, char** argv, const hone::StdoutGuard& out) {
  CLI::App app{"hone: LoRA fine-tuning of Llama-family models on CPUs"};
  // Usage errors as every other error: one "hone: " line (exit status set in the catch below).
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return "hone: " + std::string(e.what()) + " (see --help)\n";
  });
  app.require_subcommand(1);
  bool quiet = false;
  app.add_flag("-q,--quiet", quiet,
               "Print only results and errors (no banner, recipe or progress)");
  app.set_version_flag("--version", version_line(), "Print hone's version (and git commit)");

  hone::GenerateOptions gen;
  auto* g = app.add_subcommand("generate", "Generate text from a model");
  g->add_option("--model", gen.model, "HF model folder, .safetensors, llama2.c .bin or .gguf")
      ->required();
  g->add_option("--tokenizer", gen.tokenizer,
                "tokenizer.json, a folder holding one, llama2.c tok.bin or a .gguf (its "
                "vocabulary) (default: the model's, beside it or inside its .gguf)");
  g->add_option("--adapter", gen.adapter, "PEFT adapter folder to apply");
  g->add_option("--prompt", gen.prompt, "Prompt text")->required();
  g->add_option("--max-new-tokens", gen.max_new_tokens, "Tokens to generate")
      ->capture_default_str();
  g->add_option("--temperature", gen.temperature, "0 = greedy")->capture_default_str();
  g->add_option("--top-k", gen.top_k, "Keep the k most likely tokens (0 = off)")
      ->capture_default_str();
  g->add_option("--top-p", gen.top_p, "Nucleus sampling mass (1 = off)")->capture_default_str();
  g->add_option("--seed", gen.seed, "Sampling seed")->capture_default_str();
  g->add_option("--dtype", gen.weight_dtype,
                "Storage of the frozen weights: f32, bf16, f16, q8_0, q4_0")
      ->capture_default_str();
  g->add_option("--compute-dtype", gen.compute_dtype,
                "Arithmetic of the base products: auto (bf16 where this CPU runs it faster), "
                "f32, bf16")
      ->capture_default_str();

  std::string inspect_path;
  auto* ins = app.add_subcommand("inspect", "Describe a model file or folder");
  ins->add_option("path", inspect_path, "HF model folder, .safetensors, llama2.c .bin or .gguf")
      ->required();

  hone::TrainOptions train;
  std::string resume_path;
  auto* tr = app.add_subcommand("train", "Fine-tune LoRA adapters as a YAML recipe says");
  tr->add_option("recipe", train.recipe, "Recipe file (YAML)")->required();
  tr->add_option("overrides", train.overrides, "key.path=value overrides of the recipe");
  auto* resume = tr->add_option("--resume", resume_path,
                                "Resume from PATH, or without PATH from the newest checkpoint")
                     ->expected(0, 1);
  std::string memory_limit;
  const char* memory_help =
      "Memory the run may use (16G, 512M, bytes; none: no check). Default: what is available";
  tr->add_option("--memory-limit", memory_limit, memory_help);

  hone::PlanOptions plan;
  auto* pl = app.add_subcommand("plan", "Predict a recipe's peak memory and step time");
  pl->add_option("recipe", plan.recipe, "Recipe file (YAML)")->required();
  pl->add_option("overrides", plan.overrides, "key.path=value overrides of the recipe");
  pl->add_option("--memory-limit", memory_limit, memory_help);
  pl->add_option("--ranks", plan.ranks, "MPI ranks = stages x data-parallel replicas (default: S)")
      ->check(CLI::PositiveNumber);
  pl->add_option("--stages", plan.stages, "Pipeline stages (default: training.pipeline_stages)")
      ->check(CLI::PositiveNumber);
  pl->add_option("--link", plan.link, "Link speed a rank sends at: 25Gb/s, 3GB/s")
      ->capture_default_str();
  pl->add_option("--gflops", plan.gflops, "One rank's gemm GFLOP/s (default: timed here)")
      ->check(CLI::PositiveNumber);
  pl->add_option("--shape", plan.shape, "Plan this published shape instead of model.path's files");

  std::string eval_recipe, eval_adapter;
  std::vector<std::string> eval_overrides;
  auto* ev = app.add_subcommand("eval", "Held-out loss and perplexity of a recipe's model");
  ev->add_option("recipe", eval_recipe, "Recipe file (YAML)")->required();
  ev->add_option("overrides", eval_overrides, "key.path=value overrides of the recipe");
  ev->add_option("--adapter", eval_adapter, "PEFT adapter folder to evaluate");
  std::string eval_protocol = "held-out";
  hone::LlamaPerplexityOptions lppl;
  ev->add_option("--protocol", eval_protocol,
                 "held-out: the recipe's held-out loss and perplexity; llama-perplexity: "
                 "llama.cpp's llama-perplexity on --text (chunks of --ctx tokens, each with BOS "
                 "first, the second half of each scored), the figure llama.cpp users quote")
      ->check(CLI::IsMember({"held-out", "llama-perplexity"}))
      ->capture_default_str();
  ev->add_option("--text", lppl.text_file,
                 "llama-perplexity: the text file (default: the recipe's data.val)");
  ev->add_option("--ctx", lppl.n_ctx,
                 "llama-perplexity: tokens a chunk, llama.cpp's -c (default: data.seq_len)")
      ->check(CLI::PositiveNumber);
  ev->add_option("--chunks", lppl.max_chunks,
                 "llama-perplexity: score at most this many chunks, llama.cpp's --chunks "
                 "(default: all)")
      ->check(CLI::PositiveNumber);

  // How several adapters combine (hone merge, unmerge and combine; lora/combine.h).
  auto add_combine_options = [](CLI::App* c, hone::CombineArgs& a, const char* method_help) {
    c->add_option("--method", a.method, method_help);
    c->add_option("--density", a.density,
                  "ties, dare_*, magnitude_prune: fraction of entries kept, in (0, 1]");
    c->add_option("--seed", a.seed, "dare_*: seed of the random masks")->capture_default_str();
    c->add_option("--majority-sign", a.majority_sign, "ties, dare_ties: total or frequency")
        ->capture_default_str();
    c->add_option("--svd-rank", a.svd_rank, "*svd: rank of the result (default: largest input)");
  };
  const char* kMethods =
      "cat, linear, svd, ties, ties_svd, dare_linear, dare_linear_svd, dare_ties, dare_ties_svd, "
      "magnitude_prune, magnitude_prune_svd";

  hone::MergeOptions merge_opt;
  auto add_merge_options = [&](CLI::App* c) {
    c->add_option("--base", merge_opt.base, "Base model: HF folder, .safetensors, .bin, .gguf")
        ->required();
    c->add_option("--adapter", merge_opt.adapters, "PEFT adapter folder, DIR or DIR:weight")
        ->required();
    c->add_option("--out", merge_opt.out, "Output folder (Hugging Face layout)")->required();
    c->add_option("--dtype", merge_opt.dtype, "f32, bf16 or f16 (default: the base's)");
    c->add_option("--max-shard-size", merge_opt.max_shard_size, "e.g. 2GB; default one file");
    c->add_flag("--force", merge_opt.force, "Replace a non-empty output folder");
    add_combine_options(c, merge_opt.combine,
                        (std::string("How the adapters combine: ") + kMethods +
                         " (default cat: the weighted sum of s*B*A)")
                            .c_str());
  };
  auto* mg = app.add_subcommand("merge", "Fold adapters into the base weights: W + s*B*A");
  add_merge_options(mg);
  auto* um = app.add_subcommand("unmerge", "Subtract adapters from merged weights: W - s*B*A");
  add_merge_options(um);

  hone::CombineCmdOptions combine_opt;
  auto* cb = app.add_subcommand("combine",
                                "Combine adapters into one PEFT adapter (PEFT's "
                                "add_weighted_adapter methods)");
  cb->add_option("--adapter", combine_opt.adapters, "PEFT adapter folder, DIR or DIR:weight")
      ->required();
  cb->add_option("--out", combine_opt.out, "Output folder (PEFT adapter)")->required();
  cb->add_option("--base", combine_opt.base, "Base model to check the adapters against");
  cb->add_flag("--force", combine_opt.force, "Replace a non-empty output folder");
  add_combine_options(cb, combine_opt.combine, (std::string("Required: ") + kMethods).c_str());

  hone::ExportOptions export_opt;
  auto* ex = app.add_subcommand("export", "Write a model (adapter merged) as HF or GGUF");
  ex->add_option("--model", export_opt.model, "HF folder, .safetensors, .bin or .gguf")->required();
  ex->add_option("--adapter", export_opt.adapter,
                 "PEFT adapter folder to merge / export; DIR:w scales it by w");
  ex->add_option("--out", export_opt.out, "Output folder (hf) or file (gguf, gguf-lora)")
      ->required();
  ex->add_option("--format", export_opt.format, "hf, gguf or gguf-lora")->capture_default_str();
  ex->add_option("--dtype", export_opt.dtype,
                 "f32, bf16, f16 (hf, gguf-lora) or f32, f16, bf16, q8_0, q4_0 (gguf)");
  ex->add_option("--max-shard-size", export_opt.max_shard_size, "hf: e.g. 2GB; default one file");
  ex->add_option("--tokenizer", export_opt.tokenizer,
                 "gguf: tokenizer to embed: tokenizer.json, tok.bin or a .gguf's (default: the "
                 "model's, beside it or inside its .gguf)");
  ex->add_flag("--force", export_opt.force, "Replace an existing output");

  std::string inspect_recipe;
  std::vector<std::string> inspect_overrides;
  auto* data_cmd = app.add_subcommand("data", "Look at a recipe's training data");
  auto* di = data_cmd->add_subcommand("inspect",
                                      "Token counts, truncation, length histogram, one example "
                                      "with the masked part marked");
  di->add_option("recipe", inspect_recipe, "Recipe file (YAML)")->required();
  di->add_option("overrides", inspect_overrides, "key.path=value overrides of the recipe");
  data_cmd->require_subcommand(1);

  std::string tok_path;
  bool tok_lines = false, tok_special = false;
  auto* tk = app.add_subcommand("tokenize", "Print the token ids of text on stdin as JSON");
  tk->add_option("--tokenizer", tok_path,
                 "tokenizer.json, a folder holding one, tok.bin or a .gguf")
      ->required();
  tk->add_flag("--lines", tok_lines, "One JSON array per input line");
  tk->add_flag("--special", tok_special, "Add BOS/EOS as the tokenizer's config says");
  std::string detok_path;
  auto* dt = app.add_subcommand("detokenize", "Print the text of JSON id arrays on stdin");
  dt->add_option("--tokenizer", detok_path,
                 "tokenizer.json, a folder holding one, tok.bin or a .gguf")
      ->required();

  hone::report::ReportOptions report_opt;
  auto* rp =
      app.add_subcommand("report",
                         "Rebuild a run's report.html (loss curves, lr, grad norm, tokens/s, "
                         "recipe, samples); several runs are overlaid");
  rp->add_option("runs", report_opt.runs, "Run folders (holding metrics.jsonl) or metrics files")
      ->required();
  rp->add_option("-o,--out", report_opt.out,
                 "Output HTML file (default: report.html in the run folder; with several runs, "
                 "in the current folder)");

  app.add_subcommand("info", "Print the BLAS kernel and thread count hone runs with");

  if (const std::string bad = unknown_command(app, argc, argv); !bad.empty()) {
    std::cerr << "hone: " << bad << "\n";
    return 1;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 exits 104-109 for usage errors; hone exits 1 on every error, 0 for --help.
    return app.exit(e) == 0 ? 0 : 1;
  }
  // Under mpirun/srun, train and eval run on every rank (rank 0 prints and writes); every other
  // command runs on rank 0 alone.
  const bool distributed = app.got_subcommand("train") || app.got_subcommand("eval");
  if (hone::launched_by_mpi() && !distributed && hone::world().rank() != 0) return 0;
  try {
    if (app.got_subcommand("info")) {
      std::cout << runtime_banner() << "\n";
      const hone::kernels::CpuKind cpu = hone::kernels::cpu_kind();
      std::cout << "hone: CPU: " << cpu.describe() << "\n"
                << "hone: bf16 products: " << hone::kernels::bf16_gemm_info() << "\n"
                << "hone: compute_dtype auto picks "
                << hone::kernels::choose_compute("auto", cpu).describe() << "\n";
      const std::string mpi = hone::mpi_library();
      std::cout << "hone: MPI: "
                << (mpi.empty() ? "none (built without MPI: one process only)"
                                : mpi + " (mpirun -np N hone train ... trains on N ranks)")
                << "\n";
    } else if (app.got_subcommand("plan")) {
      if (!memory_limit.empty())
        plan.memory_limit = hone::parse_memory_size(memory_limit, "--memory-limit");
      std::cout << hone::run_plan(plan);
    } else if (app.got_subcommand("report")) {
      std::cerr << "hone: wrote " << hone::report::run_report(report_opt) << "\n";
    } else if (app.got_subcommand("inspect")) {
      std::cout << hone::inspect_report(inspect_path);
    } else if (app.got_subcommand("train")) {
      if (!quiet) std::cerr << runtime_banner() << "\n";
      if (resume->count() > 0) {
        // "--resume key=value" is a bare --resume followed by an override.
        if (resume_path.find('=') != std::string::npos) {
          train.overrides.push_back(resume_path);
          resume_path.clear();
        }
        train.resume = resume_path.empty() ? "latest" : resume_path;
      }
      train.quiet = quiet;
      if (!memory_limit.empty())
        train.memory_limit = hone::parse_memory_size(memory_limit, "--memory-limit");
      hone::TrainSummary s = hone::run_train(train);
      if (s.interrupted) return 130;
    } else if (app.got_subcommand("merge") || app.got_subcommand("unmerge") ||
               app.got_subcommand("export")) {
      hone::MergeSummary m = app.got_subcommand("merge")     ? hone::run_merge(merge_opt)
                             : app.got_subcommand("unmerge") ? hone::run_unmerge(merge_opt)
                                                             : hone::run_export(export_opt);
      std::cerr << "hone: wrote " << m.out << " (" << m.tensors << " tensors, " << m.merged_tensors
                << " with an adapter folded in)\n";
    } else if (app.got_subcommand("combine")) {
      hone::MergeSummary m = hone::run_combine(combine_opt);
      std::cerr << "hone: wrote " << m.out << " (" << m.tensors << " tensors, " << m.merged_tensors
                << " modules combined)\n";
    } else if (data_cmd->got_subcommand("inspect")) {
      hone::run_data_inspect(inspect_recipe, inspect_overrides, std::cout);
    } else if (app.got_subcommand("tokenize")) {
      hone::run_tokenize(tok_path, tok_lines, tok_special, std::cin, std::cout);
    } else if (app.got_subcommand("detokenize")) {
      hone::run_detokenize(detok_path, std::cin, std::cout);
    } else if (app.got_subcommand("eval")) {
      if (eval_protocol == "llama-perplexity") {
        lppl.recipe = eval_recipe;
        lppl.overrides = eval_overrides;
        lppl.adapter_dir = eval_adapter;
        hone::run_eval_llama_perplexity(lppl);
      } else {
        if (!lppl.text_file.empty() || lppl.n_ctx > 0 || lppl.max_chunks > 0)
          throw hone::Error("--text, --ctx and --chunks go with --protocol llama-perplexity");
        hone::run_eval(eval_recipe, eval_overrides, eval_adapter, quiet);
      }
    } else if (app.got_subcommand("generate")) {
      if (!quiet) std::cerr << runtime_banner() << "\n";
      const hone::GenerateResult r = hone::run_generate(gen, [&](const std::string& piece) {
        std::cout << piece << std::flush;
        if (out.failed()) throw StdoutBroken{};
      });
      std::cout << "\n";
      if (r.stopped_at_context) {
        std::cout.flush();
        std::cerr << "hone: generation stopped at the model's context length of " << r.context
                  << " tokens (" << r.new_ids.size() << " of --max-new-tokens "
                  << gen.max_new_tokens << " generated)\n";
      }
    }
  } catch (const StdoutBroken&) {
    return 1;
  } catch (const hone::Error& e) {
    hold_back_repeats();
    std::cerr << "hone: " << hone::rank_prefix() << e.what() << "\n";
    return fail(1);
  } catch (const std::exception& e) {
    hold_back_repeats();
    std::cerr << "hone: " << hone::rank_prefix() << "internal error: " << e.what() << "\n";
    return fail(2);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Re-executes with the AVX-512 OpenBLAS kernel when the loaded one is slower than the CPU
  // allows (Debian's 0.3.21 mis-detects some AVX-512 CPUs); returns here otherwise.
  hone::kernels::blas_ensure_fast_kernel(argc, argv);
  // Past a file size limit (ulimit -f) a write then fails with EFBIG, reported and cleaned up like
  // any failed write, instead of SIGXFSZ killing the process and leaving a temporary file.
  std::signal(SIGXFSZ, SIG_IGN);
  hone::StdoutGuard out;
  const int rc = run_cli(argc, argv, out);
  hone::finalize_world();
  // Every command's output is checked here, once: a cut output never exits 0.
  const std::string err = out.finish();
  if (err.empty()) return rc;
  std::cerr << "hone: " << err << "\n";
  return rc == 0 ? 1 : rc;
}
