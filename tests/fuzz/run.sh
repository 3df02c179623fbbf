#!/usr/bin/env bash
# Runs one libFuzzer target for ctest (tests/fuzz/tests.cmake) and scripts/fuzz.sh.
#   run.sh replay BIN DIR...                 every file under the DIRs, once each
#   run.sh fuzz BIN SECONDS WORKDIR DIR... [-flag=value...]
#                                            fuzz for SECONDS from the seeds in the DIRs; new
#                                            inputs go to WORKDIR/corpus, crashes to WORKDIR/crashes
# Exit: 0 clean; 1 a crash, sanitizer report, escaped exception, timeout (hang) or out-of-memory;
# 77 (ctest's skip) when BIN was not built because clang/libFuzzer are missing, unless
# HONE_FUZZ_EXPECTED=1 says it should have been built (then its absence is a failure).
set -uo pipefail

mode=$1 bin=$2
shift 2
if [ ! -x "$bin" ]; then
  if [ "${HONE_FUZZ_EXPECTED:-0}" = 1 ]; then
    echo "run.sh: $bin was not built although clang and libFuzzer were found" >&2
    exit 1
  fi
  echo "run.sh: SKIPPED: $bin not built (configured with HONE_BUILD_FUZZ=OFF, or clang and" \
    "libFuzzer missing: scripts/install-deps.sh installs clang libfuzzer-14-dev; reconfigure)" >&2
  exit 77
fi

# Per-input bounds: a hang (-timeout seconds) or more than -rss_limit_mb of memory (also the
# largest single allocation) is a finding, never a wait. libFuzzer's own crash exit code is 77,
# ctest's skip code: map every failure to 1.
limits=(-timeout="${HONE_FUZZ_TIMEOUT:-25}" -rss_limit_mb="${HONE_FUZZ_RSS_MB:-2048}"
  -error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1)
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=0}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$(cd "$(dirname "$0")" && pwd)/lsan.supp}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

case "$mode" in
  replay)
    files=()
    for d in "$@"; do
      [ -d "$d" ] || continue
      while IFS= read -r -d '' f; do files+=("$f"); done < <(find "$d" -type f ! -name '.*' -print0 | sort -z)
    done
    if [ ${#files[@]} -eq 0 ]; then
      echo "run.sh: no inputs in $*"
      exit 0
    fi
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    # One input at a time, so the log names the one that failed.
    rc=0
    for f in "${files[@]}"; do
      TMPDIR=$scratch "$bin" "${limits[@]}" "$f" >"$scratch/log" 2>&1
      r=$?
      if [ $r -ne 0 ]; then
        cat "$scratch/log"
        echo "run.sh: FAILED on $f (exit $r)"
        rc=1
      else
        echo "ok $f"
      fi
    done
    exit $rc
    ;;
  fuzz)
    seconds=$1 work=$2
    shift 2
    mkdir -p "$work/corpus" "$work/crashes"
    # A scratch folder of this run's own: two runs of one target (a long one and make test's) must
    # not remove each other's files.
    tmp=$(mktemp -d "$work/tmp.XXXXXX")
    dirs=() flags=()
    for a in "$@"; do
      case "$a" in
        -*) flags+=("$a") ;;  # extra libFuzzer flags (scripts/fuzz.sh passes them on)
        *) [ -d "$a" ] && dirs+=("$a") ;;
      esac
    done
    # New coverage lands in the first folder (the work corpus, kept between runs); the committed
    # seeds are read, never written.
    TMPDIR=$tmp "$bin" "${limits[@]}" -max_total_time="$seconds" \
      -artifact_prefix="$work/crashes/" "${flags[@]}" "$work/corpus" "${dirs[@]}"
    r=$?
    rm -rf "$tmp"
    if [ $r -ne 0 ]; then
      echo "run.sh: $(basename "$bin") FAILED (exit $r); the input is in $work/crashes/;" \
        "replay it with: $bin $work/crashes/<file>" >&2
      exit 1
    fi
    exit 0
    ;;
  *)
    echo "usage: run.sh replay BIN DIR... | run.sh fuzz BIN SECONDS WORKDIR DIR..." >&2
    exit 2
    ;;
esac
