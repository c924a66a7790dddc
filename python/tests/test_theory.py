"""The theory bindings against closed forms and independent numpy computations on small problems: gradient
flow and the modified flows of quadratics (``e^{−tA}θ₀``), the modified losses by their formulas, exact SGD
expectations and moments by enumerating every batch sequence in numpy, the scalar network's closed forms
evaluated directly and against DOP853 on the same model, and training runs against a numpy GD loop."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import imreg


def linreg(x, y):
    """``C = (1/N) Σ_i ½ (x_iᵀθ − y_i)²`` (no bias), with its per-example pieces in numpy."""
    return imreg.Model.from_config({"kind": "linear_regression", "bias": False}, x, y)


@pytest.fixture()
def ls4():
    """Least squares on 4 examples in R², and the numpy gradient of a batch."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 2))
    y = rng.standard_normal(4)

    def grad(theta, batch):
        xb, yb = x[list(batch)], y[list(batch)]
        return xb.T @ (xb @ theta - yb) / len(batch)

    return linreg(x, y), x, y, grad


def expm_sym(A, t):
    w, V = np.linalg.eigh(A)
    return V @ np.diag(np.exp(-w * t)) @ V.T


# ---- flows ---------------------------------------------------------------------------------------------------


def test_gradient_flow_of_a_quadratic_is_the_matrix_exponential(ls4):
    m, x, y, _ = ls4
    A, b = x.T @ x / 4, x.T @ y / 4  # ∇C = Aθ − b
    star = np.linalg.solve(A, b)
    theta0 = np.array([1.0, -2.0])
    times = np.linspace(0.0, 3.0, 7)
    f = imreg.gradient_flow(m, theta0, times, rtol=1e-12, atol=1e-14)
    exact = np.array([star + expm_sym(A, t) @ (theta0 - star) for t in times])
    assert f.states.shape == (7, 2) and f.accepted > 0
    assert np.max(np.abs(f.states - exact)) <= 1e-10


def test_modified_gd_flow_of_a_diagonal_quadratic():
    h = np.array([1.0, 3.0])
    m = imreg.Model.from_config({"kind": "quadratic", "h": h.tolist()})
    lr, theta0, times = 0.2, np.array([1.0, -1.0]), np.array([0.0, 0.5, 2.0])
    f = imreg.flow(m, theta0, times, kind="modified_gd", lr=lr, rtol=1e-12, atol=1e-14)
    # C_GD = ½ Σ h θ² + (ε/4) Σ h² θ²: θ̇ = −(h + ε h²/2) θ
    exact = theta0 * np.exp(-np.outer(times, h + lr * h**2 / 2))
    assert np.max(np.abs(f.states - exact)) <= 1e-11


def test_sgd_flow_of_least_squares_is_linear_and_matches_its_exponential(ls4):
    m, x, y, _ = ls4
    lr, batches = 0.1, [[0, 1], [2, 3]]
    # θ̇ = −(M θ − c), M = H̄ + (ε/2m) Σ Ĥ_k², c = b̄ + (ε/2m) Σ Ĥ_k b̂_k (per-batch Ĥ_k = X_kᵀX_k/|B|)
    Hs = [x[b].T @ x[b] / 2 for b in batches]
    bs = [x[b].T @ y[b] / 2 for b in batches]
    M = sum(Hs) / 2 + lr / 4 * sum(H @ H for H in Hs)
    c = sum(bs) / 2 + lr / 4 * sum(H @ v for H, v in zip(Hs, bs))
    star = np.linalg.solve(M, c)
    theta0, times = np.array([0.5, 0.5]), np.array([0.0, 1.0, 4.0])
    f = imreg.flow(m, theta0, times, kind="sgd", lr=lr, batches=batches, rtol=1e-12, atol=1e-14)
    exact = np.array([star + expm_sym(M, t) @ (theta0 - star) for t in times])
    assert np.max(np.abs(f.states - exact)) <= 1e-10
    # consecutive batches of 2 are the same partition
    g = imreg.flow(m, theta0, times, kind="sgd", lr=lr, batch_size=2, rtol=1e-12, atol=1e-14)
    assert np.array_equal(f.states, g.states)


