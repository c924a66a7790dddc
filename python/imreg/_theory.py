"""The theory of SGD's implicit regularization on a model: gradient flow and the modified flows (DOP853), the
modified losses, exact expectations and moments of the SGD iterate, and training runs with observers — every
series a numpy array."""
from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from . import _imreg
from ._model import ArrayLike, Model, _error, _vector

Batches = Optional[Sequence[Sequence[int]]]


@dataclass(frozen=True)
class Flow:
    """A flow integrated with DOP853: ``states[k] = θ(times[k])`` (rows, in θ order), and the integrator's
    accepted and rejected steps and right-hand-side evaluations."""

    kind: str
    times: np.ndarray
    states: np.ndarray
    accepted: int
    rejected: int
    evaluations: int


@dataclass(frozen=True)
class SgdExpectation:
    """The exact ``E[θ]`` after ``epochs`` epochs of SGD, the mean over ``sequences`` equally likely batch
    sequences (``steps_computed`` gradient steps with prefix sharing)."""

    mean: np.ndarray
    sequences: float
    steps_computed: float


@dataclass(frozen=True)
class Moments:
    """Exact first two moments of the SGD iterate over one epoch: ``mean[t] = E[θ_t]`` and
    ``cov[t] = Cov[θ_t]`` for ``t = 0, …, N/b``."""

    mean: np.ndarray
    cov: np.ndarray


@dataclass(frozen=True)
class Run:
    """A training run's series, one entry per observed step ``steps[j]`` (every ``every`` steps, the initial
    and the final iterate): ``loss`` ``C(θ_t)`` on the full data, ``grad_norm`` ``‖∇C_{B_t}(θ_t)‖`` of the
    step's batch (full batch at the final iterate), ``lambda_max`` ``λ_max(H(θ_t))`` by warm-started Lanczos
    with ``lambda_max_residual`` (an eigenvalue lies within it), and when asked ``batch_sharpness``
    (``E_B[g_BᵀH_Bg_B/‖g_B‖²]``, Monte Carlo, with its SE), ``ratio_of_means``, ``trace_k`` (``Tr K``),
    ``trace_f`` (``Tr F``) and ``thetas`` (the iterates, rows). ``outcome`` is ``"completed"``, ``"stopped"``
    or ``"diverged"`` (with ``diverged_step`` and ``blowup = (what, value)``); ``theta`` is the last finite
    iterate."""

    steps: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    theta: np.ndarray
    outcome: str
    gradient_calls: int
    diverged_step: Optional[int] = None
    blowup: Optional[Tuple[str, float]] = None
    lambda_max: Optional[np.ndarray] = None
    lambda_max_residual: Optional[np.ndarray] = None
    lanczos_iterations: Optional[np.ndarray] = None
    batch_sharpness: Optional[np.ndarray] = None
    batch_sharpness_se: Optional[np.ndarray] = None
    ratio_of_means: Optional[np.ndarray] = None
    ratio_of_means_se: Optional[np.ndarray] = None
    trace_k: Optional[np.ndarray] = None
    trace_f: Optional[np.ndarray] = None
    thetas: Optional[np.ndarray] = None


def _partition(batches: Batches) -> Optional[list]:
    if batches is None:
        return None
    try:
        return [[int(i) for i in b] for b in batches]
    except (TypeError, ValueError) as e:
        raise _error("batches", f"must be a sequence of sequences of example indices ({e})") from None


def _inner(model: Model) -> "_imreg.Model":
    if not isinstance(model, Model):
        raise _error("model", f"must be an imreg.Model, got {type(model).__name__}")
    return model._inner


