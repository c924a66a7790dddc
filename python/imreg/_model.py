"""``imreg.Model``: a loss ``C_B(θ) = (1/|B|) Σ_{i∈B} ℓ_i(θ)`` on numpy data and its exact curvature."""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _imreg
from ._results import BatchSharpness, Block, Density, Diagonal, Eigen, Estimate, GradientNoise
from ._specs import network_spec

ArrayLike = Any
Batch = Optional[Iterable[int]]
SpecLike = Union[str, Mapping[str, Any], "os.PathLike[str]"]


def _error(field: str, message: str) -> "_imreg.ImregError":
    e = _imreg.ImregError(f"{field}: {message}")
    e.field = field  # type: ignore[attr-defined]
    return e


def _vector(a: ArrayLike, field: str) -> np.ndarray:
    """A 1-D C-contiguous float64 view of ``a`` (no copy when it already is one)."""
    if a is None:
        raise _error(field, "must be a 1-D array of real numbers, got None")
    try:
        v = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise _error(field, f"must be an array of real numbers ({e})") from None
    # Checked before `ascontiguousarray`, which turns a scalar into a 1-element vector.
    if v.ndim != 1:
        raise _error(field, f"must be a 1-D array, got shape {v.shape}")
    return np.ascontiguousarray(v)


def _matrix(a: ArrayLike, field: str) -> np.ndarray:
    try:
        m = np.ascontiguousarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise _error(field, f"must be an array of real numbers ({e})") from None
    if m.ndim == 1:
        m = m.reshape(-1, 1)
    if m.ndim != 2:
        raise _error(field, f"must be a 2-D array (examples × features), got shape {m.shape}")
    return m


def _inputs(x: ArrayLike) -> np.ndarray:
    """Inputs as ``N × d`` rows: images ``N × C × H × W`` are flattened NCHW (as ``x.reshape(N, -1)``)."""
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise _error("x", f"must be an array of real numbers ({e})") from None
    if a.ndim == 0:
        raise _error("x", "must hold one example per row, got a scalar")
    if a.ndim == 1:
        a = a.reshape(-1, 1)
    return np.ascontiguousarray(a.reshape(a.shape[0], -1))


def _batch(batch: Batch) -> Optional[List[int]]:
    if batch is None:
        return None
    ix = np.asarray(list(batch) if not isinstance(batch, np.ndarray) else batch)
    if ix.size == 0:
        raise _error("batch", "the batch is empty")
    if ix.ndim != 1 or not np.issubdtype(ix.dtype, np.integer):
        raise _error("batch", f"must be a 1-D sequence of example indices, got dtype {ix.dtype} shape {ix.shape}")
    if (ix < 0).any():
        raise _error("batch", f"example index {int(ix[ix < 0][0])} is negative")
    return [int(i) for i in ix]


def _targets(y: ArrayLike, classes: Optional[int]) -> Tuple[Optional[np.ndarray], Optional[List[int]]]:
    """Integer labels (1-D, integer dtype, or any 1-D array with ``classes`` given) or real targets."""
    a = np.asarray(y)
    if a.ndim == 1 and (np.issubdtype(a.dtype, np.integer) or classes is not None):
        if not np.issubdtype(a.dtype, np.integer):
            if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
                raise _error("y", "class labels must be whole numbers")
            a = a.astype(np.int64)
        if (a < 0).any():
            raise _error("y", f"label {int(a[a < 0][0])} is negative")
        return None, [int(v) for v in a]
    return _matrix(a, "y"), None


