"""PyTorch modules as imreg networks: a pure-Python converter (torch is imported only when called).

:func:`from_module` walks an ``nn.Module`` built from supported layers (``nn.Sequential`` and modules whose
children run in registration order) into imreg's network description and the ``state_dict`` as float64
numpy arrays; :func:`model` builds the :class:`imreg.Model` on data and returns it with θ.

Supported layers: ``Conv2d`` (zero padding), ``Linear``, ``ReLU``, ``LeakyReLU``, ``ELU``, ``GELU`` (exact),
``Tanh``, ``Sigmoid``, ``Softplus`` (β = 1), ``Identity``, ``Flatten`` (from dimension 1), ``MaxPool2d``,
``AvgPool2d`` (``count_include_pad=True``), ``AdaptiveAvgPool2d``, ``BatchNorm1d``/``BatchNorm2d`` (affine),
``LayerNorm`` (affine, over all features), ``Dropout`` (in eval mode or ``p = 0``: the identity), and
``Sequential`` containers. The first other layer raises :class:`UnsupportedLayerError` naming it.

The conversion is checked: the module (in float64) and imreg's network must give the same outputs on a seeded
random input of the example shape, else :class:`ConversionError` says by how much they differ (a custom
``forward`` that does not run its children in order is caught here).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import _imreg
from ._model import Model

__all__ = ["ConversionError", "Converted", "UnsupportedLayerError", "from_module", "loss_name", "model"]


class UnsupportedLayerError(_imreg.ImregError):
    """A layer the converter cannot express; ``layer`` is its ``state_dict`` prefix and ``module`` its type."""

    def __init__(self, layer: str, module: str, reason: str):
        super().__init__(f"layer {layer or '<root>'} ({module}): {reason}")
        self.field = "module"
        self.layer = layer
        self.module = module


class ConversionError(_imreg.ImregError):
    """The converted network's outputs differ from the module's."""


@dataclass(frozen=True)
class Converted:
    """A module as imreg sees it: ``spec`` (the network description, a dict) and ``state_dict`` (float64 arrays
    by PyTorch name, parameters and batch-norm buffers)."""

    spec: Dict[str, Any]
    state_dict: Dict[str, np.ndarray]


def _torch():
    try:
        import torch  # noqa: F401
    except ImportError as e:  # pragma: no cover - exercised only without torch
        raise ImportError("imreg.torch needs PyTorch: pip install torch") from e
    return torch


def _pair(v: Any) -> List[int]:
    if isinstance(v, (tuple, list)):
        return [int(v[0]), int(v[1])] if len(v) == 2 else [int(v[0])] * 2
    return [int(v), int(v)]


def _layer(nn: Any, m: Any, name: str, path: str) -> Dict[str, Any]:
    kind = type(m).__name__

    def unsupported(reason: str) -> UnsupportedLayerError:
        return UnsupportedLayerError(path, f"{type(m).__module__}.{kind}", reason)

    if isinstance(m, nn.Conv2d):
        if m.padding_mode != "zeros":
            raise unsupported(f"padding_mode={m.padding_mode!r} is not supported (only 'zeros')")
        if isinstance(m.padding, str):
            raise unsupported(f"padding={m.padding!r} is not supported; give the padding as numbers")
        return {
            "type": "conv2d",
            "name": name,
            "in_channels": int(m.in_channels),
            "out_channels": int(m.out_channels),
            "kernel_size": _pair(m.kernel_size),
            "stride": _pair(m.stride),
            "padding": _pair(m.padding),
            "dilation": _pair(m.dilation),
            "groups": int(m.groups),
            "bias": m.bias is not None,
        }
    if isinstance(m, nn.Linear):
        return {
            "type": "linear",
            "name": name,
            "in_features": int(m.in_features),
            "out_features": int(m.out_features),
            "bias": m.bias is not None,
        }
    if isinstance(m, nn.MaxPool2d):
        if m.ceil_mode or m.return_indices or _pair(m.dilation) != [1, 1]:
            raise unsupported("ceil_mode, return_indices and dilation ≠ 1 are not supported")
        return {"type": "max_pool", "kernel_size": _pair(m.kernel_size), "stride": _pair(m.stride or m.kernel_size), "padding": _pair(m.padding)}
    if isinstance(m, nn.AvgPool2d):
        if m.ceil_mode or not m.count_include_pad or m.divisor_override is not None:
            raise unsupported("only ceil_mode=False, count_include_pad=True, divisor_override=None are supported")
        return {"type": "avg_pool", "kernel_size": _pair(m.kernel_size), "stride": _pair(m.stride or m.kernel_size), "padding": _pair(m.padding)}
    if isinstance(m, nn.AdaptiveAvgPool2d):
        if m.output_size is None or (isinstance(m.output_size, (tuple, list)) and None in m.output_size):
            raise unsupported("an output_size with None is not supported")
        return {"type": "adaptive_avg_pool", "output_size": _pair(m.output_size)}
    if isinstance(m, nn.Flatten):
        if m.start_dim != 1 or m.end_dim != -1:
            raise unsupported("only Flatten(start_dim=1, end_dim=-1) is supported")
        return {"type": "flatten"}
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        if not m.affine or not m.track_running_stats:
            raise unsupported("only affine batch norm with running statistics is supported")
        return {"type": "batch_norm", "name": name, "eps": float(m.eps)}
    if isinstance(m, nn.LayerNorm):
        if not m.elementwise_affine or getattr(m, "bias", True) is None:
            raise unsupported("only LayerNorm with elementwise_affine=True and a bias is supported")
        return {"type": "layer_norm", "name": name, "eps": float(m.eps)}
    if isinstance(m, nn.ReLU):
        return {"type": "relu"}
    if isinstance(m, nn.LeakyReLU):
        return {"type": "leaky_relu", "negative_slope": float(m.negative_slope)}
    if isinstance(m, nn.ELU):
        return {"type": "elu", "alpha": float(m.alpha)}
    if isinstance(m, nn.GELU):
        if m.approximate != "none":
            raise unsupported(f"GELU(approximate={m.approximate!r}) is not supported (only the exact erf GELU)")
        return {"type": "gelu"}
    if isinstance(m, nn.Tanh):
        return {"type": "tanh"}
    if isinstance(m, nn.Sigmoid):
        return {"type": "sigmoid"}
    if isinstance(m, nn.Softplus):
        if m.beta != 1:
            raise unsupported(f"Softplus(beta={m.beta}) is not supported (only beta = 1)")
        return {"type": "softplus"}
    if isinstance(m, nn.Identity):
        return {"type": "identity"}
    if isinstance(m, nn.Dropout):
        if m.training and m.p > 0:
            raise unsupported("Dropout in training mode is random; call module.eval() (dropout is then the identity)")
        return {"type": "identity"}
    children = list(m.named_children())
    if isinstance(m, nn.Sequential) or (children and not _has_own_parameters(m)):
        return {"type": "sequential", "name": name, "layers": _layers(nn, children, path)}
    raise unsupported(f"{kind} is not a supported layer")


def _has_own_parameters(m: Any) -> bool:
    return any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False))


def _layers(nn: Any, children: Sequence[Tuple[str, Any]], prefix: str) -> List[Dict[str, Any]]:
    return [_layer(nn, child, name, f"{prefix}.{name}" if prefix else name) for name, child in children]


def from_module(
    module: Any,
    example_input_shape: Sequence[int],
    *,
    check: bool = True,
    name: Optional[str] = None,
) -> Converted:
    """The network description and float64 ``state_dict`` of ``module`` for inputs of shape
    ``example_input_shape`` (one example, without the batch dimension: ``[C, H, W]`` or ``[d]``).

    Batch norm runs on the batch's statistics when ``module.training``, else on its running statistics. With
    ``check`` (default), the module in float64 and the converted network must agree on a seeded random batch
    of 3 examples to 1e-9 relative to the outputs' scale.

    Raises :class:`UnsupportedLayerError` (an :class:`imreg.ImregError`) naming the first layer it cannot
    express, and :class:`ConversionError` when the outputs differ.
    """
    torch = _torch()
    nn = torch.nn
    if not isinstance(module, nn.Module):
        raise UnsupportedLayerError("", type(module).__name__, "not a torch.nn.Module")
    shape = [int(d) for d in example_input_shape]
    if not shape or any(d <= 0 for d in shape):
        e = _imreg.ImregError(f"example_input_shape: must be positive sizes [C, H, W] or [d], got {list(example_input_shape)}")
        e.field = "example_input_shape"
        raise e
    if isinstance(module, nn.Sequential) or not _has_own_parameters(module) and list(module.children()):
        layers = _layers(nn, list(module.named_children()), "")
    else:
        layers = [_layer(nn, module, "0", "")]
    spec: Dict[str, Any] = {
        "name": name or type(module).__name__,
        "input": shape,
        "batch_norm": "train" if module.training else "eval",
        "layers": layers,
    }
    state = {
        k: v.detach().cpu().to(torch.float64).numpy().copy()
        for k, v in module.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    converted = Converted(spec=spec, state_dict=state)
    if check:
        _check(torch, module, converted)
    return converted


def _check(torch: Any, module: Any, c: Converted) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn((3, *c.spec["input"]), generator=g, dtype=torch.float64)
    reference = _copy_f64(torch, module)
    with torch.no_grad():
        out = reference(x)
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        raise ConversionError(f"module: its output must be a batch × outputs tensor, got {getattr(out, 'shape', type(out))}")
    want = out.numpy()
    m = Model.network(c.spec, x.numpy(), np.zeros(want.shape), loss="half_mse")
    theta = m.theta_from_state_dict(c.state_dict)
    got = m._inner.outputs(theta, None)
    scale = max(1.0, float(np.abs(want).max()))
    err = float(np.abs(got - want).max())
    if not err <= 1e-9 * scale:
        raise ConversionError(
            f"module: the converted network's outputs differ from the module's by {err:.3e} (scale {scale:.3e}); "
            "does its forward run the children in registration order?"
        )


def _copy_f64(torch: Any, module: Any) -> Any:
    import copy

    m = copy.deepcopy(module).to(torch.float64)
    m.train(module.training)
    return m


def loss_name(criterion: Any) -> str:
    """imreg's loss for a PyTorch criterion: ``CrossEntropyLoss()`` → ``cross_entropy`` (with
    ``label_smoothing``), ``MSELoss()`` → ``mse``, ``BCEWithLogitsLoss()`` → ``logistic``; a string is returned
    as it is."""
    if isinstance(criterion, str):
        return criterion
    nn = _torch().nn
    kind = type(criterion).__name__
    if getattr(criterion, "reduction", "mean") != "mean":
        raise UnsupportedLayerError("criterion", kind, f"reduction={criterion.reduction!r} is not supported (only 'mean')")
    if isinstance(criterion, nn.CrossEntropyLoss):
        if criterion.weight is not None or criterion.ignore_index != -100:
            raise UnsupportedLayerError("criterion", kind, "class weights and ignore_index are not supported")
        eps = float(criterion.label_smoothing)
        return "cross_entropy" if eps == 0 else f"cross_entropy(label_smoothing={eps!r})"
    if isinstance(criterion, nn.MSELoss):
        return "mse"
    if isinstance(criterion, nn.BCEWithLogitsLoss):
        if criterion.weight is not None or criterion.pos_weight is not None:
            raise UnsupportedLayerError("criterion", kind, "weight and pos_weight are not supported")
        return "logistic"
    raise UnsupportedLayerError("criterion", kind, f"{kind} is not a supported loss (CrossEntropyLoss, MSELoss, BCEWithLogitsLoss)")


def model(
    module: Any,
    x: Any,
    y: Any,
    criterion: Any = "cross_entropy",
    *,
    classes: Optional[int] = None,
    check: bool = True,
) -> Tuple[Model, np.ndarray]:
    """``(imreg.Model, θ)`` for ``module`` on inputs ``x`` (``N × C × H × W`` or ``N × d``; numpy or torch) and
    targets ``y`` under ``criterion`` (a PyTorch loss module or an imreg loss name) — PyHessian's
    ``hessian(model, criterion, data=(x, y))``."""
    xa = _numpy(x)
    ya = _numpy(y)
    c = from_module(module, xa.shape[1:], check=check)
    m = Model.network(c.spec, xa, ya, loss=loss_name(criterion), classes=classes)
    return m, m.theta_from_state_dict(c.state_dict)


def _numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    return np.asarray(a)
