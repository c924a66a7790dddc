"""λ_max and Tr H of Cohen et al.'s cnn-relu on the first 1,000 shipped MNIST digits, in one sitting:
imreg from Python against PyHessian-style PyTorch code, both float64 on the same threads.

Two comparisons (`--protocol`; both by default). Their protocol was fixed before any timing was taken.

defaults: each side as it comes.
  imreg      imreg.torch.model(module, x, y, CrossEntropyLoss()) once (not timed), then model.eigenvalues(θ, 1)
             (Lanczos with full reorthogonalization to ‖Hy − θy‖ ≤ 1e-8·|θ|) and model.trace(θ) (Hutch++, 60
             HVPs, with its standard error)
  pyhessian  PyHessian's algorithms on the full batch: the gradient graph built once (create_graph=True), HVPs
             by double backward; power iteration for λ_max stopping at relative change < 1e-3 (at most 100
             steps) and Hutchinson for Tr H stopping at relative change < 1e-3 (at most 100 probes), as
             PyHessian's hessian(...).eigenvalues() and .trace() with their defaults

equal: both sides aim at the same accuracy, at PyHessian's stated tolerance.
  λ_max      imreg: Lanczos stopping once its eigenvalue bound min(r, r²/δ̂) (an estimate, the gap δ̂ taken
             from the Ritz values) is ≤ 1e-3·|θ| (model.eigenvalues(θ, 1, tol=1e-3, stop="eigenvalue"));
             PyHessian: its power iteration, unchanged (relative change < 1e-3).
             Reported for both: the relative error |λ − λ_ref| / λ_ref against λ_ref, imreg's default Lanczos
             (residual ≤ 1e-8·|θ|), computed once and not timed (the defaults run's value when it ran).
  Tr H       Hutchinson on both sides with the same number m of Rademacher probes (m HVPs each): the m that
             PyHessian's stop rule took on its untimed warm-up (model.trace(θ, method="hutchinson",
             matvecs=m) for imreg; PyHessian's loop for PyTorch, which with the same seed takes the same m).
             Reported for both: the standard error (sample standard deviation / √m).
  The PyHessian side is the defaults run itself (its code, its timing): only imreg's knobs change.

Each side runs REPS times after one untimed warm-up; the median wall time and the values are printed as JSON
lines, then the ratios. Run it on a quiet machine, with torch and imreg installed in the same environment:

  RAYON_NUM_THREADS=2 /path/to/venv/bin/python scripts/bench_python_vs_pyhessian.py --threads 2
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np
import torch

import imreg
import imreg.torch

# The MNIST reader, the cnn-relu module and the timer are the CNN anchor's (scripts/anchor_cnn_mnist.py).
from anchor_cnn_mnist import cnn_relu, median_seconds, read_idx  # noqa: E402


def mnist(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = read_idx("train-images-idx3-ubyte.gz", 0x803)[:n].astype(np.float64) / 255.0
    y = read_idx("train-labels-idx1-ubyte.gz", 0x801)[:n].astype(np.int64)
    return torch.from_numpy(x).reshape(-1, 1, 28, 28), torch.from_numpy(y)


def pyhessian(module: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> dict:
    """PyHessian's full-batch eigenvalues() and trace() with their defaults (maxIter=100, tol=1e-3)."""
    params = [p for p in module.parameters() if p.requires_grad]
    loss = torch.nn.functional.cross_entropy(module(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)

    def hv(v):
        return torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)

    def dot(a, b):
        return sum(torch.sum(u * w) for u, w in zip(a, b)).item()

    g = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in params]
    norm = dot(v, v) ** 0.5
    v = [t / norm for t in v]
    lam, power_steps = None, 0
    for power_steps in range(1, 101):
        hvs = hv(v)
        new = dot(hvs, v)
        norm = dot(hvs, hvs) ** 0.5
        v = [t / (norm + 1e-6) for t in hvs]
        if lam is not None and abs(new - lam) / (abs(lam) + 1e-6) < 1e-3:
            lam = new
            break
        lam = new
    trace_samples, mean = [], None
    for _ in range(100):
        z = [torch.randint(0, 2, p.shape, generator=g).to(p.dtype) * 2 - 1 for p in params]
        trace_samples.append(dot(hv(z), z))
        new = float(np.mean(trace_samples))
        if mean is not None and abs(new - mean) / (abs(mean) + 1e-6) < 1e-3:
            mean = new
            break
        mean = new
    return {
        "lambda_max": lam, "power_steps": power_steps, "trace": mean, "trace_probes": len(trace_samples),
        "trace_std_error": std_error(trace_samples),
    }