def linear_flow_solution(rhs, theta0, times):
    """The exact solution of an affine flow ``θ̇ = rhs(θ) = −Mθ + c`` (``M`` read off ``rhs``, any square
    ``M`` with a full set of eigenvectors): ``θ* + V e^{−Λt} V⁻¹ (θ₀ − θ*)``."""
    d = theta0.size
    c = rhs(np.zeros(d))
    M = -np.array([rhs(e) - c for e in np.eye(d)]).T
    star = np.linalg.solve(M, c)
    w, V = np.linalg.eig(M)
    return np.array([star + (V @ np.diag(np.exp(-w * t)) @ np.linalg.solve(V, theta0 - star)).real for t in times])


def test_second_order_fixed_order_and_expected_flows_of_least_squares(ls4):
    m, x, y, grad = ls4
    lr, theta0, times = 0.1, np.array([0.5, -0.5]), np.array([0.0, 1.0, 3.0])
    A = [np.outer(v, v) for v in x]  # ∇²ℓ_i
    H = sum(A) / 4
    ode = dict(rtol=1e-12, atol=1e-14)
    # GD's second-order modified equation (∇³C = 0): θ̇ = −g − (ε/2) H g − (ε²/3) H² g
    second = lambda th: -(np.eye(2) + lr / 2 * H + lr**2 / 3 * H @ H) @ grad(th, range(4))  # noqa: E731
    f = imreg.flow(m, theta0, times, kind="gd_second_order", lr=lr, **ode)
    assert np.max(np.abs(f.states - linear_flow_solution(second, theta0, times))) <= 1e-10
    # one batch order: θ̇ = −ḡ + (ε/m) Σ_j Ĥ_j Σ_{k<j} ĝ_k − (mε/2) H̄ ḡ
    batches = [[2, 0], [3, 1]]
    Hk = [sum(A[i] for i in b) / 2 for b in batches]

    def fixed(th):
        gs = [grad(th, b) for b in batches]
        gbar = sum(gs) / 2
        xi = Hk[1] @ gs[0]
        return -gbar + lr / 2 * xi - lr * (sum(Hk) / 2) @ gbar

    f = imreg.flow(m, theta0, times, kind="fixed_order", lr=lr, batches=batches, **ode)
    assert np.max(np.abs(f.states - linear_flow_solution(fixed, theta0, times))) <= 1e-10
    # random partitions into B = 2: the gradient of C + (ε/4)‖g‖² + ((N−B)/(N−1)) (ε/4B) Γ,
    # ∇Γ = (2/N) Σ_i H_i g_i − 2 H g
    def expected(th):
        g = grad(th, range(4))
        grad_gamma = 2 * sum(A[i] @ grad(th, [i]) for i in range(4)) / 4 - 2 * H @ g
        return -(g + lr / 2 * H @ g + (2 / 3) * lr / 8 * grad_gamma)

    f = imreg.flow(m, theta0, times, kind="sgd_expected", lr=lr, batch_size=2, **ode)
    assert np.max(np.abs(f.states - linear_flow_solution(expected, theta0, times))) <= 1e-10


def test_modified_losses_match_their_formulas(ls4):
    m, x, y, grad = ls4
    theta, lr = np.array([0.3, -0.7]), 0.05
    C = np.mean((x @ theta - y) ** 2) / 2
    g = grad(theta, range(4))
    assert imreg.modified_loss(m, theta, lr) == pytest.approx(C + lr / 4 * g @ g, rel=1e-14)
    sgd = np.mean([np.mean((x[b] @ theta - y[b]) ** 2) / 2 + lr / 4 * grad(theta, b) @ grad(theta, b) for b in ([0, 1], [2, 3])])
    assert imreg.modified_loss(m, theta, lr, kind="sgd", batch_size=2) == pytest.approx(sgd, rel=1e-14)
    gamma = np.mean([np.sum((grad(theta, [i]) - g) ** 2) for i in range(4)])
    expected = C + lr / 4 * g @ g + (4 - 2) / (4 - 1) * lr / (4 * 2) * gamma
    assert imreg.modified_loss(m, theta, lr, kind="sgd_expected", batch_size=2) == pytest.approx(expected, rel=1e-13)


