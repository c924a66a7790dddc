"""The first ``n`` of the MNIST digits shipped in the repository (crates/imreg-objective/data/mnist), for the
examples: images as float64 in [0, 1] (``n × 28 × 28``) and integer labels."""
import gzip
import os
import struct

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "crates", "imreg-objective", "data", "mnist")


def read_idx(name, magic):
    raw = gzip.open(os.path.join(DATA, name)).read()
    dims = struct.unpack(">" + "I" * (magic & 0xFF), raw[4 : 4 + 4 * (magic & 0xFF)])
    return np.frombuffer(raw[4 + 4 * len(dims) :], dtype=np.uint8).reshape(dims)


def digits(n):
    """``(images, labels)`` of the first ``n`` training digits."""
    images = read_idx("train-images-idx3-ubyte.gz", 0x803)[:n].astype(np.float64) / 255.0
    labels = read_idx("train-labels-idx1-ubyte.gz", 0x801)[:n].astype(np.int64)
    return images, labels
