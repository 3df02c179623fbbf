#!/usr/bin/env bash
# Pipeline parallel on one machine: the Llama-3-8B shape (random weights as `make bench` draws
# them, q4_0 base, activation checkpointing, LoRA r=16 on every projection, seq SEQ) trained for
# STEPS steps by one process with 2 threads, then by `mpirun -np 2` as 2 pipeline stages with 1
# thread each. Prints each run's JSON lines (losses, peak RSS, bytes sent per step beside the
# planner's prediction) and a summary: each rank's peak RSS over the single process's, and whether
# the losses are equal. MODEL=smollm2-135m for a quick run. Then the data-parallel exchange's
# bytes (2 ranks × 2 micro-batches, SmolLM2-135M shape) measured against the plan.
# Usage: bench/pipeline_memory.sh [build]
set -euo pipefail
build=${1:-build}
model=${MODEL:-llama3-8b}
seq=${SEQ:-128}
steps=${STEPS:-2}
cd "$(dirname "$0")/.."
bin="$build/bench/bench_pipeline_step"
mpirun_cmd=(mpirun --oversubscribe -np 2)
[ "$(id -u)" -eq 0 ] && mpirun_cmd=(mpirun --allow-run-as-root --oversubscribe -np 2)
common=(--model "$model" --weight-dtype q4_0 --checkpointing 1 --seq "$seq" --steps "$steps")
one=$("$bin" "${common[@]}" --threads 2)
echo "$one"
two=$("${mpirun_cmd[@]}" "$bin" "${common[@]}" --threads 1 --stages 2)
echo "$two"
python3 - "$one" "$two" <<'PY'
import json, sys
one = json.loads(sys.argv[1])
ranks = [json.loads(l) for l in sys.argv[2].splitlines() if l.startswith("{")]
print(json.dumps({
    "bench": "pipeline_memory", "model": one["model"], "seq": one["seq"],
    "single_peak_rss_kib": one["peak_rss_kib"],
    "stage_peak_rss_kib": [r["peak_rss_kib"] for r in sorted(ranks, key=lambda r: r["stage"])],
    "stage_over_single": [round(r["peak_rss_kib"] / one["peak_rss_kib"], 3)
                          for r in sorted(ranks, key=lambda r: r["stage"])],
    "losses_equal": all(r["losses"] == one["losses"] for r in ranks),
    "sent_over_plan": [round(r["sent_bytes_per_step"][-1] / r["plan_sent_bytes"], 4)
                       for r in sorted(ranks, key=lambda r: r["stage"]) if r["plan_sent_bytes"]],
}))
PY
dp=$("${mpirun_cmd[@]}" "$bin" --model smollm2-135m --weight-dtype f32 --checkpointing 0 \
  --seq 256 --steps 1 --threads 1 --grad-accum 2)
echo "$dp"
python3 - "$dp" <<'PY'
import json, sys
ranks = [json.loads(l) for l in sys.argv[1].splitlines() if l.startswith("{")]
print(json.dumps({"bench": "data_parallel_bytes", "model": ranks[0]["model"],
                  "sent_bytes_per_step": [r["sent_bytes_per_step"][-1] for r in ranks],
                  "plan_sent_bytes": [r["plan_sent_bytes"] for r in ranks],
                  "sent_over_plan": [round(r["sent_bytes_per_step"][-1] / r["plan_sent_bytes"], 4)
                                     for r in ranks]}))
PY
