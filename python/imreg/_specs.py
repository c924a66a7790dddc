"""Network descriptions: the presets, spec dicts and spec files, validated by imreg's compiler."""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Mapping, NamedTuple, Sequence, Tuple, Union

from . import _imreg


class Preset(NamedTuple):
    """A preset network: its name, what it is, and the input shape and class count of its source."""

    name: str
    description: str
    input: Tuple[int, ...]
    classes: int


def presets() -> List[Preset]:
    """Every preset network (``cnn-relu``, ``resnet20``, ``vgg-small``, …)."""
    return [Preset(n, d, tuple(i), c) for n, d, i, c in _imreg.presets()]


def preset_spec(name: str, input: Sequence[int], classes: int) -> Dict[str, Any]:
    """The description (``NetworkSpec`` as a dict) of preset ``name`` for inputs of shape ``input`` (``[C, H,
    W]`` or ``[d]``) and ``classes`` outputs."""
    return json.loads(_imreg.preset_spec(name, [int(d) for d in input], int(classes)))


def parse_spec(spec: Union[Mapping[str, Any], str, "os.PathLike[str]"]) -> Tuple[Dict[str, Any], List[Tuple[str, Tuple[int, ...]]]]:
    """A description (a dict, or a ``.toml``/``.json`` file) checked by imreg's compiler, with its parameter
    names and shapes in θ order. Errors name the layer and the field."""
    if isinstance(spec, Mapping):
        text, fmt = json.dumps(spec), "json"
    else:
        path = os.fspath(spec)
        fmt = "toml" if path.endswith(".toml") else "json" if path.endswith(".json") else None
        if fmt is None:
            e = _imreg.ImregError(f"spec: {path}: unknown extension: use .toml or .json")
            e.field = "spec"
            raise e
        with open(path, encoding="utf-8") as f:
            text = f.read()
    checked, params = _imreg.parse_spec(text, fmt)
    return json.loads(checked), [(n, tuple(s)) for n, s in params]


def network_spec(spec: Union[Mapping[str, Any], str, "os.PathLike[str]"]) -> Dict[str, Any]:
    """:func:`parse_spec` without the parameter list."""
    return parse_spec(spec)[0]
