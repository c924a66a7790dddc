//! Gauss–Hermite quadrature for the standard normal, by the Golub–Welsch eigenvalue method.
//!
//! The monic probabilists' Hermite polynomials satisfy `He_{k+1}(x) = x He_k(x) − k He_{k−1}(x)`, so the
//! orthonormal recurrence has the symmetric Jacobi matrix `J` with zero diagonal and off-diagonal
//! `J_{k,k+1} = √k` (`k = 1, …, n−1`). The nodes are the eigenvalues of `J` and the weights are the squared
//! first components of the normalized eigenvectors (the zeroth moment of `N(0,1)` is 1). The `n`-point rule
//! integrates polynomials of degree ≤ `2n − 1` exactly against `N(0,1)`.
use crate::error::{Result, TaylorError};
use nalgebra::{DMatrix, SymmetricEigen};

/// The largest rule we build (the Jacobi eigenproblem is dense and nodes beyond ≈ 200 add nothing in f64).
pub const MAX_NODES: usize = 400;

/// A one-dimensional quadrature rule `E[f(x)] ≈ Σ_i w_i f(x_i)`, nodes sorted increasingly.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule1d {
    pub nodes: Vec<f64>,
    pub weights: Vec<f64>,
}

/// The `n`-point Gauss–Hermite rule for `x ~ N(0, 1)` (weights sum to 1).
///
/// ```
/// let r = imreg_taylor::quadrature::gauss_hermite(10).unwrap();
/// let m4: f64 = r.nodes.iter().zip(&r.weights).map(|(x, w)| w * x.powi(4)).sum();
/// assert!((m4 - 3.0).abs() < 1e-12);
/// ```
pub fn gauss_hermite(n: usize) -> Result<Rule1d> {
    if n == 0 || n > MAX_NODES {
        return Err(TaylorError::InvalidParam {
            name: "n (quadrature nodes)",
            value: n as f64,
            reason: "must be in 1..=400",
        });
    }
    let mut jac = DMatrix::<f64>::zeros(n, n);
    for k in 1..n {
        let b = (k as f64).sqrt();
        jac[(k - 1, k)] = b;
        jac[(k, k - 1)] = b;
    }
    let eig = SymmetricEigen::new(jac);
    let mut pairs: Vec<(f64, f64)> = (0..n)
        .map(|i| {
            let v0 = eig.eigenvectors[(0, i)];
            (eig.eigenvalues[i], v0 * v0)
        })
        .collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let m = pairs.len();
    let mut nodes = vec![0.0; m];
    let mut weights = vec![0.0; m];
    for i in 0..m {
        // Symmetrize (the rule is exactly symmetric), then polish the eigenvalue by two Newton steps on the
        // orthonormal p_n, and take the weight from the Christoffel function 1/Σ_k p_k(x)², which keeps its
        // relative accuracy in the tails where the squared eigenvector component (Golub–Welsch's weight,
        // `pairs[i].1`, used as a fallback) has only absolute accuracy.
        let mut x = 0.5 * (pairs[i].0 - pairs[m - 1 - i].0);
        for _ in 0..2 {
            let (pn, pn1, _) = orthonormal_hermite(n, x);
            let d = (n as f64).sqrt() * pn1;
            if d != 0.0 && (pn / d).is_finite() {
                x -= pn / d;
            }
        }
        let (_, _, sum_sq) = orthonormal_hermite(n, x);
        nodes[i] = x;
        weights[i] = if sum_sq.is_finite() && sum_sq > 0.0 {
            1.0 / sum_sq
        } else {
            pairs[i].1
        };
    }
    for i in 0..m / 2 {
        let j = m - 1 - i;
        let (x, w) = (0.5 * (nodes[j] - nodes[i]), 0.5 * (weights[i] + weights[j]));
        nodes[i] = -x;
        nodes[j] = x;
        weights[i] = w;
        weights[j] = w;
    }
    if m % 2 == 1 {
        nodes[m / 2] = 0.0;
    }
    let total: f64 = weights.iter().sum();
    for w in &mut weights {
        *w /= total;
    }
    Ok(Rule1d { nodes, weights })
}

/// `(p_n(x), p_{n−1}(x), Σ_{k<n} p_k(x)²)` for the orthonormal Hermite polynomials
/// `p_k = He_k/√k!` (`p_{k+1} = (x p_k − √k p_{k−1})/√(k+1)`).
fn orthonormal_hermite(n: usize, x: f64) -> (f64, f64, f64) {
    let (mut prev, mut cur) = (0.0, 1.0);
    let mut sum_sq = 0.0;
    for k in 0..n {
        sum_sq += cur * cur;
        let next = (x * cur - (k as f64).sqrt() * prev) / ((k + 1) as f64).sqrt();
        prev = cur;
        cur = next;
    }
    (cur, prev, sum_sq)
}

