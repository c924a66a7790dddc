//! Oracles shared by the model tests.
#![allow(dead_code)]
use imreg_objective::{rng, Batch, Objective};
use nalgebra::DMatrix;

/// Central-difference weights of the 8th-order first-derivative stencil on `−4h … 4h` (`k = 1..=4`).
/// The stencil is exact for polynomials of degree ≤ 8 (so for every polynomial model here: the deep linear
/// nets of depth ≤ 4 have losses of degree ≤ 8 in θ), and its truncation error is `O(h⁸)` otherwise.
const W8: [f64; 4] = [4.0 / 5.0, -1.0 / 5.0, 4.0 / 105.0, -1.0 / 280.0];

/// `d/ds f(s)` at `s = 0` for a vector-valued `f`, by the 8th-order central stencil with step `h`.
pub fn stencil(f: &dyn Fn(f64) -> Vec<f64>, h: f64) -> Vec<f64> {
    let mut out: Option<Vec<f64>> = None;
    for (k, w) in W8.iter().enumerate() {
        let s = (k + 1) as f64 * h;
        let (p, m) = (f(s), f(-s));
        let o = out.get_or_insert_with(|| vec![0.0; p.len()]);
        for ((o, a), b) in o.iter_mut().zip(&p).zip(&m) {
            *o += w * (a - b) / h;
        }
    }
    out.unwrap_or_default()
}

/// Step of the stencil: small enough for `O(h⁸)` truncation on the non-polynomial logistic loss
/// (`(h · |xᵀd|)⁸ ≈ (0.005 · 4)⁸ ≈ 3e-14` for the random directions used), large enough that rounding
/// `≈ 1e-16 · |f| / h` stays near 2e-14 relative. (At h = 0.02 the logistic third order was off by 4e-10:
/// truncation, not a bug; it scales as h⁸.)
pub const H: f64 = 0.005;