def test_flow_bad_input_names_the_field(ls4):
    m = ls4[0]
    with pytest.raises(imreg.ImregError) as e:
        imreg.flow(m, [0.0, 0.0], [0.0, 1.0], kind="modified_gd")
    assert e.value.field == "lr"
    with pytest.raises(imreg.ImregError) as e:
        imreg.flow(m, [0.0, 0.0], [0.0, 1.0], kind="sideways")
    assert e.value.field == "kind"
    with pytest.raises(imreg.ImregError) as e:
        imreg.flow(m, [0.0, 0.0, 0.0], [0.0, 1.0])
    assert e.value.field == "theta0"
    with pytest.raises(imreg.ImregError) as e:
        imreg.flow(m, [0.0, 0.0], [0.0, 1.0], kind="sgd", lr=0.1, batch_size=3)
    assert e.value.field == "batch_size"
    with pytest.raises(imreg.ImregError) as e:
        imreg.flow(m, [0.0, 0.0], [0.0, 1.0], kind="sgd", lr=0.1, batches=[[0, 1], [1, 2]])
    assert e.value.field == "batches"
    with pytest.raises(imreg.ImregError) as e:
        imreg.flow(m, [0.0, 0.0], [0.0, 1.0], kind="modified_gd", lr=-1.0)
    assert e.value.field == "lr"


# ---- exact SGD expectations ------------------------------------------------------------------------------------


def sgd_epochs(theta, lr, sequence, grad):
    for b in sequence:
        theta = theta - lr * grad(theta, b)
    return theta


def test_expectation_over_orders_partitions_and_draws_by_enumeration(ls4):
    m, _, _, grad = ls4
    theta0, lr = np.array([1.0, -0.5]), 0.3
    blocks = [(0, 1), (2, 3)]
    # orders: 2! orders of the fixed partition per epoch, two epochs
    seqs = [a + b for a in itertools.permutations(blocks) for b in itertools.permutations(blocks)]
    want = np.mean([sgd_epochs(theta0, lr, s, grad) for s in seqs], axis=0)
    e = imreg.sgd_expectation(m, theta0, lr, batch_size=2, epochs=2)
    assert e.sequences == 4 and np.max(np.abs(e.mean - want)) <= 1e-14
    # partitions: every permutation of the 4 examples cut into blocks of 2 (ordered partitions, each 4 times)
    seqs = [(p[:2], p[2:]) for p in itertools.permutations(range(4))]
    want = np.mean([sgd_epochs(theta0, lr, s, grad) for s in seqs], axis=0)
    e = imreg.sgd_expectation(m, theta0, lr, batch_size=2, averaging="partitions")
    assert e.sequences == 6 and np.max(np.abs(e.mean - want)) <= 1e-14
    # with replacement: m^m = 4 draws of the partition's batches
    seqs = list(itertools.product(blocks, repeat=2))
    want = np.mean([sgd_epochs(theta0, lr, s, grad) for s in seqs], axis=0)
    e = imreg.sgd_expectation(m, theta0, lr, batch_size=2, averaging="with_replacement")
    assert e.sequences == 4 and np.max(np.abs(e.mean - want)) <= 1e-14


def test_expectation_refuses_too_many_sequences_and_bad_averaging(ls4):
    m = ls4[0]
    with pytest.raises(imreg.ImregError) as e:
        imreg.sgd_expectation(m, [0.0, 0.0], 0.1, batch_size=1, epochs=3, max_sequences=100)
    assert e.value.field == "epochs"
    with pytest.raises(imreg.ImregError) as e:
        imreg.sgd_expectation(m, [0.0, 0.0], 0.1, batch_size=1, averaging="sometimes")
    assert e.value.field == "averaging"
    with pytest.raises(imreg.ImregError) as e:
        imreg.sgd_expectation(m, [0.0, 0.0], 0.0, batch_size=1)
    assert e.value.field == "lr"


