#!/usr/bin/env bash
# `make quickstart`: a real LoRA fine-tune of the tiny stories260K model (shipped in the repo) on a
# slice of tinyshakespeare (also shipped), with held-out loss and a sample before and after.
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
hone="$build/hone"
model=data/samples/stories260K/stories260K.bin
tok=data/samples/stories260K/tok512.bin
recipe=recipes/configs/quickstart.yaml
run=runs/quickstart
prompt="ROMEO:"

"$hone" info
echo
echo "== before: the base model, trained on children's stories"
"$hone" -q generate --model "$model" --tokenizer "$tok" --prompt "$prompt" \
  --max-new-tokens 60 --temperature 0.8 --top-p 0.9 --seed 1
echo
rm -rf "$run"
echo "== hone train $recipe"
"$hone" train "$recipe"
echo
echo "== held-out Shakespeare loss, base model vs. with the adapter"
"$hone" -q eval "$recipe"
"$hone" -q eval "$recipe" --adapter "$run"
echo
echo "== after: the same prompt and seed with the adapter ($run)"
"$hone" -q generate --model "$model" --tokenizer "$tok" --adapter "$run" --prompt "$prompt" \
  --max-new-tokens 60 --temperature 0.8 --top-p 0.9 --seed 1
echo
echo "== the run's loss curves, samples and recipe: $run/report.html (open it in a browser)"
