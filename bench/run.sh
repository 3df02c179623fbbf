#!/usr/bin/env bash
# `make bench`: what bench/RESULTS.md records, in one run, as JSON lines plus tables.
#   1. bench/compare.sh: the sgemm peak; hone against PyTorch (tuned fp32, tuned bf16, stock),
#      interleaved, on stories260K and the SmolLM2-135M / Qwen2.5-0.5B / Llama-3.2-1B shapes;
#      1 -> 2 threads; hone's memory plan beside its measured peak RSS; hone with bf16/q8_0/q4_0
#      bases, activation checkpointing and the Llama-3-8B shape (BIG=0 skips that one).
#   2. Tokenizer speed against transformers.js (needs ../shared and npm).
#   3. Merge memory.
#   4. Across MPI ranks (issue 16): 2 ranks × 1 thread against 1 rank × 2 threads on the
#      SmolLM2-135M shape (bench/data_parallel.sh); the Llama-3-8B shape in 2 pipeline stages
#      against one process (peak RSS per rank, losses, bytes sent against the plan;
#      bench/pipeline_memory.sh, BIG=0 runs it on the SmolLM2-135M shape instead).
#   5. The bf16 frozen-base products single-threaded: oneDNN as hone runs it against a
#      hand-written AVX-512 BF16 kernel with W's rounding fused into its packing, at 512 tokens
#      (training) and 16 (generation) (bench_bf16_own_gemm; skips itself without AVX512_BF16).
# Record the output in bench/RESULTS.md with the date and this command. (bench_kernels, built
# beside these, times single kernels at the same shapes; run it by hand.)
set -euo pipefail
build=${1:-build}
shared=${2:-../shared}
cd "$(dirname "$0")/.."
bash bench/compare.sh "$build" "$(nproc)"
if [ -d "$shared/tokenizers/llama3" ] && command -v npm >/dev/null; then
  bash bench/tokenizer.sh "$build" "$shared" 5
else
  echo '{"bench": "tokenizer", "skipped": "needs ../shared and npm"}'
fi
bash bench/merge_memory.sh "$build"
if command -v mpirun >/dev/null; then
  bash bench/data_parallel.sh "$build"
  if [ "${BIG:-1}" = 0 ]; then MODEL=smollm2-135m bash bench/pipeline_memory.sh "$build"
  else bash bench/pipeline_memory.sh "$build"; fi
else
  echo '{"bench": "data_parallel", "skipped": "needs mpirun (scripts/install-deps.sh)"}'
fi
"$build/bench/bench_bf16_own_gemm" 3 512
"$build/bench/bench_bf16_own_gemm" 2 16