def std_error(samples: list[float]) -> float | None:
    """The sample standard deviation / √m of m probe values (None for one probe)."""
    m = len(samples)
    return float(np.std(samples, ddof=1) / np.sqrt(m)) if m > 1 else None


def with_imreg(model: imreg.Model, theta: np.ndarray, seed: int) -> dict:
    """The defaults protocol's imreg side."""
    e = model.eigenvalues(theta, 1, seed=seed)
    t = model.trace(theta, seed=seed)
    return {
        "lambda_max": e.lambda_max, "lanczos_steps": e.iterations, "residual_bound": float(e.top_residuals[0]),
        "trace": t.value, "trace_std_error": t.std_error, "trace_matvecs": 60,
    }


def with_imreg_equal(model: imreg.Model, theta: np.ndarray, seed: int, probes: int) -> dict:
    """The equal protocol's imreg side: λ_max to an eigenvalue bound of 1e-3 relative, Hutchinson with
    ``probes`` probes."""
    e = model.eigenvalues(theta, 1, seed=seed, tol=1e-3, stop="eigenvalue")
    t = model.trace(theta, method="hutchinson", matvecs=probes, seed=seed)
    return {
        "lambda_max": e.lambda_max, "lanczos_steps": e.iterations, "residual_bound": float(e.top_residuals[0]),
        "trace": t.value, "trace_std_error": t.std_error, "trace_probes": probes,
    }


def rel_error(value: float, reference: float) -> float:
    return abs(value - reference) / abs(reference)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (set RAYON_NUM_THREADS for imreg)")
    ap.add_argument("--n", type=int, default=1000, help="MNIST digits")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--protocol", choices=("defaults", "equal", "both"), default="both")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    module = cnn_relu()
    x, y = mnist(args.n)
    model, theta = imreg.torch.model(module, x, y, torch.nn.CrossEntropyLoss())
    common = {"n": args.n, "p": model.p, "threads": args.threads, "rayon_threads": os.environ.get("RAYON_NUM_THREADS")}

    def line(protocol: str, side: str, seconds: float, result: dict, **extra) -> None:
        record = {"protocol": protocol, "side": side, "seconds": round(seconds, 4), **result, **extra, **common}
        print(json.dumps(record), flush=True)

    t_torch, r_torch = median_seconds(lambda: pyhessian(module, x, y, args.seed), args.reps)
    line("defaults", "pyhessian", t_torch, r_torch, torch=torch.__version__)
    speedups = {}
    reference = None
    if args.protocol in ("defaults", "both"):
        t_imreg, r_imreg = median_seconds(lambda: with_imreg(model, theta, args.seed), args.reps)
        line("defaults", "imreg", t_imreg, r_imreg)
        reference = r_imreg["lambda_max"]
        speedups["defaults"] = round(t_torch / t_imreg, 3)
    if args.protocol in ("equal", "both"):
        if reference is None:
            reference = model.eigenvalues(theta, 1, seed=args.seed).lambda_max
        probes = r_torch["trace_probes"]
        t_eq, r_eq = median_seconds(lambda: with_imreg_equal(model, theta, args.seed, probes), args.reps)
        line("equal", "imreg", t_eq, r_eq, lambda_rel_error=rel_error(r_eq["lambda_max"], reference),
             lambda_reference=reference)
        line("equal", "pyhessian", t_torch, r_torch, lambda_rel_error=rel_error(r_torch["lambda_max"], reference),
             lambda_reference=reference)
        speedups["equal"] = round(t_torch / t_eq, 3)
    print(json.dumps({"speedup_pyhessian_time_over_imreg_time": speedups}))


if __name__ == "__main__":
    main()
