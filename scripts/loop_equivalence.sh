#!/bin/sh
# Runs `reproduce --quick` and every run config of examples/configs with two imreg binaries and compares the
# outputs number by number (scripts/compare_outputs.py): bitwise, or the largest relative difference.
#   scripts/loop_equivalence.sh BEFORE_BINARY AFTER_BINARY [OUT_DIR]
set -eu
before=$1
after=$2
out=${3:-/tmp/imreg-equivalence}
here=$(cd "$(dirname "$0")/.." && pwd)
status=0
for side in before after; do
    bin=$(eval echo "\$$side")
    "$bin" reproduce --quick --out "$out/$side/reproduce" >"$out.$side.log" 2>&1 || true
    for cfg in "$here"/examples/configs/*.toml; do
        name=$(basename "$cfg" .toml)
        # sweep configs are expanded by `imreg sweep`, not `imreg run`
        grep -q '^\[sweep\]' "$cfg" && continue
        "$bin" run "$cfg" --out "$out/$side/runs/$name" --quiet --force --no-figures >>"$out.$side.log" 2>&1 || true
    done
done
python3 "$here/scripts/compare_outputs.py" "$out/before/reproduce" "$out/after/reproduce" | tail -1 || status=1
for dir in "$out"/before/runs/*/; do
    name=$(basename "$dir")
    printf '%s: ' "$name"
    python3 "$here/scripts/compare_outputs.py" "$dir" "$out/after/runs/$name" | tail -1 || status=1
done
exit $status
