#!/usr/bin/env bash
# Instructions per call of MLP bench rows in two builds of `examples/mlp_rows.rs` (docs/performance.md,
# "Instructions per call"): for each row, two callgrind runs per build, with CALLS calls and with none; the
# difference over CALLS is the row's count. Counts do not depend on the machine's load.
#
#   scripts/instructions_ab.sh BASE_BIN NEW_BIN CALLS SIZE/LOSS/ROW ...
#
# (BASE_BIN, NEW_BIN: `mlp_rows` built from each commit and copied aside. An older commit takes the example and
# `benches/support/mlp_models.rs` copied into its tree; one before the large-block cache of `imreg_ad::alloc`
# drops the example's `#[global_allocator]` lines, as its bench has none.)
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 BASE_BIN NEW_BIN CALLS SIZE/LOSS/ROW ..." >&2; exit 2; }
base=$1 new=$2 calls=$3
shift 3
count() { # BIN SIZE LOSS ROW CALLS
  RAYON_NUM_THREADS=1 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 |
    sed -n 's/.*Collected : //p'
}
per_call() { # BIN SIZE LOSS ROW
  echo $(( ($(count "$@" "$calls") - $(count "$@" 0)) / calls ))
}
printf 'row\tbase\tnew\tnew/base\n'
for row in "$@"; do
  IFS=/ read -r size loss what <<< "$row"
  b=$(per_call "$base" "$size" "$loss" "$what"); n=$(per_call "$new" "$size" "$loss" "$what")
  printf '%s\t%d\t%d\t%.4f\n' "$row" "$b" "$n" "$(echo "$n / $b" | bc -l)"
done