def flow(
    model: Model,
    theta0: ArrayLike,
    times: ArrayLike,
    *,
    kind: str = "gradient",
    lr: Optional[float] = None,
    batch_size: Optional[int] = None,
    batches: Batches = None,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    max_steps: int = 100_000,
) -> Flow:
    """Integrates a flow from ``θ(0) = theta0`` with DOP853 (8th order, adaptive steps, 7th-order dense output
    at ``times``, which must be non-decreasing and ≥ 0) and returns ``θ(t)`` at each of ``times``.

    With ``C = (1/N) Σ_i C_i``, ``g = ∇C``, ``H = ∇²C``, a partition into ``m`` batches ``B_k`` with
    ``Ĉ_k``, ``ĝ_k``, ``Ĥ_k`` and ``ε = lr``, ``kind`` is

    - ``"gradient"``: ``θ̇ = −g``;
    - ``"modified_gd"``: the flow on ``C_GD = C + (ε/4)‖g‖²``, ``θ̇ = −(g + (ε/2) H g)``, which GD with step ε
      follows to ``O(ε³)`` per step (Barrett & Dherin 2021);
    - ``"gd_second_order"``: GD's modified equation to second order,
      ``θ̇ = −g − (ε/2) H g + ε² (−(1/12) ∇³C[g, g] − (1/3) H² g)`` (local error ``O(ε⁴)``);
    - ``"sgd"``: the flow on ``C_SGD = (1/m) Σ_k (Ĉ_k + (ε/4)‖ĝ_k‖²)`` of a fixed partition (Smith et al. 2021),
      ``θ̇ = −(ḡ + (ε/2m) Σ_k Ĥ_k ĝ_k)``, followed by the mean over the ``m!`` batch orders;
    - ``"fixed_order"``: the flow of one batch order, ``θ̇ = −ḡ + (ε/m) Σ_j Σ_{k<j} Ĥ_j ĝ_k − (mε/2) H̄ ḡ``;
    - ``"sgd_expected"``: the flow on the expectation over random partitions into batches of size ``B``,
      ``C + (ε/4)‖g‖² + ((N−B)/(N−1)) (ε/4B) Γ`` with ``Γ = (1/N) Σ_i ‖∇C_i − g‖²``.

    The partition is ``batches`` (explicit, disjoint) or consecutive blocks of ``batch_size`` (which must
    divide ``N``). A blow-up, a step-size collapse or ``max_steps`` raise :class:`ImregRuntimeError` naming the
    time and step.
    """
    t = _vector(times, "times")
    states, report = _imreg.flow(
        _inner(model), kind, _vector(theta0, "theta0"), t, lr, batch_size, _partition(batches), rtol, atol, max_steps
    )
    return Flow(
        kind=kind,
        times=t,
        states=states,
        accepted=int(report["accepted"]),
        rejected=int(report["rejected"]),
        evaluations=int(report["evaluations"]),
    )


def gradient_flow(model: Model, theta0: ArrayLike, times: ArrayLike, **integrator: Any) -> Flow:
    """Gradient flow ``θ̇ = −∇C(θ)`` from ``theta0`` at ``times`` (:func:`flow` with ``kind="gradient"``)."""
    return flow(model, theta0, times, kind="gradient", **integrator)


def modified_loss(
    model: Model,
    theta: ArrayLike,
    lr: float,
    *,
    kind: str = "gd",
    batch_size: Optional[int] = None,
    batches: Batches = None,
) -> float:
    """The modified loss at ``θ`` with ``ε = lr``: ``"gd"`` ``C_GD = C + (ε/4)‖∇C‖²``; ``"sgd"``
    ``C_SGD = (1/m) Σ_k (Ĉ_k + (ε/4)‖∇Ĉ_k‖²)`` of a partition (``batches`` or consecutive ``batch_size``);
    ``"sgd_expected"`` ``E[C_SGD] = C + (ε/4)‖∇C‖² + ((N−B)/(N−1)) (ε/4B) Γ`` over random partitions."""
    return _imreg.modified_loss(_inner(model), kind, _vector(theta, "theta"), lr, batch_size, _partition(batches))


def sgd_expectation(
    model: Model,
    theta0: ArrayLike,
    lr: float,
    *,
    batch_size: Optional[int] = None,
    batches: Batches = None,
    epochs: int = 1,
    averaging: str = "orders",
    max_sequences: float = 1e8,
) -> SgdExpectation:
    """The exact mean iterate ``E[θ_{mE}]`` after ``epochs = E`` epochs of SGD ``θ ← θ − ε ∇Ĉ_{B}(θ)`` with
    ``ε = lr`` from ``theta0``, by enumerating every equally likely batch sequence (prefix sharing, a fixed
    reduction order: bitwise identical at any thread count). ``averaging`` is

    - ``"orders"``: the ``m!`` orders of the partition's batches (follows ``C_SGD`` of that partition);
    - ``"partitions"``: all ordered partitions of the ``N`` examples into blocks of the partition's sizes
      (random reshuffling; follows ``E[C_SGD]`` with its ``Γ`` term);
    - ``"with_replacement"``: ``m`` i.i.d. uniform draws of the partition's batches per epoch (``m^m``
      sequences; follows ``C_GD``).

    Refuses (``ImregError`` naming ``epochs``) to enumerate more than ``max_sequences`` sequences.
    """
    mean, sequences, steps = _imreg.sgd_expectation(
        _inner(model), _vector(theta0, "theta0"), lr, epochs, averaging, batch_size, _partition(batches), max_sequences
    )
    return SgdExpectation(mean=mean, sequences=sequences, steps_computed=steps)


