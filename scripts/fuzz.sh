#!/usr/bin/env bash
# Long fuzzing runs of one parser: scripts/fuzz.sh TARGET SECONDS [libFuzzer flags...]
#   TARGET: safetensors gguf config tokenizer chat_template jsonl peft recipe checkpoint
# Builds the target with clang (libFuzzer + ASan + UBSan) in $BUILD/fuzz (BUILD defaults to
# build; the same folder `make build` uses), then fuzzes from tests/fuzz/corpus/TARGET and
# tests/fuzz/regress/TARGET. New inputs accumulate in $BUILD/fuzz/work/TARGET/corpus (kept between
# runs); a crash, hang or out-of-memory stops the run with exit 1 and its input in
# $BUILD/fuzz/work/TARGET/crashes/. Commit such an input under tests/fuzz/pending/TARGET/ (a known
# crash) and, once fixed, under tests/fuzz/regress/TARGET/ (replayed by `make test`).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 2 ]; then
  echo "usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer flags...]" >&2
  exit 2
fi
target=$1 seconds=$2
shift 2
if [ ! -f "tests/fuzz/fuzz_$target.cpp" ]; then
  echo "fuzz.sh: no target \"$target\" (have: $(ls tests/fuzz/fuzz_*.cpp | sed 's|.*/fuzz_||; s|\.cpp||' | tr '\n' ' '))" >&2
  exit 2
fi
build=${BUILD:-build}/fuzz
cxx=$(command -v clang++-14 || command -v clang++ || true)
cc=$(command -v clang-14 || command -v clang || true)
if [ -z "$cxx" ] || [ -z "$cc" ]; then
  echo "fuzz.sh: clang not found: run scripts/install-deps.sh" >&2
  exit 1
fi
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S tests/fuzz -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_C_COMPILER="$cc" "${launcher[@]}"
fi
cmake --build "$build" --target "fuzz_$target" -j "${JOBS:-2}"
HONE_FUZZ_EXPECTED=1 exec bash tests/fuzz/run.sh fuzz "$build/fuzz_$target" "$seconds" \
  "$build/work/$target" "tests/fuzz/corpus/$target" "tests/fuzz/regress/$target" "$@"
