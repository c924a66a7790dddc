"""imreg: theory-first numerical solvers for the implicit regularization of SGD, from Python.

Exact losses, gradients, Hessian-vector products and curvature (Lanczos eigenpairs, Hessian traces, SLQ
densities, batch sharpness, MiniBS, ``Tr K``, ``λ_K¹``, the Fisher trace, per-example gradients) of models on
numpy arrays or converted PyTorch modules, on the full data or any index batch; and ``verify`` to run the
library's registered checks. Everything is float64 and seeded: the same call gives the same numbers as
``imreg analyze`` on the same weights.

>>> import numpy as np, imreg
>>> m = imreg.Model.from_config({"kind": "quadratic", "h": [1.0, 3.0]})
>>> m.eigenvalues(np.zeros(2), top=2).top.tolist()
[3.0, 1.0]
"""
from __future__ import annotations

from typing import Iterable, List, Optional

from . import _imreg
from ._imreg import ImregError, ImregRuntimeError
from ._model import Model
from ._results import BatchSharpness, CheckRecord, Density, Eigen, Estimate, GradientNoise
from ._specs import Preset, parse_spec, preset_spec, presets

__version__: str = _imreg.__version__

__all__ = [
    "BatchSharpness",
    "CheckRecord",
    "Density",
    "Eigen",
    "Estimate",
    "GradientNoise",
    "ImregError",
    "ImregRuntimeError",
    "Model",
    "Preset",
    "__version__",
    "check_ids",
    "parse_spec",
    "preset_spec",
    "presets",
    "verify",
]


def verify(only: Optional[Iterable[str]] = None, *, full: bool = False) -> List[CheckRecord]:
    """Runs the registered checks (``imreg verify``) selected by ``only`` — exact ids or topic prefixes such as
    ``"flow"`` or ``"spectra."``; ``None`` runs all — without figures, at quick sizes unless ``full``, and
    returns their records in registry order. A pattern that matches no check raises :class:`ImregError`."""
    if isinstance(only, str):
        only = [only]
    records = _imreg.verify(list(only or []), full)
    return [
        CheckRecord(
            id=r["id"],
            claim=r["claim"],
            expected=r["expected"],
            measured=r["measured"],
            passed=bool(r["passed"]),
            seconds=float(r.get("seconds", 0.0)),
            figures=list(r.get("figures", [])),
        )
        for r in records
    ]


def check_ids() -> List[str]:
    """The ids of the registered checks, in registry order."""
    return list(_imreg.check_ids())
