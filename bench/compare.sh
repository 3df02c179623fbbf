#!/usr/bin/env bash
# hone against PyTorch, side by side, same machine, same run, same thread count (issue 6).
#
#   bash bench/compare.sh [build=build] [threads=2]
#   CONFIGS="smollm2-135m qwen2.5-0.5b" bash bench/compare.sh build 2
#   CONFIGS=llama3.2-1b STEPS="1 4" RUNS="hone-q8_0 torch-tuned-fp32" EXTRAS=0 bash bench/compare.sh
#     (STEPS "warmup measured" overrides the per-config counts below; RUNS picks contenders:
#     for looking at step-to-step spread, not for the recorded comparison)
#
# Installs python3-torch and libtcmalloc-minimal4 (Debian) when missing; `make test` never needs
# them. Measures the sgemm peak (bench_sgemm_peak, the BLAS hone uses), then for each config runs,
# interleaved and REPEATS times (default 3: this shared host swings ±30% over minutes, and each
# contender keeps its best phase), keeping the best tokens/s of each:
#   hone               bench_train_step (forward + backward + AdamW), f32 base, compute_dtype auto
#                      (bf16 products where this CPU runs them faster: `hone info` says)
#   hone-f32           the same with compute_dtype f32
#   hone-q8_0          the same with the frozen base stored as q8_0 (hone's memory-lean set-up)
#   torch-tuned-fp32   bench/peer_pytorch.py with OPENBLAS_CORETYPE=SkylakeX, OMP_WAIT_POLICY=PASSIVE,
#                      LD_PRELOAD=libtcmalloc_minimal.so.4
#   torch-tuned-bf16   the same environment, bf16 base weights + torch.autocast("cpu", bf16)
#   torch-stock        python3-torch as Debian ships it: none of those variables set
# plus hone at 1 thread on the SmolLM2-135M shape (1 → N threads speed-up), then hone alone in
# other set-ups (EXTRAS=0 skips): bf16 and q4_0 bases, activation checkpointing, and the
# Llama-3-8B shape with a q4_0 base and checkpointing (BIG=0 skips it; ~5 min). Every run prints one
# JSON line; all of them go to $OUT (default build/bench/compare.jsonl), and
# bench/compare_table.py prints the table (ratios, MFU with its FLOP formula, peak RSS).
set -euo pipefail
build=${1:-build}
threads=${2:-2}
cd "$(dirname "$0")/.."
CONFIGS=${CONFIGS:-"stories260K smollm2-135m qwen2.5-0.5b llama3.2-1b"}
REPEATS=${REPEATS:-3}
RUNS=${RUNS:-"hone hone-f32 hone-q8_0 torch-tuned-fp32 torch-tuned-bf16 torch-stock"}
OUT=${OUT:-$build/bench/compare.jsonl}
for who in $RUNS; do  # a typo fails here, before anything is measured
  case "$who" in
    hone | hone-f32 | hone-q8_0 | torch-tuned-fp32 | torch-tuned-bf16 | torch-stock) ;;
    *) echo "compare: unknown contender '$who' in RUNS" >&2 && exit 2 ;;
  esac
done
py=/usr/bin/python3  # Debian's, where python3-torch lives (not a pyenv shim)

# --- dependencies (the bench may install; the tests do not need these) -----------------------
missing=()
for p in python3-torch libtcmalloc-minimal4; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "compare: installing ${missing[*]}" >&2
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi
tcmalloc=$(dpkg -L libtcmalloc-minimal4 | grep -m1 'libtcmalloc_minimal\.so\.4$')
for b in bench_train_step bench_sgemm_peak; do
  [ -x "$build/bench/$b" ] || cmake --build "$build" --target "$b" -j "$(nproc)" >&2
done

