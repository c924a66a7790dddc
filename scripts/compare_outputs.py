#!/usr/bin/env python3
"""Compares two output trees of imreg number by number: `reproduce` report folders (report.json and the
figure CSVs) or `imreg run` folders (metrics.csv, summary.json, the .npy arrays).

    scripts/compare_outputs.py BEFORE AFTER [--tol 1e-12]

For every file present in both trees it prints `bitwise`, or the largest relative difference
|a - b| / max(|a|, |b|) over its numbers (NaN equals NaN; text tokens must match exactly). Exit status 1 if
any file differs by more than the tolerance, has a different shape, or is missing on one side.
"""
import json
import math
import os
import re
import struct
import sys

NUM = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$|^[-+]?(inf|nan|NaN|Inf)$")


def tokens_of_text(text):
    out = []
    for tok in re.split(r"[,\s\[\]{}:\"]+", text):
        if tok == "":
            continue
        out.append(float(tok) if NUM.match(tok) else tok)
    return out


def tokens_of_npy(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY":
        return tokens_of_text(data.decode("utf-8", "replace"))
    hlen = struct.unpack("<H", data[8:10])[0]
    header = data[10 : 10 + hlen].decode()
    body = data[10 + hlen :]
    if "<f8" not in header:
        return [body]
    return [header] + list(struct.unpack("<%dd" % (len(body) // 8), body))


def tokens(path, root):
    """The numbers and words of a file; the tree's own path is replaced by `<root>`."""
    if path.endswith(".npy"):
        return tokens_of_npy(path)
    if path.endswith(".json"):
        with open(path) as f:
            obj = json.load(f)
        out = []

        def walk(o, key=""):
            if key == "seconds":  # wall time, not a result
                return
            if isinstance(o, dict):
                for k in sorted(o):
                    walk(o[k], k)
            elif isinstance(o, list):
                for v in o:
                    walk(v, key)
            elif isinstance(o, bool) or o is None:
                out.append(str(o))
            elif isinstance(o, (int, float)):
                out.append(float(o))
            else:
                out.extend(tokens_of_text(str(o).replace(root.rstrip("/"), "<root>")))

        walk(obj)
        return out
    with open(path, encoding="utf-8", errors="replace") as f:
        return tokens_of_text(f.read())


def compare(a, b):
    """(bitwise, max relative difference) or None when the shapes or text differ."""
    if len(a) != len(b):
        return None
    bitwise, worst = True, 0.0
    for x, y in zip(a, b):
        if isinstance(x, float) and isinstance(y, float):
            if x == y or (math.isnan(x) and math.isnan(y)):
                if x == y and x == 0.0 and math.copysign(1, x) != math.copysign(1, y):
                    bitwise = False
                continue
            bitwise = False
            if math.isinf(x) or math.isinf(y) or math.isnan(x) or math.isnan(y):
                return None
            worst = max(worst, abs(x - y) / max(abs(x), abs(y)))
        elif x != y:
            return None
    return bitwise, worst


SKIP = (".png", ".svg", ".md", ".safetensors", "_COMPLETE", ".log", "status")


def files(root):
    out = set()
    for d, _, fs in os.walk(root):
        for f in fs:
            if not f.endswith(SKIP):
                out.add(os.path.relpath(os.path.join(d, f), root))
    return out


def main():
    args = sys.argv[1:]
    tol = 1e-12
    if "--tol" in args:
        i = args.index("--tol")
        tol = float(args[i + 1])
        del args[i : i + 2]
    before, after = args
    fa, fb = files(before), files(after)
    bad = 0
    for f in sorted(fa | fb):
        if f not in fa or f not in fb:
            print(f"MISSING {'after' if f in fa else 'before'}: {f}")
            bad += 1
            continue
        r = compare(tokens(os.path.join(before, f), before), tokens(os.path.join(after, f), after))
        if r is None:
            print(f"DIFFERS (shape or text): {f}")
            bad += 1
        elif r[0]:
            print(f"bitwise  {f}")
        else:
            ok = r[1] <= tol
            bad += not ok
            print(f"{'within' if ok else 'ABOVE '}   {f}: max rel diff {r[1]:.3e}")
    print(f"{len(fa | fb)} files, {bad} above tolerance {tol:g} or mismatched")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