def sgd_moments(
    a: ArrayLike,
    b: ArrayLike,
    theta0: ArrayLike,
    lr: float,
    batch_size: int,
    *,
    process: str = "without_replacement",
) -> Moments:
    """Exact ``E[θ_t]`` and ``Cov[θ_t]``, ``t = 0, …, k = N/b``, over one epoch on the per-example quadratic
    ``ℓ_i(θ) = ½ θᵀA_iθ + b_iᵀθ`` (``a``: ``N × d × d``, symmetrized; ``b``: ``N × d``; ``N ≤ 20``), where a
    step is ``θ ← (I − εH_B) θ − ε ḡ_B`` with ``H_B``, ``ḡ_B`` the batch means of ``A_i``, ``b_i``.
    ``process`` is ``"without_replacement"`` (random reshuffling: a dynamic program over the ``2ᴺ`` sets of
    examples already used), ``"with_replacement"`` (independent uniform ``b``-subsets) or noise-injected GD
    ``θ ← θ − ε∇C(θ) + ε ξ``, ``ξ ~ N(0, S)`` with the batch-noise covariance ``S`` at ``θ₀`` made
    ``"noise_isotropic"`` (``(Tr S/d) I``), ``"noise_diagonal"`` or ``"noise_full"``."""
    try:
        A = np.ascontiguousarray(a, dtype=np.float64)
        B = np.ascontiguousarray(b, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise _error("a", f"must be arrays of real numbers ({e})") from None
    if A.ndim != 3:
        raise _error("a", f"must be N × d × d, got shape {A.shape}")
    if B.ndim != 2:
        raise _error("b", f"must be N × d, got shape {B.shape}")
    mean, cov = _imreg.sgd_moments(A, B, _vector(theta0, "theta0"), lr, batch_size, process)
    return Moments(mean=mean, cov=cov)


def train(
    model: Model,
    theta0: ArrayLike,
    lr: float,
    steps: int,
    *,
    sampler: str = "full",
    batch_size: Optional[int] = None,
    drop_last: bool = False,
    momentum: float = 0.0,
    nesterov: bool = False,
    seed: int = 0,
    every: int = 1,
    divergence_loss: float = math.inf,
    lambda_max: bool = True,
    lanczos_iter: int = 100,
    lanczos_tol: float = 1e-8,
    batch_sharpness: Optional[int] = None,
    mc_batches: int = 200,
    mc_rel_se: float = 0.01,
    gradient_traces: bool = False,
    record_theta: bool = False,
) -> Run:
    """Trains with GD or SGD and observes the run: the edge of stability (Cohen et al. 2021) and of stochastic
    stability (Andreyev & Beneventano 2024) as numpy series.

    ``steps`` updates ``θ_{t+1} = θ_t − η u(∇C_{B_t}(θ_t))`` with ``η = lr``; ``sampler`` is ``"full"`` (GD),
    ``"reshuffling"`` (epochs of a seeded permutation cut into batches of ``batch_size``; a smaller last batch
    unless ``drop_last``) or ``"with_replacement"``; ``u`` is plain, heavy ball (``momentum``) or Nesterov
    (PyTorch's ``SGD`` conventions). Every ``every`` steps, and at the final iterate, the observers record the
    full-data loss, the step's gradient norm, ``λ_max(H)`` (Lanczos warm-started from the previous top Ritz
    vector, at most ``lanczos_iter`` steps, relative tolerance ``lanczos_tol``), and when asked batch
    sharpness at batch size ``batch_sharpness`` (Monte Carlo over at most ``mc_batches`` batches, stop at
    relative SE ``mc_rel_se``, fresh seeded batches per step), ``Tr K`` and ``Tr F`` (exact), the iterates.
    Compare ``λ_max`` with ``2/η``. A batch loss above ``divergence_loss`` (or non-finite) ends the run as
    ``"diverged"`` with its step: an outcome, not an error. All randomness from ``seed``.
    """
    args = {
        "lr": lr,
        "steps": steps,
        "sampler": sampler,
        "batch_size": batch_size,
        "drop_last": drop_last,
        "momentum": momentum,
        "nesterov": nesterov,
        "seed": seed,
        "every": every,
        "divergence_loss": divergence_loss,
        "lambda_max": lambda_max,
        "lanczos_iter": lanczos_iter,
        "lanczos_tol": lanczos_tol,
        "batch_sharpness": batch_sharpness,
        "mc_batches": mc_batches,
        "mc_rel_se": mc_rel_se,
        "gradient_traces": gradient_traces,
        "record_theta": record_theta,
    }
    d = dict(_imreg.run(_inner(model), _vector(theta0, "theta0"), args))
    d["steps"] = d["steps"].astype(np.int64)
    blowup = d.pop("blowup")
    return Run(blowup=None if blowup is None else (str(blowup[0]), float(blowup[1])), **d)
