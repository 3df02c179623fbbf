#!/usr/bin/env bash
# `make bench`: forward+backward throughput of a LoRA step, printed as JSON lines.
# Record the output in bench/RESULTS.md with the date and this command.
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
"$build/bench/bench_train_step" --model stories260K --seq 512 --batch 1 --rank 16 --steps 20 --warmup 2
"$build/bench/bench_train_step" --model smollm2-135m --seq 512 --batch 1 --rank 16 --steps 3 --warmup 1