def test_moments_with_and_without_replacement_by_enumeration():
    rng = np.random.default_rng(5)
    n, d, b, lr = 4, 2, 2, 0.2
    a = rng.standard_normal((n, d, d))
    a = (a + a.transpose(0, 2, 1)) / 2 + 2 * np.eye(d)
    bv = rng.standard_normal((n, d))
    theta0 = np.array([0.7, -0.3])

    def step(theta, batch):
        H = a[list(batch)].mean(axis=0)
        return theta - lr * (H @ theta + bv[list(batch)].mean(axis=0))

    def moments(paths):
        P = np.array(paths)  # sequences × (k+1) × d
        mean = P.mean(axis=0)
        cov = np.einsum("sti,stj->tij", P - mean, P - mean) / len(P)
        return mean, cov

    def path(batches):
        out = [theta0]
        for B in batches:
            out.append(step(out[-1], B))
        return out

    k = n // b
    wo = moments([path([p[i * b : (i + 1) * b] for i in range(k)]) for p in itertools.permutations(range(n))])
    subsets = list(itertools.combinations(range(n), b))
    wr = moments([path(s) for s in itertools.product(subsets, repeat=k)])
    for process, (mean, cov) in (("without_replacement", wo), ("with_replacement", wr)):
        got = imreg.sgd_moments(a, bv, theta0, lr, b, process=process)
        assert got.mean.shape == (k + 1, d) and got.cov.shape == (k + 1, d, d)
        assert np.max(np.abs(got.mean - mean)) <= 1e-13, process
        assert np.max(np.abs(got.cov - cov)) <= 1e-13, process
    # without replacement an epoch sees every example once: the end point has no variance for b = n
    full = imreg.sgd_moments(a, bv, theta0, lr, n)
    assert np.max(np.abs(full.cov[-1])) <= 1e-15
    with pytest.raises(imreg.ImregError) as e:
        imreg.sgd_moments(a, bv[:, :1], theta0, lr, b)
    assert e.value.field == "b"
    with pytest.raises(imreg.ImregError) as e:
        imreg.sgd_moments(a, bv, theta0, lr, b, process="sideways")
    assert e.value.field == "process"


# ---- the scalar network --------------------------------------------------------------------------------------


def test_scalar_net_closed_forms_match_numpy():
    a, b, phi, s2 = np.array([1.2, -0.4, 0.3]), np.array([0.5, 0.9, -0.2]), 0.8, 1.7
    net = imreg.ScalarNet(a, b, phi, s2)
    eps = a @ b - phi
    assert net.loss() == pytest.approx(s2 / 2 * eps**2, rel=1e-15)
    assert np.allclose(net.gradient(), s2 * eps * np.concatenate([b, a]), rtol=1e-15, atol=0)
    v = np.concatenate([b, a])
    J = np.block([[np.zeros((3, 3)), np.eye(3)], [np.eye(3), np.zeros((3, 3))]])
    H = s2 * (np.outer(v, v) + eps * J)
    assert np.allclose(net.hessian(), H, rtol=1e-15, atol=1e-15)
    assert np.allclose(net.hessian_spectrum(), np.linalg.eigvalsh(H), rtol=1e-12, atol=1e-13)
    assert net.sharpness() == pytest.approx(np.linalg.eigvalsh(H)[-1], rel=1e-12)
    inv = net.invariants()
    assert inv["imbalance"] == pytest.approx(a @ a - b @ b, rel=1e-15)
    assert inv["p"] == pytest.approx(np.sum((a + b) ** 2) * np.sum((a - b) ** 2), rel=1e-14)
    nxt = net.gd_step(0.1)
    assert np.allclose(np.concatenate([nxt.a, nxt.b]), np.concatenate([a, b]) - 0.1 * net.gradient(), rtol=1e-15)
    r = net.classify(0.1)
    assert r["eta_max_stable"] == pytest.approx(1 / (s2 * abs(phi)), rel=1e-15)
    assert r["lambda_gf"] == pytest.approx(np.sqrt(4 * phi**2 + inv["p"]), rel=1e-15)


