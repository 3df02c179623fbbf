#!/usr/bin/env bash
# Fails when a tracked C++ file differs from what clang-format (the repo's .clang-format) makes of
# it; `make format` fixes them. Exits 77 (ctest: skipped) without clang-format or outside git.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null || ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "format: skipped (needs clang-format and a git checkout)"
  exit 77
fi
mapfile -t files < <(git ls-files '*.cpp' '*.h')
bad=$(clang-format --dry-run --Werror "${files[@]}" 2>&1 | grep -o '^[^:]*:[0-9]*:[0-9]*: error' | cut -d: -f1 | sort -u || true)
if [ -n "$bad" ]; then
  echo "format: these files need \`make format\`:"
  echo "$bad"
  exit 1
fi
echo "format: ${#files[@]} files clean"
