"""Shared fixtures: the repository's PyTorch reference cases, a safetensors reader/writer in plain numpy (so
the tests need no safetensors package), the `imreg` binary for `imreg analyze --json`, and small problems."""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Dict

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
TORCH_FIXTURES = REPO / "crates" / "imreg-objective" / "tests" / "fixtures" / "torch"
DTYPES = {"F64": np.float64, "F32": np.float32, "I64": np.int64, "I32": np.int32}


def read_safetensors(path: Path) -> Dict[str, np.ndarray]:
    b = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", b[:8])
    header = json.loads(b[8 : 8 + n])
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        out[k] = np.frombuffer(b[8 + n + s : 8 + n + e], dtype=DTYPES[v["dtype"]]).reshape(v["shape"]).copy()
    return out


def write_safetensors(path: Path, tensors: Dict[str, np.ndarray]) -> None:
    header, chunks, offset = {}, [], 0
    for k, a in tensors.items():
        data = np.ascontiguousarray(a, dtype="<f8").tobytes()
        header[k] = {"dtype": "F64", "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(h)) + h + b"".join(chunks))


def imreg_binary() -> str:
    """The `imreg` binary: $IMREG_BIN, the repository's release build, or `imreg` on PATH."""
    candidates = [os.environ.get("IMREG_BIN"), str(REPO / "target" / "release" / "imreg"), shutil.which("imreg")]
    for c in candidates:
        if c and Path(c).is_file():
            return c
    pytest.fail("no imreg binary: build it with `cargo build --release` or set IMREG_BIN", pytrace=False)


def analyze_json(args, tmp_path: Path) -> dict:
    """`imreg analyze --json` with `args`."""
    out = subprocess.run([imreg_binary(), "analyze", "--json", *args], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="session")
def cnn_case():
    """The cnn-relu reference case: PyTorch's spec, data, weights and its float64 numbers."""
    ref = json.loads((TORCH_FIXTURES / "cnn-relu.json").read_text())
    data = read_safetensors(TORCH_FIXTURES / "cnn-relu.data.safetensors")
    return {
        "ref": ref,
        "x": data["x"],
        "labels": data["labels"].astype(np.int64),
        "weights": TORCH_FIXTURES / "cnn-relu.safetensors",
    }


@pytest.fixture(scope="session")
def cnn_analysis(cnn_case, tmp_path_factory):
    """`imreg analyze --json` on the cnn-relu case (exact trace, batch sharpness at b = 2)."""
    tmp = tmp_path_factory.mktemp("analyze")
    x, y = tmp / "x.npy", tmp / "y.npy"
    np.save(x, cnn_case["x"].reshape(len(cnn_case["x"]), -1))
    np.save(y, cnn_case["labels"])
    args = [
        "--model", "network", "--preset", "cnn-relu", "--input-shape", "1,12,12", "--classes", "4",
        "--loss", "cross_entropy", "--params", str(cnn_case["weights"]), "--data", str(x), "--targets", str(y),
        "--batch-size", "2", "--exact-trace-max-p", "20000",
        "--quantities", "top-k,bottom-k,trace,k-spectrum,fisher,batch-sharpness",
    ]
    return analyze_json(args, tmp)


SMALL_SPEC = {
    "name": "tiny-cnn",
    "input": [1, 5, 5],
    "layers": [
        {"type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1},
        {"type": "tanh"},
        {"type": "avg_pool", "kernel_size": 2},
        {"type": "flatten"},
        {"type": "linear", "out_features": 3},
    ],
}


@pytest.fixture()
def small():
    """A small CNN (p = 47) on 7 seeded examples of 1×5×5 with 3 classes, at a seeded θ."""
    import imreg

    rng = np.random.default_rng(7)
    x = rng.standard_normal((7, 1, 5, 5))
    y = np.array([0, 1, 2, 0, 1, 2, 1])
    m = imreg.Model.network(SMALL_SPEC, x, y, loss="cross_entropy")
    theta = m.pytorch_init(seed=3) + 0.1 * rng.standard_normal(m.p)
    return m, theta
