#!/usr/bin/env bash
# Data parallel on one machine: `mpirun -np 2 hone train` with 1 thread per rank against one
# `hone train` process with 2 threads, same recipe (SmolLM2-135M shape with random f32 weights,
# LoRA r=16 on every projection, seq 512, 2 micro-batches of 1 per step), interleaved, REPEATS
# times each. tokens/s is the median over the measured steps (the first WARM steps are skipped);
# the bytes rank 0 sends per step (metrics.jsonl's sent_bytes) beside `hone plan --ranks 2`'s.
# Usage: bench/data_parallel.sh [build] [workdir]
set -euo pipefail
build=${1:-build}
work=${2:-$(mktemp -d "${TMPDIR:-/tmp}/hone_dp_bench.XXXXXX")}
repeats=${REPEATS:-2}
steps=${STEPS:-8}
warm=${WARM:-2}
cd "$(dirname "$0")/.."
root=$(pwd)
[ -f "$work/base/model.safetensors" ] || "$build/bench/bench_merge_memory" make-base "$work"
# A byte-level tokenizer.json as large as the model's vocabulary (tokens past the 256 bytes are
# never produced): the benchmark measures training, not tokenization.
python3 - "$work/base/config.json" "$work/tokenizer.json" <<'PY'
import json, sys
vocab_size = json.load(open(sys.argv[1]))["vocab_size"]
printable = [b for b in range(256) if 33 <= b <= 126 or 161 <= b <= 172 or b >= 174]
chars, extra = {}, 256
for b in range(256):
    if b in printable:
        chars[b] = chr(b)
    else:
        chars[b] = chr(extra); extra += 1
vocab = {chars[b]: b for b in range(256)}
for i in range(256, vocab_size):
    vocab[f"<unused{i}>"] = i
bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
json.dump({"version": "1.0", "added_tokens": [], "normalizer": None, "pre_tokenizer": bl,
           "post_processor": None, "decoder": bl,
           "model": {"type": "BPE", "vocab": vocab, "merges": [], "byte_fallback": False}},
          open(sys.argv[2], "w"))
PY
cat > "$work/recipe.yaml" <<YAML
model:
  path: $work/base
  tokenizer: $work/tokenizer.json
lora:
  rank: 16
  alpha: 32
  targets: all-linear
data:
  train: $root/data/samples/tinyshakespeare/train.txt
  seq_len: 512
  add_bos: false
  add_eos: false
training:
  batch_size: 1
  grad_accum: 2
  max_steps: $steps
eval:
  every: 0
checkpoint:
  every: 0
logging:
  every: 1
YAML
median_tps() {  # metrics.jsonl -> median tokens/s of the steps after the warm-up
  python3 - "$1" "$warm" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"tokens_per_s"' in l]
print(statistics.median(r["tokens_per_s"] for r in rows[int(sys.argv[2]):]))
PY
}
sent_bytes() {  # bytes rank 0 sent in the last step
  python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1]) if "sent_bytes" in l]; print(r[-1]["sent_bytes"][0])' "$1"
}
mpirun_cmd=(mpirun --oversubscribe -np 2)
[ "$(id -u)" -eq 0 ] && mpirun_cmd=(mpirun --allow-run-as-root --oversubscribe -np 2)
for rep in $(seq "$repeats"); do
  rm -rf "$work/one" "$work/two"
  "$build/hone" -q train "$work/recipe.yaml" training.threads=2 output.dir="$work/one" 2>/dev/null
  one=$(median_tps "$work/one/metrics.jsonl")
  "${mpirun_cmd[@]}" "$build/hone" -q train "$work/recipe.yaml" training.threads=1 \
    output.dir="$work/two" 2>/dev/null
  two=$(median_tps "$work/two/metrics.jsonl")
  sent=$(sent_bytes "$work/two/metrics.jsonl")
  same=$(cmp -s "$work/one/adapter_model.safetensors" "$work/two/adapter_model.safetensors" &&
    echo true || echo false)
  ratio=$(awk -v a="$two" -v b="$one" 'BEGIN { printf "%.3f", a / b }')
  echo "{\"bench\": \"data_parallel\", \"model\": \"smollm2-135m\", \"repeat\": $rep," \
    "\"one_rank_2_threads_tokens_per_s\": $one, \"two_ranks_1_thread_tokens_per_s\": $two," \
    "\"ratio\": $ratio, \"rank0_sent_bytes_per_step\": $sent, \"adapters_identical\": $same}"
done
