"""PyTorch's side of the CNN-on-MNIST speed comparison (imreg's side: crates/imreg-cli/examples/anchor_cnn_mnist.rs).

The same two measurements, f64, on the 10,000 MNIST digits imreg ships (read here from the gzip IDX files in
crates/imreg-objective/data/mnist/, train part then test part, pixels byte / 255, shape [n, 1, 28, 28]):

  epoch       one epoch of SGD on Cohen et al.'s cnn-relu (conv 3x3 32 pad 1, ReLU, max-pool 2, twice, then
              linear 1568 -> 10; p = 25,258), mean cross-entropy, 100 batches of 100 from a seeded permutation,
              torch.optim.SGD(lr=0.05)
  lanczos20   one lambda_max estimate on the first 1,000 digits at the initial weights: the gradient graph built
              once (create_graph=True), then exactly 20 Hessian-vector products by double backward inside Lanczos
              with full reorthogonalization, the top Ritz value of the 20 x 20 tridiagonal

Each is run REPS times after one untimed warm-up; the median wall time is printed as one JSON line.
  /path/to/venv/bin/python scripts/anchor_cnn_mnist.py --threads 2
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import struct
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "crates", "imreg-objective", "data", "mnist")
REPS = 3
BATCH = 100
LR = 0.05
LANCZOS_N = 1000
LANCZOS_STEPS = 20


def read_idx(name: str, magic: int) -> np.ndarray:
    raw = gzip.open(os.path.join(DATA, name)).read()
    ndims = magic & 0xFF
    assert struct.unpack(">I", raw[:4])[0] == magic, name
    dims = struct.unpack(">" + "I" * ndims, raw[4 : 4 + 4 * ndims])
    return np.frombuffer(raw[4 + 4 * ndims :], dtype=np.uint8).reshape(dims)


def mnist() -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for part in ("train", "test"):
        xs.append(read_idx(f"{part}-images-idx3-ubyte.gz", 0x803))
        ys.append(read_idx(f"{part}-labels-idx1-ubyte.gz", 0x801))
    x = torch.from_numpy(np.concatenate(xs).astype(np.float64) / 255.0).reshape(-1, 1, 28, 28)
    y = torch.from_numpy(np.concatenate(ys).astype(np.int64))
    return x, y


def cnn_relu() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(32 * 7 * 7, 10),
    ).double()


def median_seconds(f, reps: int = REPS):
    """The median wall time of ``reps`` calls of ``f`` after one warm-up call, and the last value."""
    value = f()  # warm-up
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        value = f()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x, y = mnist()
    model = cnn_relu()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    p = sum(t.numel() for t in model.parameters())
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch():
        model.load_state_dict(init)
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        loss = None
        for i in range(0, len(y), BATCH):
            b = perm[i : i + BATCH]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[b]), y[b])
            loss.backward()
            opt.step()
        return loss.item()

    epoch_s, last_loss = median_seconds(epoch)

    model.load_state_dict(init)
    params = list(model.parameters())
    xs, ys = x[:LANCZOS_N], y[:LANCZOS_N]
    start = torch.randn(p, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def lanczos20():
        grads = torch.autograd.grad(loss_fn(model(xs), ys), params, create_graph=True)
        flat = torch.cat([g.reshape(-1) for g in grads])

        def hvp(v):
            hv = torch.autograd.grad(flat, params, grad_outputs=v, retain_graph=True)
            return torch.cat([h.reshape(-1) for h in hv])

        basis, alpha, beta = [], [], []
        v = start / start.norm()
        for j in range(LANCZOS_STEPS):
            basis.append(v)
            w = hvp(v)
            alpha.append(torch.dot(v, w).item())
            V = torch.stack(basis)
            w = w - V.T @ (V @ w)
            w = w - V.T @ (V @ w)
            if j + 1 < LANCZOS_STEPS:
                beta.append(w.norm().item())
                v = w / beta[-1]
        t = torch.diag(torch.tensor(alpha)) + torch.diag(torch.tensor(beta), 1) + torch.diag(torch.tensor(beta), -1)
        return torch.linalg.eigvalsh(t)[-1].item()

    lanczos_s, lam = median_seconds(lanczos20)
    print(json.dumps({
        "impl": f"pytorch {torch.__version__}", "threads": torch.get_num_threads(), "p": p,
        "epoch_s": round(epoch_s, 4), "epoch_last_batch_loss": round(last_loss, 6),
        "lanczos20_s": round(lanczos_s, 4), "lambda_max_20": round(lam, 6),
    }))


if __name__ == "__main__":
    main()
