"""Per-layer Hessian blocks, the Hessian diagonal and ``λ_K¹`` on an index batch: against dense numpy
computations on a small CNN, and against ``imreg analyze --quantities blocks,diagonal`` on the cnn-relu case."""
from __future__ import annotations

import numpy as np
import pytest

import imreg
from conftest import analyze_json


def test_blocks_are_the_principal_blocks_of_the_dense_hessian(small):
    m, theta = small
    batch = [0, 2, 3, 6]
    H = m.hessian(theta, batch)
    blocks = m.blocks(theta, batch=batch)
    names = [b.name for b in blocks]
    assert names == sorted(set(n.rsplit(".", 1)[0] for n, _ in m.layout()), key=names.index)
    assert sum(b.len for b in blocks) == m.p and blocks[0].offset == 0
    for b in blocks:
        Hb = H[b.offset : b.offset + b.len, b.offset : b.offset + b.len]
        assert b.trace.is_exact and b.trace.value == pytest.approx(np.trace(Hb), rel=1e-12)
        assert b.lambda_max.value == pytest.approx(np.linalg.eigvalsh(Hb)[-1], rel=1e-10)
    assert sum(b.trace.value for b in blocks) == pytest.approx(np.trace(H), rel=1e-12)


def test_hessian_diagonal_exact_and_hutchinson(small):
    m, theta = small
    H = m.hessian(theta)
    d = m.hessian_diagonal(theta)
    assert d.is_exact and np.allclose(d.values, np.diag(H), rtol=1e-12, atol=1e-14)
    assert not np.any(d.std_errors)
    est = m.hessian_diagonal(theta, exact_max_p=0, probes=400, seed=2)
    assert est.probes == 400 and np.all(est.std_errors > 0)
    z = (est.values - np.diag(H)) / est.std_errors
    assert np.mean(np.abs(z) <= 4) >= 0.95  # an estimate: most entries within 4 standard errors
    with pytest.raises(imreg.ImregError) as e:
        m.hessian_diagonal(theta, probes=1)
    assert e.value.field == "probes"


def test_lambda_k1_on_a_batch_is_the_top_eigenvalue_of_its_gradient_covariance(small):
    m, theta = small
    for batch in ([1, 4, 5], None):
        G = m.per_example_gradients(theta, batch)
        C = G - G.mean(axis=0)
        K = C.T @ C / len(G)
        got = m.lambda_k1(theta, batch=batch)
        assert got.value == pytest.approx(np.linalg.eigvalsh(K)[-1], rel=1e-10)
        noise = m.gradient_noise(theta, batch)
        assert noise.trace_k.value == pytest.approx(np.trace(K), rel=1e-12)


def test_blocks_and_diagonal_match_imreg_analyze(cnn_case, tmp_path):
    x, y = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(x, cnn_case["x"].reshape(len(cnn_case["x"]), -1))
    np.save(y, cnn_case["labels"])
    a = analyze_json(
        [
            "--model", "network", "--preset", "cnn-relu", "--input-shape", "1,12,12", "--classes", "4",
            "--loss", "cross_entropy", "--params", str(cnn_case["weights"]), "--data", str(x), "--targets", str(y),
            "--quantities", "blocks,diagonal",
        ],
        tmp_path,
    )
    m = imreg.Model.network("cnn-relu", cnn_case["x"], cnn_case["labels"], classes=4)
    theta = m.load_weights(cnn_case["weights"])
    blocks = m.blocks(theta)
    assert [b.name for b in blocks] == [b["name"] for b in a["blocks"]]
    for b, r in zip(blocks, a["blocks"]):
        assert (b.offset, b.len) == (r["offset"], r["len"])
        assert b.trace.value == pytest.approx(r["trace"]["value"], rel=1e-12)
        assert b.lambda_max.value == pytest.approx(r["lambda_max"]["value"], rel=1e-12)
    d = m.hessian_diagonal(theta)
    s = a["diagonal"]
    assert d.is_exact == (s["estimator"] == "exact")
    assert d.values.sum() == pytest.approx(s["sum"], rel=1e-12, abs=1e-12)
    assert d.values.max() == pytest.approx(s["max"], rel=1e-12)
    assert d.values.min() == pytest.approx(s["min"], rel=1e-12)
