#!/usr/bin/env bash
# `make quickstart`: after the build, show hone on the model shipped in the repository.
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
model=data/samples/stories260K/stories260K.bin
tok=data/samples/stories260K/tok512.bin

echo "== hone info"
"$build/hone" info
echo
echo "== hone inspect $model"
"$build/hone" inspect "$model"
echo
echo "== hone generate (greedy)"
"$build/hone" -q generate --model "$model" --tokenizer "$tok" \
  --prompt "Once upon a time" --max-new-tokens 40 --temperature 0
echo
echo "== hone generate (temperature 0.8, top-p 0.9, seed 42)"
"$build/hone" -q generate --model "$model" --tokenizer "$tok" \
  --prompt "Once upon a time" --max-new-tokens 60 --temperature 0.8 --top-p 0.9 --seed 42
