#!/usr/bin/env bash
# Runs README.md's shell examples as a user would after `make quickstart`: every ```sh / ```bash
# block, in order, each as one `bash -e` script, in a fresh copy of the repository with hone's
# build folder on the PATH. Fails (exit 1) when any block exits non-zero, printing the block and
# its output. A block whose first lines carry a marker comment is treated specially:
#   # readme: skip: REASON       never run (MPI clusters, llama.cpp, big models, the network)
#   # readme: needs ../shared    run only when ../shared (the test data beside the clone) exists
# Other fences (```, ```text, ```console) are output or synopses and are not run.
#
# Usage:
#   scripts/check-readme-examples.sh [BUILD]   the tracked files of this checkout copied to a temp
#       folder, BUILD's hone (default build/) on the PATH; `make quickstart`'s run folder stood in
#       for by a 20-step run of the quickstart recipe (a ctest, label readme)
#   scripts/check-readme-examples.sh --fresh   a `git clone` of this checkout's HEAD, then
#       `make quickstart` in it, then the examples with its build/ on the PATH (.ci/run)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
mode=copy
build="$src/build"
if [ "${1:-}" = "--fresh" ]; then
  mode=fresh
elif [ -n "${1:-}" ]; then
  build=$(cd "$1" && pwd)
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
clone="$work/hone"
# ../shared beside the copy, as beside the checkout (the recipes name ../../../shared).
[ -d "$src/../shared" ] && ln -s "$(cd "$src/../shared" && pwd)" "$work/shared"

if [ "$mode" = fresh ]; then
  git clone -q "$src" "$clone"
  (cd "$clone" && make quickstart)
  build="$clone/build"
else
  mkdir -p "$clone"
  (cd "$src" && git ls-files -z | xargs -0 tar -cf - --no-recursion) | tar -xf - -C "$clone"
  [ -x "$build/hone" ] || { echo "check-readme-examples: no $build/hone (build it first)" >&2; exit 1; }
  # What `make quickstart` leaves for later examples: its adapter in runs/quickstart.
  (cd "$clone" && "$build/hone" -q train recipes/configs/quickstart.yaml training.max_steps=20 \
    scheduler.warmup_steps=2 eval.every=0 checkpoint.every=0) >"$work/setup" 2>&1 ||
    { cat "$work/setup"; exit 1; }
fi
export PATH="$build:$PATH"

# The blocks, one file each, with their README line.
python3 - "$clone/README.md" "$work/blocks" <<'PY'
import os, re, sys
readme, out = sys.argv[1], sys.argv[2]
os.makedirs(out)
lines = open(readme, encoding="utf-8").read().split("\n")
n, i = 0, 0
while i < len(lines):
    m = re.match(r"^```(\w*)\s*$", lines[i])
    if not m:
        i += 1
        continue
    lang, start, body = m.group(1), i + 1, []
    i += 1
    while i < len(lines) and not lines[i].startswith("```"):
        body.append(lines[i])
        i += 1
    i += 1
    if lang in ("sh", "bash"):
        n += 1
        with open(os.path.join(out, "%03d_%d.sh" % (n, start + 1)), "w") as f:
            f.write("\n".join(body) + "\n")
PY

failed=0 ran=0 skipped=0
for block in "$work"/blocks/*.sh; do
  line=$(basename "$block" .sh)
  line=${line#*_}
  head=$(grep -m3 '# readme:' "$block" || true)
  if grep -q '# readme: skip' <<<"$head"; then
    echo "skip README.md:$line ($(sed -n 's/.*# readme: skip: *//p' <<<"$head" | head -1))"
    skipped=$((skipped + 1))
    continue
  fi
  if grep -q '# readme: needs ../shared' <<<"$head" && [ ! -d "$work/shared" ]; then
    echo "skip README.md:$line (needs ../shared, absent)"
    skipped=$((skipped + 1))
    continue
  fi
  ran=$((ran + 1))
  if (cd "$clone" && bash -e "$block") >"$work/out" 2>&1; then
    echo "ok   README.md:$line"
  else
    failed=$((failed + 1))
    echo "FAIL README.md:$line:"
    sed 's/^/    | /' "$block"
    sed 's/^/    > /' "$work/out" | tail -40
  fi
done
echo "README examples: $ran run, $skipped skipped, $failed failed"
[ "$failed" -eq 0 ] || exit 1
[ "$ran" -gt 0 ] || { echo "check-readme-examples: no runnable block found" >&2; exit 1; }