# Steps per config (hone and torch alike): "warmup steps". The big shapes take seconds a step.
steps_for() {
  [ -n "${STEPS:-}" ] && { echo "$STEPS"; return; }
  case "$1" in
    stories260K) echo "2 20" ;;
    smollm2-135m) echo "1 3" ;;
    qwen2.5-0.5b) echo "1 2" ;;
    llama3.2-1b) echo "1 1" ;;
    *) echo "1 2" ;;
  esac
}

mkdir -p "$(dirname "$OUT")"
: >"$OUT"
emit() { echo "$1" | tee -a "$OUT"; }
run_hone() {  # config threads warmup steps [extra bench_train_step options]
  local cfg=$1 thr=$2 warm=$3 steps=$4
  shift 4
  emit "$("$build/bench/bench_train_step" --model "$cfg" --threads "$thr" --warmup "$warm" \
    --steps "$steps" --seq 512 --batch 1 --rank 16 --optimizer adamw "$@")"
}
run_torch() {  # mode dtype config warmup steps
  local envs=(-u OPENBLAS_CORETYPE -u OMP_WAIT_POLICY -u LD_PRELOAD OPENBLAS_NUM_THREADS="$threads")
  if [ "$1" = tuned ]; then
    envs+=(OPENBLAS_CORETYPE=SkylakeX OMP_WAIT_POLICY=PASSIVE LD_PRELOAD="$tcmalloc")
  fi
  emit "$(env "${envs[@]}" "$py" bench/peer_pytorch.py --mode "$1" --dtype "$2" --model "$3" \
    --warmup "$4" --steps "$5" --threads "$threads" --seq 512 --batch 1 --rank 16)"
}

echo "# compare: $(date -u +%FT%TZ), threads $threads, configs: $CONFIGS" >&2
emit "$("$build/bench/bench_sgemm_peak" 2048 10)"
for cfg in $CONFIGS; do
  read -r warm steps <<<"$(steps_for "$cfg")"
  for ((r = 1; r <= REPEATS; ++r)); do
    for who in $RUNS; do
      case "$who" in
        hone) run_hone "$cfg" "$threads" "$warm" "$steps" ;;
        hone-f32) run_hone "$cfg" "$threads" "$warm" "$steps" --compute-dtype f32 ;;
        hone-q8_0) run_hone "$cfg" "$threads" "$warm" "$steps" --weight-dtype q8_0 ;;
        torch-tuned-fp32) run_torch tuned fp32 "$cfg" "$warm" "$steps" ;;
        torch-tuned-bf16) run_torch tuned bf16 "$cfg" "$warm" "$steps" ;;
        torch-stock) run_torch stock fp32 "$cfg" "$warm" "$steps" ;;
      esac
    done
  done
  if [ "$cfg" = smollm2-135m ] && [ "$threads" -gt 1 ] && [[ " $RUNS " == *" hone "* ]]; then
    run_hone "$cfg" 1 "$warm" "$steps"  # thread scaling: compared with the best run above
  fi
done
if [ "${EXTRAS:-1}" = 1 ]; then
  run_hone smollm2-135m "$threads" 1 3 --weight-dtype bf16
  run_hone smollm2-135m "$threads" 1 3 --checkpointing 1
  run_hone smollm2-135m "$threads" 1 3 --weight-dtype q4_0 --checkpointing 1
  run_hone llama3.2-1b "$threads" 1 1 --weight-dtype q8_0 --checkpointing 1
  if [ "${BIG:-1}" = 1 ]; then
    run_hone llama3-8b "$threads" 1 1 --weight-dtype q4_0 --checkpointing 1
    run_hone llama3-8b "$threads" 1 1 --weight-dtype q4_0 --checkpointing 1 --compute-dtype f32
    # training.fused_lm_head: true on the same shape (its 0.25 GiB of logits are under the rule)
    run_hone llama3-8b "$threads" 1 1 --weight-dtype q4_0 --checkpointing 1 --fused-head 1
  fi
fi
"$py" bench/compare_table.py "$OUT"
