#!/usr/bin/env bash
# Instructions per call of MLP bench rows in two builds of `examples/mlp_rows.rs` (docs/performance.md,
# "Instructions per call"): for each row, two callgrind runs per build, with CALLS calls and with none; the
# difference over CALLS is the row's count. Counts do not depend on the machine's load.
#
#   scripts/instructions_ab.sh BASE_BIN NEW_BIN CALLS SIZE/LOSS/ROW ...
#
# (BASE_BIN, NEW_BIN: `mlp_rows` built from each commit and copied aside; a build before the large-block cache
# of `imreg_ad::alloc` drops the example's `#[global_allocator]` lines, as its bench has none.)
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 BASE_BIN NEW_BIN CALLS SIZE/LOSS/ROW ..." >&2; exit 2; }
base=$1 new=$2 calls=$3
shift 3
count() { # BIN SIZE LOSS ROW CALLS
  RAYON_NUM_THREADS=1 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 |
    sed -n 's/.*Collected : //p'
}
printf 'row\tbase\tnew\tnew/base\n'
for row in "$@"; do
  IFS=/ read -r size loss what <<< "$row"
  per_call() { echo $(( ($(count "$1" "$size" "$loss" "$what" "$calls") - $(count "$1" "$size" "$loss" "$what" 0)) / calls )); }
  b=$(per_call "$base"); n=$(per_call "$new")
  printf '%s\t%d\t%d\t%.4f\n' "$row" "$b" "$n" "$(echo "$n / $b" | bc -l)"
done
