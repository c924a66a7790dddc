#!/usr/bin/env python3
"""Per-row interleaved A/B of two builds of one criterion bench (docs/performance.md).

    python3 scripts/bench_ab_rows.py BASE_BIN NEW_BIN ROW [ROW ...] [--rounds 5] [--measure 1]

BASE_BIN and NEW_BIN are the bench executables of two builds (`cargo bench --no-run` prints their paths;
copy them aside before rebuilding). For each row (an exact criterion id such as `mlp/small/mse/grad`),
`--rounds` rounds run both binaries back to back, the order alternating between rounds, one criterion median
per run. A row's verdict is the median over rounds of the paired ratio new/base: a slow drift of the machine
moves both halves of a pair alike, which a comparison of best-of-N over whole passes cannot undo.
"""
import argparse
import math
import re
import statistics
import subprocess

UNITS = {"ns": 1e-3, "µs": 1.0, "us": 1.0, "ms": 1e3, "s": 1e6}


def median_us(binary, row, measure):
    out = subprocess.run(
        [binary, "--bench", f"^{re.escape(row)}$", "--warm-up-time", "0.5",
         "--measurement-time", str(measure), "--noplot"],
        capture_output=True, text=True, check=True).stdout
    m = re.search(r"time:\s*\[\S+ \S+ (\S+) (\S+)", out)
    if not m:
        raise SystemExit(f"no criterion time for {row!r} from {binary}")
    return float(m.group(1)) * UNITS[m.group(2)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("new")
    ap.add_argument("rows", nargs="+")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--measure", type=float, default=1.0)
    a = ap.parse_args()
    medians = []
    for row in a.rows:
        pairs = []
        for r in range(a.rounds):
            order = ("base", "new") if r % 2 == 0 else ("new", "base")
            t = {w: median_us(a.base if w == "base" else a.new, row, a.measure) for w in order}
            pairs.append((t["base"], t["new"]))
        ratios = [n / b for b, n in pairs]
        med = statistics.median(ratios)
        medians.append(med)
        print(f"{row:36s} base {statistics.median(p[0] for p in pairs):10.2f} µs  "
              f"new {statistics.median(p[1] for p in pairs):10.2f} µs  "
              f"paired ratio {med:.3f} [{min(ratios):.3f}, {max(ratios):.3f}]", flush=True)
    geo = math.exp(sum(map(math.log, medians)) / len(medians))
    print(f"geometric mean {geo:.3f}, largest {max(medians):.3f}, rows {len(medians)}")


if __name__ == "__main__":
    main()
