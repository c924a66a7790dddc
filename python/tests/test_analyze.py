"""The Python calls give `imreg analyze`'s numbers (the same library calls on the same inputs; the extension
is compiled separately from the binary, and the two agree to ≤ 1e-12 relative, in practice to a few ulps) and
PyTorch's float64 reference numbers on the repository's cnn-relu case."""
from __future__ import annotations

import numpy as np
import pytest

import imreg


def same(a, b, rel=1e-12):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= rel * np.maximum(np.abs(a), np.abs(b))))


@pytest.fixture(scope="module")
def cnn(cnn_case):
    m = imreg.Model.network("cnn-relu", cnn_case["x"], cnn_case["labels"], classes=4)
    theta = m.load_weights(cnn_case["weights"])
    return m, theta


def test_same_numbers_as_imreg_analyze(cnn, cnn_analysis):
    m, theta = cnn
    a = cnn_analysis
    assert (m.p, m.n) == (a["p"], a["n"])
    assert same(m.loss(theta), a["loss"])
    assert np.linalg.norm(m.gradient(theta)) == pytest.approx(a["grad_norm"], rel=1e-14)
    e = m.eigenvalues(theta, top=3, bottom=3)
    assert e.method == a["eigen_method"] == "lanczos" and e.iterations == a["eigen_iterations"]
    assert same(e.top, a["hessian_top"])
    assert same(e.bottom, a["hessian_bottom"])
    t = m.trace(theta, exact_max_p=20000)
    assert t.is_exact and same(t.value, a["hessian_trace"]["value"])
    noise = m.gradient_noise(theta)
    assert same(noise.trace_k.value, a["trace_k"]["value"])
    assert same(noise.trace_f.value, a["trace_f"]["value"])
    assert same(m.lambda_k1(theta).value, a["lambda_k1"]["value"])
    bs = m.batch_sharpness(theta, 2)
    assert same(bs.mean_of_ratios.value, a["batch_sharpness"]["value"])
    assert same(bs.ratio_of_means.value, a["batch_sharpness_inside"]["value"])
    assert bs.mean_of_ratios.samples == a["batch_sharpness"]["samples"] == 28


def test_pytorch_reference_numbers(cnn, cnn_case):
    m, theta = cnn
    ref = cnn_case["ref"]
    assert m.p == ref["n_params"]
    assert m.loss(theta) == pytest.approx(ref["loss"], rel=1e-12)
    g = m.gradient(theta)
    assert np.linalg.norm(g) == pytest.approx(ref["grad_norm"], rel=1e-12)
    for k, v in ref["grad_entries"].items():
        assert g[int(k)] == pytest.approx(v, rel=1e-10, abs=1e-13)
    v = np.sin(0.5 * np.arange(m.p) + 1.0)
    hv = m.hvp(theta, v)
    assert v @ hv == pytest.approx(ref["vhv"], rel=1e-11)
    for k, want in ref["hvp_entries"].items():
        assert hv[int(k)] == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert np.allclose(m.eigenvalues(theta, top=3).top, ref["lambda_top"], rtol=1e-10)
    bs = m.batch_sharpness(theta, ref["batch_size"])
    assert bs.mean_of_ratios.value == pytest.approx(ref["batch_sharpness"], rel=1e-11)
    assert bs.ratio_of_means.value == pytest.approx(ref["batch_sharpness_inside"], rel=1e-11)
    norms = np.linalg.norm(m.per_example_gradients(theta), axis=1)
    assert np.allclose(norms, ref["per_example_grad_norms"], rtol=1e-11)
