#!/usr/bin/env bash
# Peak RSS of `hone merge` (streaming merge + HF export) on a SmolLM2-135M-shaped model with
# random f32 weights (~540 MB) and an r=16 all-linear adapter, against the output folder's size.
# The goal (issue 5): peak RSS < 1.5x the output. Usage: bench/merge_memory.sh [build] [workdir]
set -euo pipefail
build=${1:-build}
work=${2:-$(mktemp -d "${TMPDIR:-/tmp}/hone_merge_bench.XXXXXX")}
cd "$(dirname "$0")/.."
bin="$build/bench/bench_merge_memory"
[ -f "$work/base/model.safetensors" ] || "$bin" make-base "$work"
for args in "f32" "bf16" "f32 100MB"; do
  # shellcheck disable=SC2086
  line=$(/usr/bin/time -f 'peak_rss_kib=%M' -o "$work/time.txt" \
    "$bin" merge "$work/base" "$work/adapter" "$work/out" $args)
  rss_kib=$(sed -n 's/^peak_rss_kib=//p' "$work/time.txt")
  out_bytes=$(sed -E 's/.*"output_bytes": ([0-9]+).*/\1/' <<<"$line")
  ratio=$(awk -v r="$rss_kib" -v o="$out_bytes" 'BEGIN { printf "%.3f", r * 1024 / o }')
  echo "${line%\}}, \"peak_rss_kib\": $rss_kib, \"rss_over_output\": $ratio}"
done
rm -rf "$work/out"
