"""Result types of the curvature calls: every number says how it was computed."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """A reported number and how it was computed.

    ``estimator`` is ``"exact"`` (every term of a finite sum, or a dense eigensolve), ``"monte_carlo"``
    (with ``std_error`` and ``samples``), or ``"lanczos"`` (an iterative eigensolve; ``residual_bound`` bounds
    ``‖Ay − θy‖``, so an eigenvalue lies within it of ``value``). ``converged`` is ``False`` when a Monte Carlo
    stop rule or a Lanczos tolerance was not met. ``float(e)`` is ``e.value``.
    """

    value: float
    estimator: str
    std_error: Optional[float] = None
    samples: Optional[int] = None
    unit: Optional[str] = None
    converged: bool = True
    residual_bound: Optional[float] = None

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> "Estimate":
        v = d.get("value")
        return cls(
            value=float("nan") if v is None else float(v),
            estimator=str(d["estimator"]),
            std_error=d.get("std_error"),
            samples=d.get("samples"),
            unit=d.get("unit"),
            converged=bool(d.get("converged", True)),
            residual_bound=d.get("residual_bound"),
        )

    @property
    def is_exact(self) -> bool:
        return self.estimator == "exact"

    def __float__(self) -> float:
        return self.value


@dataclass(frozen=True)
class Eigen:
    """Extreme eigenpairs of a Hessian ``H_B(θ)``.

    ``top`` is descending (``top[0]`` is the sharpness ``λ_max``), ``bottom`` ascending. ``method`` is
    ``"dense"`` (exact) or ``"lanczos"``; Lanczos reports its steps and, per pair, the residual bound
    ``‖Hy − θy‖``. With ``vectors=True``, ``top_vectors[i]`` and ``bottom_vectors[i]`` are unit eigenvectors
    (rows, in θ order).
    """

    top: np.ndarray
    bottom: np.ndarray
    method: str
    converged: bool
    iterations: int
    top_residuals: np.ndarray
    bottom_residuals: np.ndarray
    top_vectors: Optional[np.ndarray] = None
    bottom_vectors: Optional[np.ndarray] = None

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> "Eigen":
        arr = lambda k: np.asarray(d.get(k, []), dtype=np.float64)  # noqa: E731
        return cls(
            top=arr("top"),
            bottom=arr("bottom"),
            method=str(d["method"]),
            converged=bool(d["converged"]),
            iterations=int(d["iterations"]),
            top_residuals=arr("top_residuals"),
            bottom_residuals=arr("bottom_residuals"),
            top_vectors=d.get("top_vectors"),
            bottom_vectors=d.get("bottom_vectors"),
        )

    @property
    def lambda_max(self) -> float:
        """``λ_max(H)``, the sharpness."""
        return float(self.top[0])


@dataclass(frozen=True)
class Density:
    """The SLQ spectral density ``μ = (1/p) Σ_i δ(λ_i)`` of a Hessian.

    ``nodes`` and ``weights`` are the pooled Gauss quadrature nodes ``θ_j`` and weights ``w_j`` (summing to 1)
    of ``probes`` Rademacher probes × ``steps`` Lanczos steps; ``density`` is
    ``ρ(t) = Σ_j w_j φ_σ(t − θ_j)`` on ``grid`` (Gaussian ``φ_σ`` of absolute width ``sigma``); ``trace`` is
    ``p ∫λ dμ``, the Hutchinson estimate of the same probes with its standard error.
    """

    probes: int
    steps: int
    seed: int
    sigma: float
    nodes: np.ndarray
    weights: np.ndarray
    grid: np.ndarray
    density: np.ndarray
    trace: Estimate

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> "Density":
        arr = lambda k: np.asarray(d[k], dtype=np.float64)  # noqa: E731
        return cls(
            probes=int(d["probes"]),
            steps=int(d["steps"]),
            seed=int(d["seed"]),
            sigma=float(d["sigma"]),
            nodes=arr("nodes"),
            weights=arr("weights"),
            grid=arr("grid"),
            density=arr("density"),
            trace=Estimate._from(d["trace"]),
        )


@dataclass(frozen=True)
class BatchSharpness:
    """Batch sharpness at batch size ``b``, both published variants from the same batches.

    ``mean_of_ratios = E_B[g_BᵀH_Bg_B / ‖g_B‖²]`` (Andreyev & Beneventano's definition and the default of their
    code) and ``ratio_of_means = E_B[g_BᵀH_Bg_B] / E_B[‖g_B‖²]``, with ``g_B = ∇C_B(θ)``, ``H_B = ∇²C_B(θ)``,
    ``B`` a uniformly random size-``b`` subset of the ``N`` examples: exact over all ``C(N, b)`` batches, or
    Monte Carlo with its standard error.
    """

    batch_size: int
    mean_of_ratios: Estimate
    ratio_of_means: Estimate


@dataclass(frozen=True)
class GradientNoise:
    """Traces of the gradient's second moments on a batch, exact.

    ``trace_k = Tr K``, ``K = (1/N) Σ_i (g_i − ḡ)(g_i − ḡ)ᵀ`` (the gradient covariance; Smith et al.'s ``Γ``);
    ``trace_f = Tr F``, ``F = (1/N) Σ_i g_i g_iᵀ`` (the empirical Fisher), so ``Tr F = Tr K + ‖ḡ‖²``.
    """

    trace_k: Estimate
    trace_f: Estimate


@dataclass(frozen=True)
class CheckRecord:
    """One registered check of ``imreg verify``: its claim, the expected and measured values, and the verdict."""

    id: str
    claim: str
    expected: str
    measured: str
    passed: bool
    seconds: float = 0.0
    figures: list = field(default_factory=list)