/// The tensor-product rule for `x ~ N(0, I_d)`: `n^d` points, each a `d`-vector, with product weights.
pub fn gauss_hermite_product(n: usize, d: usize) -> Result<(Vec<Vec<f64>>, Vec<f64>)> {
    let rule = gauss_hermite(n)?;
    let count = (n as u128).checked_pow(d as u32).unwrap_or(u128::MAX);
    const LIMIT: u128 = 10_000_000;
    if count > LIMIT {
        return Err(TaylorError::TooLarge {
            count,
            steps: 0,
            limit: LIMIT,
        });
    }
    let mut points = vec![Vec::new()];
    let mut weights = vec![1.0];
    for _ in 0..d {
        let mut np = Vec::with_capacity(points.len() * n);
        let mut nw = Vec::with_capacity(points.len() * n);
        for (p, w) in points.iter().zip(&weights) {
            for (x, wx) in rule.nodes.iter().zip(&rule.weights) {
                let mut q = p.clone();
                q.push(*x);
                np.push(q);
                nw.push(w * wx);
            }
        }
        points = np;
        weights = nw;
    }
    Ok((points, weights))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double_factorial_odd(k: u32) -> f64 {
        // (2k − 1)!! = E[x^{2k}] for x ~ N(0,1)
        (1..=k).map(|i| (2 * i - 1) as f64).product()
    }

    #[test]
    fn moments_exact_up_to_degree_2n_minus_1() {
        for n in [1usize, 2, 5, 12, 30] {
            let r = gauss_hermite(n).unwrap();
            for deg in 0..(2 * n as u32) {
                let m: f64 = r
                    .nodes
                    .iter()
                    .zip(&r.weights)
                    .map(|(x, w)| w * x.powi(deg as i32))
                    .sum();
                let exact = if deg % 2 == 1 {
                    0.0
                } else {
                    double_factorial_odd(deg / 2)
                };
                // Round-off scales with the size of the terms Σ w|x|^deg ≈ E|x|^deg ≤ E[x^{2⌈deg/2⌉}]
                // (odd moments cancel between symmetric terms of that size).
                let scale = double_factorial_odd(deg.div_ceil(2));
                assert!(
                    (m - exact).abs() <= 1e-12 * scale.max(1.0),
                    "n={n} deg={deg}: {m} vs {exact}"
                );
            }
        }
    }

    #[test]
    fn christoffel_weights_agree_with_golub_welsch_eigenvectors() {
        let n = 25;
        let r = gauss_hermite(n).unwrap();
        let mut jac = DMatrix::<f64>::zeros(n, n);
        for k in 1..n {
            jac[(k - 1, k)] = (k as f64).sqrt();
            jac[(k, k - 1)] = (k as f64).sqrt();
        }
        let eig = SymmetricEigen::new(jac);
        let mut gw: Vec<(f64, f64)> = (0..n)
            .map(|i| (eig.eigenvalues[i], eig.eigenvectors[(0, i)].powi(2)))
            .collect();
        gw.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (i, (x, w)) in gw.iter().enumerate() {
            assert!(
                (x - r.nodes[i]).abs() < 1e-12 && (w - r.weights[i]).abs() < 1e-14,
                "{i}"
            );
        }
    }

    #[test]
    fn known_three_point_rule() {
        // He_3 = x³ − 3x: nodes 0, ±√3, weights 2/3, 1/6, 1/6.
        let r = gauss_hermite(3).unwrap();
        assert!((r.nodes[2] - 3f64.sqrt()).abs() < 1e-14 && r.nodes[1].abs() < 1e-14);
        assert!((r.weights[1] - 2.0 / 3.0).abs() < 1e-14 && (r.weights[0] - 1.0 / 6.0).abs() < 1e-14);
    }

    #[test]
    fn smooth_integrand_converges() {
        // E[e^{ax}] = e^{a²/2}
        let r = gauss_hermite(40).unwrap();
        let m: f64 = r
            .nodes
            .iter()
            .zip(&r.weights)
            .map(|(x, w)| w * (0.7 * x).exp())
            .sum();
        assert!((m - (0.245f64).exp()).abs() < 1e-14);
    }

    #[test]
    fn product_rule_and_errors() {
        let (pts, w) = gauss_hermite_product(6, 2).unwrap();
        assert_eq!(pts.len(), 36);
        let m: f64 = pts
            .iter()
            .zip(&w)
            .map(|(p, w)| w * p[0] * p[0] * p[1] * p[1])
            .sum();
        assert!((m - 1.0).abs() < 1e-13);
        assert!(gauss_hermite(0).is_err());
        assert!(matches!(
            gauss_hermite_product(100, 5),
            Err(TaylorError::TooLarge { .. })
        ));
    }
}