pub fn axpy(theta: &[f64], s: f64, d: &[f64]) -> Vec<f64> {
    theta.iter().zip(d).map(|(t, x)| t + s * x).collect()
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// `‖a − b‖ / max(‖b‖, floor)`.
pub fn rel(a: &[f64], b: &[f64], floor: f64) -> f64 {
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    norm(&d) / norm(b).max(floor)
}

pub fn randn(seed: u64, stream: u64, n: usize) -> Vec<f64> {
    rng::normal_vec(&mut rng::stream(seed, stream), n)
}

/// The dense Hessian from stencil differences of the gradient along the unit vectors (symmetrized).
pub fn fd_hessian(obj: &dyn Objective, theta: &[f64], batch: Batch<'_>) -> DMatrix<f64> {
    let p = obj.dim();
    let mut h = DMatrix::zeros(p, p);
    for j in 0..p {
        let mut e = vec![0.0; p];
        e[j] = 1.0;
        let col = stencil(&|s| obj.grad(&axpy(theta, s, &e), batch).unwrap(), H);
        for i in 0..p {
            h[(i, j)] = col[i];
        }
    }
    (&h + h.transpose()) * 0.5
}

/// Largest relative error of the gradient, HVP, dense Hessian and third-order derivative of `obj` at
/// `theta` on `batch`, each against stencil differences of the next-lower derivative (in random directions)
/// or, for the Hessian, against `dense` when given. Panics with the failing quantity if one exceeds `tol`.
pub fn assert_derivatives(
    obj: &dyn Objective,
    theta: &[f64],
    batch: Batch<'_>,
    dense: Option<&DMatrix<f64>>,
    seed: u64,
    tol: f64,
) {
    let p = obj.dim();
    let g = obj.grad(theta, batch).unwrap();
    let l = obj.loss(theta, batch).unwrap();
    let mut gg = vec![0.0; p];
    assert_eq!(
        obj.loss_grad(theta, batch, &mut gg).unwrap(),
        l,
        "loss_grad's loss = loss"
    );
    for k in 0..3 {
        let d = randn(seed, 100 + k, p);
        // gradient: gᵀd vs d/ds C(θ + s d), relative to ‖g‖‖d‖ (the scale of gᵀd)
        let fd = stencil(&|s| vec![obj.loss(&axpy(theta, s, &d), batch).unwrap()], H)[0];
        let err = (dot(&g, &d) - fd).abs() / (norm(&g) * norm(&d)).max(1e-300);
        assert!(
            err <= tol,
            "{}: gradient vs stencil: rel err {err:.3e}",
            obj.name()
        );
        // HVP: H d vs d/ds ∇C(θ + s d)
        let hv = obj.hvp_vec(theta, batch, &d).unwrap();
        let fd = stencil(&|s| obj.grad(&axpy(theta, s, &d), batch).unwrap(), H);
        let err = rel(&hv, &fd, 1e-12 * norm(&g).max(1.0));
        assert!(
            err <= tol,
            "{}: HVP vs stencil of the gradient: rel err {err:.3e}",
            obj.name()
        );
        // third order: T3[u, d] vs d/ds H(θ + s u) d
        let u = randn(seed, 200 + k, p);
        let mut t3 = vec![0.0; p];
        obj.third_order(theta, batch, &u, &d, &mut t3).unwrap();
        let fd = stencil(&|s| obj.hvp_vec(&axpy(theta, s, &u), batch, &d).unwrap(), H);
        let scale = norm(&hv).max(1.0);
        let err = rel(&t3, &fd, 1e-12 * scale);
        assert!(
            err <= tol,
            "{}: third order vs stencil of the HVP: rel err {err:.3e}",
            obj.name()
        );
        let mut t3s = vec![0.0; p];
        obj.third_order(theta, batch, &d, &u, &mut t3s).unwrap();
        assert!(
            rel(&t3s, &t3, 1e-12 * scale) <= 1e-12,
            "{}: T3 symmetric in (u, v)",
            obj.name()
        );
    }
    // HVP = dense Hessian × v, dense from stencil differences and (if given) a closed form
    let h_fd = fd_hessian(obj, theta, batch);
    let v = randn(seed, 300, p);
    let hv = obj.hvp_vec(theta, batch, &v).unwrap();
    let vd = nalgebra::DVector::from_column_slice(&v);
    let fd_hv = &h_fd * &vd;
    let err = rel(&hv, fd_hv.as_slice(), 1e-12);
    assert!(
        err <= tol,
        "{}: HVP vs stencil dense Hessian × v: rel err {err:.3e}",
        obj.name()
    );
    if let Some(h) = dense {
        let hv_cf = h * &vd;
        let err = rel(&hv, hv_cf.as_slice(), 1e-12);
        assert!(
            err <= tol,
            "{}: HVP vs closed-form Hessian × v: rel err {err:.3e}",
            obj.name()
        );
    }
}

/// Per-example gradients: their mean is the batch gradient (to rounding), each row matches a one-example
/// `loss_grad` call, any chunk size gives the same rows.
pub fn assert_per_example(obj: &dyn Objective, theta: &[f64], batch: Batch<'_>) {
    let n = obj.n_examples();
    let nb = batch.len(n);
    let p = obj.dim();
    let g = obj.grad(theta, batch).unwrap();
    for chunk in [1, 3, 1000] {
        let mut sum = vec![0.0; p];
        let mut seen = 0;
        obj.per_example_grads(theta, batch, chunk, &mut |start, rows| {
            assert_eq!(start, seen);
            assert!(rows.nrows() <= chunk);
            for (r, row) in rows.outer_iter().enumerate() {
                let i = batch.index(start + r);
                let one = obj.grad(theta, Batch::Indices(&[i])).unwrap();
                let row = row.to_vec();
                assert!(
                    rel(&row, &one, 1e-12) <= 1e-13,
                    "{}: per-example row {i} vs one-at-a-time",
                    obj.name()
                );
                sum.iter_mut().zip(&row).for_each(|(s, x)| *s += x);
            }
            seen += rows.nrows();
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, nb);
        let ng: Vec<f64> = g.iter().map(|x| x * nb as f64).collect();
        // A sum of nb terms in a different order: rounding ≈ nb · 1e-16 relative to the terms' scale.
        assert!(
            rel(&sum, &ng, 1e-12) <= 1e-12,
            "{}: Σ per-example = |B| × batch gradient",
            obj.name()
        );
    }
}
