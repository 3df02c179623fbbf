#!/usr/bin/env bash
# Fails when a folder includes a header from a folder it must not depend on (DESIGN.md):
# autograd <- model <- lora <- recipes; autograd <- optim <- recipes; data <- recipes.
set -euo pipefail
cd "$(dirname "$0")/.."
declare -A allowed=(
  [autograd]="autograd"
  [model]="autograd model"
  [lora]="autograd model lora"
  [optim]="autograd optim"
  [data]="autograd data"
)
status=0
for dir in "${!allowed[@]}"; do
  while IFS= read -r line; do
    file=${line%%:*}
    inc=$(sed -E 's/.*#include "([a-z_]+)\/.*/\1/' <<<"$line")
    if [[ " ${allowed[$dir]} " != *" $inc "* ]]; then
      echo "layering: $file includes $inc/ (allowed: ${allowed[$dir]})"
      status=1
    fi
  done < <(grep -rnE '#include "(autograd|model|lora|optim|data|recipes)/' "$dir" --include='*.h' --include='*.cpp' || true)
done
[ $status -eq 0 ] && echo "layering: ok"
exit $status
