"""Bad input raises imreg.ImregError (a ValueError) naming the field at fault; nothing panics."""
from __future__ import annotations

import numpy as np
import pytest

import imreg


def raises_field(field, fn, *args, **kwargs):
    with pytest.raises(imreg.ImregError) as e:
        fn(*args, **kwargs)
    assert isinstance(e.value, ValueError)
    assert e.value.field == field, str(e.value)
    assert field in str(e.value)
    return str(e.value)


def test_bad_arguments_name_their_field(small):
    m, theta = small
    raises_field("theta", m.loss, theta[:-1])
    raises_field("theta", m.gradient, np.full(m.p, np.nan))
    raises_field("v", m.hvp, theta, np.ones(m.p + 2))
    raises_field("batch", m.loss, theta, [0, 99])
    raises_field("batch", m.loss, theta, [-1])
    raises_field("batch", m.loss, theta, [])
    raises_field("batch_size", m.batch_sharpness, theta, 0)
    raises_field("batch_size", m.batch_sharpness, theta, m.n + 1)
    raises_field("mc_batches", m.batch_sharpness, theta, 2, mc_batches=1)
    raises_field("mc_rel_se", m.mini_batch_sharpness, theta, 2, mc_rel_se=-1.0)
    raises_field("method", m.trace, theta, method="magic")
    raises_field("top", m.eigenvalues, theta, 0, 0)
    raises_field("tol", m.eigenvalues, theta, tol=float("nan"))
    raises_field("stop", m.eigenvalues, theta, stop="sometimes")
    raises_field("sigma", m.density, theta, sigma=0.0)
    raises_field("theta", m.state_dict, theta[:3])
    # Not arrays at all: named, not converted (a scalar is not a 1-element θ, None is not NaN).
    assert "None" in raises_field("theta", m.loss, None)
    assert "shape ()" in raises_field("theta", m.gradient, 1.0)


def test_bad_models_and_data_name_their_field():
    x = np.zeros((4, 1, 5, 5))
    raises_field("model.preset", imreg.Model.network, "no-such-net", x, np.array([0, 1, 0, 1]))
    msg = raises_field("model.input_shape", imreg.Model.network, "cnn-relu", x.reshape(4, -1), [0, 1, 0, 1], input_shape=[1, 6, 6])
    assert "25" in msg
    raises_field("y", imreg.Model.network, "cnn-relu", x, np.array([0, 1, 0]))
    raises_field("y", imreg.Model.network, "cnn-relu", x, np.array([0, 1, 0, 5]), classes=3)
    raises_field("model", imreg.Model.from_config, {"kind": "no_such_kind"}, x.reshape(4, -1), np.zeros(4))
    raises_field("x", imreg.Model.from_config, {"kind": "linear_regression"})
    assert "int" in raises_field("model", imreg.Model.from_config, 5)
    bad_layer = {"input": [1, 5, 5], "layers": [{"type": "conv2d", "out_channels": 2, "kernel_size": 9}]}
    msg = raises_field("spec", imreg.Model.network, bad_layer, x, [0, 1, 0, 1])
    assert "layer 0" in msg and "kernel" in msg


def test_state_dicts_are_loaded_strictly_by_name_and_shape(small, tmp_path):
    m, theta = small
    sd = dict(m.state_dict(theta))
    sd["0.weight"] = sd["0.weight"][:1]
    raises_field("state_dict", m.theta_from_state_dict, sd)
    sd = dict(m.state_dict(theta))
    del sd["4.bias"]
    assert "4.bias" in raises_field("state_dict", m.theta_from_state_dict, sd)
    raises_field("path", m.load_weights, tmp_path / "missing.safetensors")


def test_bad_verify_selection_names_only():
    raises_field("only", imreg.verify, ["no-such-topic"])
