#!/usr/bin/env bash
# Data memory of a large plain-text corpus: peak RSS of a 2-step `hone train` (the quickstart
# recipe) on about 100 MB of text (the shipped tinyshakespeare slice repeated), the first run
# (tokenizing into the token cache) and the second (reusing it), beside what `hone plan` predicts.
# Usage: bash bench/corpus_memory.sh [BUILD]   (make build first)
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
hone="$PWD/$build/hone"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src=data/samples/tinyshakespeare/train.txt
n=$((100000000 / $(stat -c %s "$src") + 1))
for _ in $(seq "$n"); do cat "$src"; done >"$work/corpus.txt"
args=(recipes/configs/quickstart.yaml "data.train=$work/corpus.txt" data.val= training.max_steps=2
  eval.every=0 checkpoint.every=0 scheduler.warmup_steps=0 "output.dir=$work/run")
echo "corpus: $(stat -c %s "$work/corpus.txt") bytes"
echo "plan before the cache exists: $("$hone" plan "${args[@]}" 2>&1 | grep -E '^ *(data|predicted peak) ' | tr -s ' ' | paste -sd ';')"
for pass in first second; do
  rm -rf "$work/run"
  /usr/bin/time -f "%M" -o "$work/rss" "$hone" -q train "${args[@]}" >/dev/null 2>"$work/log" ||
    { cat "$work/log"; exit 1; }
  echo "$pass run: peak RSS $(($(cat "$work/rss") / 1024)) MiB"
done
echo "plan with the cache: $("$hone" plan "${args[@]}" 2>&1 | grep -E '^ *(data|predicted peak) ' | tr -s ' ' | paste -sd ';')"
