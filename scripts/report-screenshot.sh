#!/usr/bin/env bash
# Renders a hone report.html in headless Chromium: a PNG screenshot, the DOM after rendering and
# the browser's log (console messages appear as ":CONSOLE" lines). The browser test
# (tests/recipes/browser_report.cpp) and `make report-screenshot` (docs/report.png) both run it.
#
#   report-screenshot.sh REPORT.html OUT.png [DOM.html [LOG.txt]]
#   report-screenshot.sh --train BUILD OUT.png   # train the quickstart recipe, then render its report
#
# Exits 77 when no Chromium is installed (`make browser-deps` installs Debian's). CHROMIUM names
# the browser binary; WINDOW its window size (default 1280,2000).
set -euo pipefail
script=$(realpath "$0")

find_chromium() {
  if [ -n "${CHROMIUM:-}" ]; then
    command -v "$CHROMIUM" || true
    return
  fi
  command -v chromium || command -v chromium-browser || command -v google-chrome || true
}

chromium=$(find_chromium)
if [ -z "$chromium" ]; then
  echo "report-screenshot: no chromium found (make browser-deps installs Debian's)" >&2
  exit 77
fi

if [ "${1:-}" = "--train" ]; then
  [ $# -eq 3 ] || { echo "usage: $0 --train BUILD OUT.png" >&2; exit 2; }
  hone=$(realpath "$2")/hone
  out=$(realpath -m "$3")
  cd "$(dirname "$0")/.."
  run=$(mktemp -d)/quickstart
  trap 'rm -rf "$(dirname "$run")"' EXIT
  "$hone" -q train recipes/configs/quickstart.yaml output.dir="$run"
  "$hone" report "$run" -o "$run/report.html"
  "$script" "$run/report.html" "$out"
  exit 0
fi

[ $# -ge 2 ] || { echo "usage: $0 REPORT.html OUT.png [DOM.html [LOG.txt]]" >&2; exit 2; }
html=$(realpath "$1")
png=$(realpath -m "$2")
dom=${3:-/dev/null}
log=${4:-/dev/null}
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
# One run: the screenshot, the DOM on stdout, the log (with console messages) on stderr. A fresh
# profile each time, so no state of an earlier run leaks in.
"$chromium" --headless --disable-gpu --no-sandbox --hide-scrollbars --no-first-run \
  --user-data-dir="$profile" --window-size="${WINDOW:-1280,2000}" \
  --screenshot="$png" --dump-dom --enable-logging=stderr --v=0 \
  "file://$html" >"$dom" 2>"$log"
[ -s "$png" ] || { echo "report-screenshot: chromium wrote no screenshot to $png" >&2; exit 1; }