def test_scalar_net_gradient_flow_closed_form_matches_dop853_on_the_model():
    a0, b0, phi = 1.5, 0.01, 1.0
    net = imreg.ScalarNet([a0], [b0], phi)
    times = np.array([0.0, 0.3, 1.0, 3.0])
    gf = net.gradient_flow(times)
    m = imreg.Model.from_config({"kind": "scalar_net", "k": 1, "phi": phi})
    f = imreg.gradient_flow(m, [a0, b0], times, rtol=1e-13, atol=1e-15)
    assert np.max(np.abs(f.states[:, 0] - gf["a"][:, 0])) <= 1e-10
    assert np.max(np.abs(f.states[:, 1] - gf["b"][:, 0])) <= 1e-10
    # GF conserves the imbalance and converges to norm λ_GF = √(4Φ² + Q₀²)
    assert np.allclose(gf["a"][:, 0] ** 2 - gf["b"][:, 0] ** 2, a0**2 - b0**2, rtol=1e-12)
    lim = gf["limit"]
    assert lim.a[0] ** 2 + lim.b[0] ** 2 == pytest.approx(gf["lambda_gf"], rel=1e-12)
    assert gf["lambda_gf"] == pytest.approx(np.sqrt(4 * phi**2 + (a0**2 - b0**2) ** 2), rel=1e-14)


def test_scalar_net_gd_matches_a_numpy_loop_and_is_flatter_than_gf():
    a0, b0, phi, lr = 1.5, 0.01, 1.0, 0.5
    net = imreg.ScalarNet([a0], [b0], phi)
    tr = net.gd_trajectory(lr, 50)
    a, b = a0, b0
    for t in range(51):
        assert tr["a"][t] == a and tr["b"][t] == b
        e = lr * (a * b - phi)
        a, b = a - e * b, b - e * a
    out = net.run_gd(lr)
    assert out["outcome"] == "converged"
    a, b = a0, b0
    while abs(a * b - phi) >= 1e-12:
        e = lr * (a * b - phi)
        a, b = a - e * b, b - e * a
    assert out["lambda_inf"] == pytest.approx(a * a + b * b, rel=1e-12)
    assert 2.0 <= out["lambda_inf"] < net.gradient_flow(np.array([0.0]))["lambda_gf"]
    assert out["lambda_inf"] <= 2 / lr
    small = net.small_lr(np.array([1e-4]))
    assert small["first_order"][0] == pytest.approx(net.run_gd(1e-4)["lambda_gd"], abs=1e-6)


def test_scalar_net_gd_outcomes_are_reported_not_raised():
    saddle = imreg.ScalarNet([1.0], [-1.0], 0.5).run_gd(0.1)  # a + b = 0 with Φ ≥ 0 leads to the saddle
    assert saddle["outcome"] == "saddle" and saddle["line"] == "a + b = 0"
    # η = 3 > 1/|Φ|: no minimum is stable, and from λ₀ ≈ 2.25 the iterates blow up
    blown = imreg.ScalarNet([1.5], [0.01], 1.0).run_gd(3.0, divergence_norm=1e6)
    assert blown["outcome"] == "diverged" and blown["lambda"] > 1e6
    a, b = 1.5, 0.01
    for _ in range(blown["steps"]):
        e = 3.0 * (a * b - 1.0)
        a, b = a - e * b, b - e * a
    assert a * a + b * b == blown["lambda"]


def test_scalar_net_bad_input_names_the_field():
    with pytest.raises(imreg.ImregError) as e:
        imreg.ScalarNet([1.0, 2.0], [1.0], 0.5)
    assert e.value.field == "b"
    with pytest.raises(imreg.ImregError) as e:
        imreg.ScalarNet([1.0], [1.0], 0.5).gd_step(-0.1)
    assert e.value.field == "lr"
    with pytest.raises(imreg.ImregError) as e:
        imreg.ScalarNet([1.0], [-1.0], 0.5).gradient_flow(np.array([0.0]))
    assert e.value.field == "a"


