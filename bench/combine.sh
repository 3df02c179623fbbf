#!/usr/bin/env bash
# Issue 19: combining a Shakespeare and a Darwin adapter. Trains the two adapters of
# recipes/configs/combine-{shakespeare,darwin}.yaml (stories260K base, needs ../shared), combines
# them with `hone combine` (weights 1 and 1, then 0.5 and 0.5; --density 0.5 and --seed 0 for the
# pruning methods),
# evaluates the base, each adapter and each combination on both held-out sets with `hone eval`,
# and prints the table of bench/RESULTS.md (held-out loss, perplexity in brackets).
#   bench/combine.sh [BUILD_DIR] [WORK_DIR]      (defaults: build, runs/combine-bench)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
hone="$(cd "${1:-$root/build}" && pwd)/hone"
work="${2:-$root/runs/combine-bench}"
mkdir -p "$work"
shakespeare="$root/recipes/configs/combine-shakespeare.yaml"
darwin="$root/recipes/configs/combine-darwin.yaml"

for name in shakespeare darwin; do
  recipe="$root/recipes/configs/combine-$name.yaml"
  [ -f "$work/$name/adapter_model.safetensors" ] ||
    "$hone" -q train "$recipe" output.dir="$work/$name" >"$work/train-$name.log" 2>&1
done

methods="cat linear svd ties dare_linear dare_ties magnitude_prune"
for w in 1 0.5; do
  for m in $methods; do
    extra=()
    case $m in ties | dare_* | magnitude_prune) extra=(--density 0.5 --seed 0) ;; esac
    "$hone" -q combine --adapter "$work/shakespeare:$w" --adapter "$work/darwin:$w" \
      --method "$m" "${extra[@]}" --out "$work/$m-w$w" --force 2>/dev/null
  done
done

# "val loss 3.6595  perplexity 38.843  (20480 tokens)" -> "3.660 (38.8)"
evaluate() {
  local recipe=$1 adapter=${2:-}
  local args=(-q eval "$recipe")
  [ -n "$adapter" ] && args+=(--adapter "$adapter")
  "$hone" "${args[@]}" 2>/dev/null | awk '{printf "%.3f (%.1f)", $3, $5}'
}

echo "| adapter | weights | Shakespeare held-out | Darwin held-out |"
echo "| --- | --- | ---: | ---: |"
echo "| none (stories260K) | | $(evaluate "$shakespeare") | $(evaluate "$darwin") |"
for a in shakespeare darwin; do
  echo "| $a alone | 1 | $(evaluate "$shakespeare" "$work/$a") | $(evaluate "$darwin" "$work/$a") |"
done
for w in 1 0.5; do
  for m in $methods; do
    echo "| $m | $w, $w | $(evaluate "$shakespeare" "$work/$m-w$w") | $(evaluate "$darwin" "$work/$m-w$w") |"
  done
done