class Model:
    """A model with its data: ``C_B(θ) = (1/|B|) Σ_{i∈B} ℓ(f_θ(x_i), y_i)`` with exact derivatives.

    Build one with :meth:`network` (a preset name, a spec dict, or a ``.toml``/``.json`` spec file),
    :meth:`from_config` (any ``[model]`` table of an imreg experiment config: ``mlp``, ``linear_regression``,
    ``scalar_net``, ``quadratic``, …) or :func:`imreg.torch.from_module`. Parameters ``θ`` are flat float64
    vectors in PyTorch ``state_dict`` order (:meth:`layout`); get them with :meth:`load_weights`,
    :meth:`theta_from_state_dict` or :meth:`pytorch_init`.

    Every method takes ``batch``: ``None`` for all ``N`` examples, or a sequence of example indices ``B``
    (repetitions allowed). Computations release the GIL; inputs that are C-contiguous float64 arrays are read
    in place.
    """

    def __init__(self, inner: "_imreg.Model"):
        self._inner = inner

    # ---- construction --------------------------------------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        model: Union[Mapping[str, Any], str],
        x: Optional[ArrayLike] = None,
        y: Optional[ArrayLike] = None,
        *,
        classes: Optional[int] = None,
        seed: int = 0,
    ) -> "Model":
        """A model from a ``[model]`` table (a dict, or its TOML text) on inputs ``x`` and targets ``y``.

        ``y`` holds class labels when it is a 1-D integer array (or ``classes`` is given), else real targets
        (``N`` or ``N × outputs``). ``x`` may be images ``N × C × H × W`` (flattened NCHW). Data-free models
        (``quadratic``, ``scalar_net`` with ``phi``) take neither.

        >>> m = Model.from_config({"kind": "quadratic", "h": [1.0, 3.0]})
        >>> m.loss(np.array([1.0, 1.0]))
        2.0
        """
        if isinstance(model, str):
            try:
                import tomllib  # type: ignore[import-not-found]
            except ImportError:  # Python < 3.11
                tomllib = None
            table = _parse_toml(model, tomllib)
            model = table.get("model", table)
        if not isinstance(model, Mapping):
            raise _error("model", f"must be a dict or the text of a TOML table, got {type(model).__name__}")
        cfg = dict(model)
        if cfg.get("kind") == "network" and isinstance(cfg.get("spec"), (os.PathLike,)):
            cfg["spec"] = os.fspath(cfg["spec"])
        if x is None and y is None:
            inner = _imreg.Model.build(json.dumps(cfg), seed=seed)
            return cls(inner)
        if x is None or y is None:
            raise _error("x" if x is None else "y", "give both the inputs x and the targets y")
        xs = _inputs(x)
        targets, labels = _targets(y, classes)
        inner = _imreg.Model.build(json.dumps(cfg), xs, targets, labels, classes, seed)
        return cls(inner)

    @classmethod
    def network(
        cls,
        spec: SpecLike,
        x: ArrayLike,
        y: ArrayLike,
        *,
        loss: str = "cross_entropy",
        input_shape: Optional[Sequence[int]] = None,
        batch_norm: Optional[str] = None,
        classes: Optional[int] = None,
    ) -> "Model":
        """A network from a preset name (``"cnn-relu"``, ``"resnet20"``, … see :func:`imreg.presets`), a spec
        dict (``{"input": [1, 28, 28], "layers": [{"type": "conv2d", …}, …]}``) or a ``.toml``/``.json`` spec
        file, on inputs ``x`` and targets ``y``.

        ``loss`` is ``half_mse`` (``½‖f − y‖²``), ``squared_error`` (``‖f − y‖²``), ``mse`` (PyTorch's
        ``MSELoss()``, ``‖f − y‖²/C``), ``cross_entropy`` (``CrossEntropyLoss()``, optionally
        ``cross_entropy(label_smoothing=ε)``) or ``logistic`` (``BCEWithLogitsLoss()``); PyTorch's names are
        accepted. ``input_shape`` (``[C, H, W]``) defaults to ``x.shape[1:]`` for image-shaped ``x``;
        ``batch_norm`` is ``"train"`` (batch statistics) or ``"eval"`` (running statistics).
        """
        cfg: Dict[str, Any] = {"kind": "network", "loss": loss}
        xa = np.asarray(x)
        if input_shape is None and xa.ndim >= 3:
            input_shape = list(xa.shape[1:])
        if isinstance(spec, str) and not (spec.endswith(".toml") or spec.endswith(".json")):
            cfg["preset"] = spec
        else:
            cfg["spec"] = network_spec(spec)
        if input_shape is not None:
            cfg["input_shape"] = [int(d) for d in input_shape]
        if batch_norm is not None:
            cfg["batch_norm"] = batch_norm
        return cls.from_config(cfg, xa, y, classes=classes)

    # ---- description ---------------------------------------------------------------------------------------

    @property
    def p(self) -> int:
        """Number of parameters ``p``."""
        return self._inner.p

    @property
    def n(self) -> int:
        """Number of examples ``N``."""
        return self._inner.n

    @property
    def kind(self) -> str:
        """The ``[model]`` kind (``network``, ``mlp``, ``linear_regression``, …)."""
        return self._inner.kind

    @property
    def name(self) -> str:
        """The objective's name with its loss convention."""
        return self._inner.name

    @property
    def config(self) -> Dict[str, Any]:
        """The ``[model]`` table this model was built from."""
        return json.loads(self._inner.config_json())

    @property
    def spec(self) -> Optional[Dict[str, Any]]:
        """A network's resolved description (``NetworkSpec`` as a dict); ``None`` for the other kinds."""
        s = self._inner.spec_json()
        return None if s is None else json.loads(s)

    def layout(self) -> List[Tuple[str, Tuple[int, ...]]]:
        """The parameter tensors in θ order: ``[(name, shape), …]`` with PyTorch ``state_dict`` names."""
        return [(n, tuple(s)) for n, s in self._inner.layout()]

    def state_dict(self, theta: ArrayLike) -> Dict[str, np.ndarray]:
        """θ split into its named tensors (views of ``theta``), the inverse of :meth:`theta_from_state_dict`
        for parameters."""
        t = _vector(theta, "theta")
        if t.size != self.p:
            raise _error("theta", f"has length {t.size}, expected p = {self.p}")
        out, k = {}, 0
        for name, shape in self.layout():
            size = int(np.prod(shape, dtype=np.int64))
            out[name] = t[k : k + size].reshape(shape)
            k += size
        return out

    def __repr__(self) -> str:
        return f"imreg.Model({self.name!r}, p={self.p}, N={self.n})"

    # ---- parameters ----------------------------------------------------------------------------------------

    def load_weights(self, path: Union[str, "os.PathLike[str]"]) -> np.ndarray:
        """θ from a ``.safetensors`` state dict (strictly by name and shape; sets a network's batch-norm
        running statistics) or a flat ``.npy`` vector."""
        return self._inner.load_weights(os.fspath(path))

    def theta_from_state_dict(self, state_dict: Mapping[str, Any]) -> np.ndarray:
        """θ from a mapping of names to arrays (numpy, or anything ``np.asarray`` reads, e.g. a PyTorch
        ``state_dict`` after ``.detach().numpy()``), strictly by name and shape. Buffers that are not
        parameters (``running_mean``, ``running_var``) set a network's batch-norm statistics;
        ``num_batches_tracked`` is ignored."""
        tensors = []
        for name, value in state_dict.items():
            if name.endswith("num_batches_tracked"):
                continue
            a = np.asarray(value, dtype=np.float64)
            tensors.append((str(name), [int(d) for d in a.shape], np.ascontiguousarray(a.reshape(-1))))
        return self._inner.load_tensors(tensors)

    def pytorch_init(self, seed: int = 0, scale: float = 1.0) -> np.ndarray:
        """PyTorch's default initialization of a network (``U(−1/√fan_in, 1/√fan_in)`` for weights and biases,
        ``γ = 1``, ``β = 0`` for norms) times ``scale``, from imreg's seeded stream ``seed``."""
        return self._inner.pytorch_init(seed, scale)

    # ---- loss and derivatives ------------------------------------------------------------------------------

    def loss(self, theta: ArrayLike, batch: Batch = None) -> float:
        """``C_B(θ) = (1/|B|) Σ_{i∈B} ℓ_i(θ)``."""
        return self._inner.loss(_vector(theta, "theta"), _batch(batch))

    def gradient(self, theta: ArrayLike, batch: Batch = None) -> np.ndarray:
        """``∇C_B(θ)``, exact (reverse mode)."""
        return self._inner.loss_grad(_vector(theta, "theta"), _batch(batch))[1]

    def loss_and_gradient(self, theta: ArrayLike, batch: Batch = None) -> Tuple[float, np.ndarray]:
        """``(C_B(θ), ∇C_B(θ))`` in one pass."""
        return self._inner.loss_grad(_vector(theta, "theta"), _batch(batch))

    def hvp(self, theta: ArrayLike, v: ArrayLike, batch: Batch = None) -> np.ndarray:
        """The Hessian-vector product ``H_B(θ) v = ∇²C_B(θ) v``, exact (forward over reverse)."""
        return self._inner.hvp(_vector(theta, "theta"), _vector(v, "v"), _batch(batch))

    def hvps(self, theta: ArrayLike, vs: ArrayLike, batch: Batch = None) -> np.ndarray:
        """``H_B(θ) v_k`` for every row ``v_k`` of ``vs`` (``k × p``), the forward pass prepared once."""
        return self._inner.hvps(_vector(theta, "theta"), _matrix(vs, "vs"), _batch(batch))

    def hessian(self, theta: ArrayLike, batch: Batch = None) -> np.ndarray:
        """The dense Hessian ``H_B(θ)`` (``p × p``, from ``p`` HVPs, symmetrized ``(H + Hᵀ)/2``); for small
        ``p`` (``p² ≤ 2²⁴``)."""
        return self._inner.hessian(_vector(theta, "theta"), _batch(batch))

    def per_example_gradients(self, theta: ArrayLike, batch: Batch = None) -> np.ndarray:
        """The per-example gradients ``∇ℓ_i(θ)``, one row per example of the batch (``|B| × p``)."""
        return self._inner.per_example_gradients(_vector(theta, "theta"), _batch(batch))

    # ---- curvature -----------------------------------------------------------------------------------------

    def eigenvalues(
        self,
        theta: ArrayLike,
        top: int = 1,
        bottom: int = 0,
        *,
        batch: Batch = None,
        vectors: bool = False,
        seed: int = 0,
        dense_max_p: int = 400,
        max_iter: int = 300,
        tol: float = 1e-8,
        stop: str = "residual",
    ) -> Eigen:
        """The ``top`` largest and ``bottom`` smallest eigenvalues of ``H_B(θ)`` (and unit eigenvectors when
        ``vectors``).

        Dense and exact for ``p ≤ dense_max_p``; above, Lanczos with full reorthogonalization from a seeded
        start vector, stopping once every wanted Ritz pair ``(θ, y)`` has ``‖Hy − θy‖ ≤ tol · max|θ|`` or after
        ``min(max_iter, p)`` steps; each value comes with its residual bound. The same call as
        ``imreg analyze --top-k K --bottom-k K`` (equal numbers for equal ``seed``). ``stop="eigenvalue"``
        stops instead once every wanted Ritz value has its eigenvalue bound ``min(r, r²/δ̂) ≤ tol · max|θ|``
        (``r`` the residual bound, ``δ̂`` the gap estimated from the other Ritz values, so an estimate, not a
        certificate) of the distance to the nearest eigenvalue of ``H``, in fewer steps than the residual rule.
        Like any early stop it does not say that this eigenvalue is the largest: at a loose ``tol`` Lanczos can
        stop on a lower eigenvalue before its Krylov space has found the top one.
        """
        d = self._inner.eigen(
            _vector(theta, "theta"), top, bottom, _batch(batch), vectors, seed, dense_max_p, max_iter, tol, stop
        )
        return Eigen._from(d)

    def lambda_max(self, theta: ArrayLike, *, batch: Batch = None, seed: int = 0, **solver: Any) -> float:
        """The sharpness ``λ_max(H_B(θ))`` (see :meth:`eigenvalues` for the solver and its knobs)."""
        return self.eigenvalues(theta, 1, 0, batch=batch, seed=seed, **solver).lambda_max

    def trace(
        self,
        theta: ArrayLike,
        *,
        batch: Batch = None,
        method: str = "auto",
        seed: int = 0,
        exact_max_p: int = 400,
        matvecs: Optional[int] = None,
    ) -> Estimate:
        """``Tr H_B(θ)``.

        ``method="auto"`` (``imreg analyze``'s rule): exact ``Σ_k e_kᵀHe_k`` over the ``p`` unit vectors for
        ``p ≤ exact_max_p``, else Hutch++ (Meyer et al. 2021) with ``matvecs`` HVPs (default 60, as
        ``imreg analyze``) and its standard error.
        ``"exact"``, ``"hutch++"`` and ``"hutchinson"`` (``(1/m) Σ_k z_kᵀHz_k`` over ``m = matvecs`` Rademacher
        probes, SE = sample standard deviation / √m) force one.
        """
        return Estimate._from(
            self._inner.trace(_vector(theta, "theta"), _batch(batch), method, seed, exact_max_p, matvecs)
        )

    def density(
        self,
        theta: ArrayLike,
        *,
        batch: Batch = None,
        probes: int = 10,
        steps: int = 80,
        points: int = 400,
        sigma: float = 0.01,
        seed: int = 0,
    ) -> Density:
        """The spectral density of ``H_B(θ)`` by stochastic Lanczos quadrature (Ghorbani et al. 2019;
        PyHessian's ``density``): ``probes`` Rademacher probes, ``steps`` Lanczos steps each; ``sigma`` is the
        kernel width relative to the range of the nodes."""
        d = self._inner.density(_vector(theta, "theta"), _batch(batch), probes, steps, points, sigma, seed)
        return Density._from(d)

    def batch_sharpness(
        self,
        theta: ArrayLike,
        batch_size: int,
        *,
        seed: int = 0,
        max_exact: int = 100_000,
        mc_batches: int = 1000,
        mc_rel_se: float = 0.005,
    ) -> BatchSharpness:
        """Batch sharpness at batch size ``b``, both variants (see :class:`BatchSharpness`).

        Exact over all ``C(N, b)`` batches when there are at most ``max_exact``; else Monte Carlo over at most
        ``mc_batches`` seeded batches, stopping once the relative standard error is at most ``mc_rel_se``
        (batches drawn as ``imreg analyze --batch-size b --seed seed`` draws them).
        """
        estimation = _estimation(batch_size, seed, max_exact, mc_batches, mc_rel_se)
        d = self._inner.batch_sharpness(_vector(theta, "theta"), estimation)
        return BatchSharpness(
            batch_size=batch_size,
            mean_of_ratios=Estimate._from(d["mean_of_ratios"]),
            ratio_of_means=Estimate._from(d["ratio_of_means"]),
        )

    def mini_batch_sharpness(
        self,
        theta: ArrayLike,
        batch_size: int,
        *,
        seed: int = 0,
        max_exact: int = 100_000,
        mc_batches: int = 1000,
        mc_rel_se: float = 0.005,
    ) -> Estimate:
        """MiniBS ``E_B[λ_max(H_B(θ))]`` over size-``b`` batches (exact or Monte Carlo as
        :meth:`batch_sharpness`); ``MiniBS ≥ λ_max(H)`` by Jensen, with equality at ``b = N``."""
        estimation = _estimation(batch_size, seed, max_exact, mc_batches, mc_rel_se)
        return Estimate._from(self._inner.mini_batch_sharpness(_vector(theta, "theta"), estimation))

    def gradient_noise(self, theta: ArrayLike, batch: Batch = None) -> GradientNoise:
        """``Tr K`` (the gradient covariance, Smith et al.'s ``Γ``) and ``Tr F`` (the empirical Fisher) on the
        batch, exact (see :class:`GradientNoise`)."""
        d = self._inner.gradient_traces(_vector(theta, "theta"), _batch(batch))
        return GradientNoise(trace_k=Estimate._from(d["trace_k"]), trace_f=Estimate._from(d["trace_f"]))

    def gamma(self, theta: ArrayLike, batch: Batch = None) -> float:
        """Smith et al.'s ``Γ = Tr K``, the trace of the per-example gradient covariance (exact)."""
        return self.gradient_noise(theta, batch).trace_k.value

    def fisher_trace(self, theta: ArrayLike, batch: Batch = None) -> float:
        """``Tr F = (1/N) Σ_i ‖∇ℓ_i(θ)‖²``, the trace of the empirical Fisher (exact)."""
        return self.gradient_noise(theta, batch).trace_f.value

    def lambda_k1(self, theta: ArrayLike, *, batch: Batch = None, seed: int = 0) -> Estimate:
        """``λ_K¹``, the top eigenvalue of the gradient covariance ``K = (1/|B|) Σ_{i∈B} (g_i − ḡ)(g_i − ḡ)ᵀ``
        on the batch: exact (dense ``|B| × |B|`` Gram matrix ``(1/|B|) G Gᵀ`` of the centred per-example
        gradients when ``|B| < p``, dense ``p × p`` for small ``p``) or Lanczos, as ``imreg analyze``."""
        return Estimate._from(self._inner.lambda_k1(_vector(theta, "theta"), _batch(batch), seed))

    def blocks(
        self,
        theta: ArrayLike,
        *,
        batch: Batch = None,
        seed: int = 0,
        exact_max_p: int = 400,
        dense_max_p: int = 400,
        matvecs: Optional[int] = None,
    ) -> List[Block]:
        """The per-layer (per-module) principal blocks ``H_bb`` of ``H_B(θ)``, ``b`` the parameters of one
        module (the tensors sharing a ``state_dict`` prefix): ``Tr H_bb`` (exact for blocks of at most
        ``exact_max_p`` parameters, Hutch++ with ``matvecs`` HVPs above) and ``λ_max(H_bb)`` (dense up to
        ``dense_max_p``, Lanczos above), as ``imreg analyze --quantities blocks``. ``Σ_b Tr H_bb = Tr H``."""
        rows = self._inner.blocks(_vector(theta, "theta"), _batch(batch), seed, exact_max_p, dense_max_p, matvecs)
        return [Block._from(r) for r in rows]

    def hessian_diagonal(
        self,
        theta: ArrayLike,
        *,
        batch: Batch = None,
        seed: int = 0,
        exact_max_p: int = 400,
        probes: int = 100,
    ) -> Diagonal:
        """``diag H_B(θ)``: exact ``H_ii = e_iᵀHe_i`` from the ``p`` unit vectors for ``p ≤ exact_max_p``;
        above, Hutchinson's estimate ``d_i = (1/m) Σ_k z_{k,i} (H z_k)_i`` over ``m = probes`` Rademacher
        probes, with a standard error per entry (Bekas et al. 2007; ``imreg analyze --quantities diagonal``)."""
        values, std_errors, used = self._inner.hessian_diagonal(
            _vector(theta, "theta"), _batch(batch), seed, exact_max_p, probes
        )
        return Diagonal(values=values, std_errors=std_errors, probes=used)


def _estimation(batch_size: int, seed: int, max_exact: int, mc_batches: int, mc_rel_se: float) -> Dict[str, Any]:
    """The batch-expectation arguments of :meth:`Model.batch_sharpness` and :meth:`Model.mini_batch_sharpness`."""
    return {
        "batch_size": batch_size,
        "seed": seed,
        "max_exact": max_exact,
        "mc_batches": mc_batches,
        "mc_rel_se": mc_rel_se,
    }


def _parse_toml(text: str, tomllib: Any) -> Dict[str, Any]:
    """A ``[model]`` table's TOML, parsed by imreg's own parser on Python < 3.11."""
    if tomllib is not None:
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise _error("model", f"cannot parse the TOML: {e}") from None
    return json.loads(_imreg.toml_to_json(text))
