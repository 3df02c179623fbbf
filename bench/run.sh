#!/usr/bin/env bash
# `make bench`: the machine's sgemm peak; forward+backward throughput of a LoRA training step
# (r=16 on all seven projections, seq 512, batch 1) with peak RSS; tokenizer speed against the
# JS reference (needs ../shared and npm); merge memory. JSON lines; record them in
# bench/RESULTS.md with the date and this command.
set -euo pipefail
build=${1:-build}
shared=${2:-../shared}
cd "$(dirname "$0")/.."
"$build/bench/bench_sgemm_peak" 2048 10
for args in "--model stories260K --steps 20 --warmup 2" "--model smollm2-135m --steps 3 --warmup 1"; do
  # shellcheck disable=SC2086
  /usr/bin/time -f '{"peak_rss_kib": %M}' "$build/bench/bench_train_step" $args --seq 512 --batch 1 --rank 16
done
if [ -d "$shared/tokenizers/llama3" ] && command -v npm >/dev/null; then
  bash bench/tokenizer.sh "$build" "$shared" 5
else
  echo '{"bench": "tokenizer", "skipped": "needs ../shared and npm"}'
fi
bash bench/merge_memory.sh "$build"
