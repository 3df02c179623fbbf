#!/usr/bin/env bash
# Tokenizer speed, hone vs the JS reference, side by side in one run: the Llama 3 tokenizer on
# tiny Shakespeare (whole file as one text; MB/s cold = first encode after load, warm = best of
# the repeats). The npm package goes into $build/jsref (never committed). Both print a digest of
# the ids; the script fails if they differ.
#   bench/tokenizer.sh [build] [shared] [repeats]
set -euo pipefail
build=${1:-build}
shared=${2:-../shared}
repeats=${3:-5}
cd "$(dirname "$0")/.."
tok="$shared/tokenizers/llama3"
text="$shared/corpora/tinyshakespeare/input.txt"
cmake --build "$build" --target bench_tokenizer_speed >/dev/null
js="$build/jsref"
if [ ! -d "$js/node_modules/@lenml/tokenizers" ]; then
  mkdir -p "$js"
  (cd "$js" && npm install --no-save --no-audit --no-fund @lenml/tokenizers@3.7.2 >/dev/null)
fi
a=$("$build/bench/bench_tokenizer_speed" "$tok/tokenizer.json" "$text" "$repeats")
b=$(NODE_PATH="$(cd "$js" && pwd)/node_modules" node bench/tokenizer_speed.mjs "$tok" "$text" "$repeats")
echo "$a"
echo "$b"
fa=$(sed 's/.*"fnv": *"\([0-9a-f]*\)".*/\1/' <<<"$a")
fb=$(sed 's/.*"fnv": *"\([0-9a-f]*\)".*/\1/' <<<"$b")
[ "$fa" = "$fb" ] || { echo "ids differ between hone and the reference" >&2; exit 1; }
python3 - "$a" "$b" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(json.dumps({"speedup_cold": round(a["cold_mb_s"] / b["cold_mb_s"], 2),
                  "speedup_warm": round(a["warm_mb_s"] / b["warm_mb_s"], 2)}))
PY