# ---- training runs -----------------------------------------------------------------------------------------


def test_gd_run_matches_numpy_and_reports_the_sharpness():
    h = np.array([1.0, 3.0])
    m = imreg.Model.from_config({"kind": "quadratic", "h": h.tolist()})
    theta0, lr = np.array([1.0, -2.0]), 0.25
    r = imreg.train(m, theta0, lr, 8, every=2, record_theta=True)
    t = np.array([0, 2, 4, 6, 8])
    assert np.array_equal(r.steps, t) and r.outcome == "completed"
    thetas = theta0 * (1 - lr * h) ** t[:, None]
    assert np.max(np.abs(r.thetas - thetas)) <= 1e-15
    assert np.allclose(r.loss, 0.5 * (thetas**2) @ h, rtol=1e-14)
    assert np.allclose(r.lambda_max, 3.0, rtol=1e-12) and np.all(r.lambda_max_residual <= 1e-10)


def test_gd_above_two_over_lr_diverges_as_an_outcome():
    m = imreg.Model.from_config({"kind": "quadratic", "h": [1.0, 3.0]})
    r = imreg.train(m, [1.0, 1.0], 0.9, 200, divergence_loss=1e6)  # 2/η ≈ 2.2 < λ_max = 3
    assert r.outcome == "diverged" and r.blowup[0] == "loss" and r.blowup[1] > 1e6
    # |1 − 0.9·3| = 1.7: ½·3·1.7^{2t} first exceeds 1e6 at t = 13
    assert r.diverged_step == 13


def test_sgd_run_series_are_reproducible_and_match_the_curvature_calls(small):
    m, theta = small
    kw = dict(sampler="reshuffling", batch_size=3, every=3, batch_sharpness=2, gradient_traces=True, seed=4)
    r = imreg.train(m, theta, 0.05, 9, **kw)
    again = imreg.train(m, theta, 0.05, 9, **kw)
    for f in ("loss", "lambda_max", "batch_sharpness", "trace_k", "theta"):
        assert np.array_equal(getattr(r, f), getattr(again, f)), f
    assert len(r.steps) == len(r.loss) == len(r.lambda_max) == len(r.batch_sharpness) == len(r.trace_k) == 4
    assert r.loss[0] == m.loss(theta)
    assert abs(r.lambda_max[0] - m.lambda_max(theta)) <= 1e-8 * abs(m.lambda_max(theta))
    noise = m.gradient_noise(theta)
    assert r.trace_k[0] == pytest.approx(noise.trace_k.value, rel=1e-12)
    assert r.trace_f[0] == pytest.approx(noise.trace_f.value, rel=1e-12)
    exact = m.batch_sharpness(theta, 2).mean_of_ratios.value  # C(7, 2) = 21 batches: exact
    assert abs(r.batch_sharpness[0] - exact) <= 4 * r.batch_sharpness_se[0] + 1e-12


def test_train_bad_input_names_the_field(small):
    m, theta = small
    for kw, field in (
        (dict(sampler="reshuffling"), "batch_size"),
        (dict(sampler="sometimes", batch_size=2), "sampler"),
        (dict(sampler="reshuffling", batch_size=99), "batch_size"),
        (dict(momentum=1.5), "momentum"),
        (dict(every=0), "every"),
        (dict(batch_sharpness=0), "batch_sharpness"),
    ):
        with pytest.raises(imreg.ImregError) as e:
            imreg.train(m, theta, 0.1, 3, **kw)
        assert e.value.field == field, kw
    with pytest.raises(imreg.ImregError) as e:
        imreg.train(m, theta, -0.1, 3)
    assert e.value.field == "lr"
    with pytest.raises(imreg.ImregError) as e:
        imreg.train(m, theta[:-1], 0.1, 3)
    assert e.value.field == "theta0"
