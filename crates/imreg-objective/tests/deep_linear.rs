//! The deep linear network against formulas derived by hand (independent of the autodiff tape it runs on):
//! per-example backpropagation written with nalgebra, and the end-to-end matrix.
mod common;

use common::{randn, rel};
use imreg_objective::models::DeepLinear;
use imreg_objective::{Batch, Objective};
use nalgebra::{DMatrix, DVector};
use ndarray::Array2;

fn net(seed: u64, widths: &[usize], n: usize, bias: bool) -> DeepLinear {
    let (d0, dl) = (widths[0], widths[widths.len() - 1]);
    let x = Array2::from_shape_vec((n, d0), randn(seed, 1, n * d0)).unwrap();
    let y = Array2::from_shape_vec((n, dl), randn(seed, 2, n * dl)).unwrap();
    DeepLinear::new(widths.to_vec(), x, y, bias).unwrap()
}

/// `(W_ℓ, b_ℓ)` per layer from θ in PyTorch order.
fn layers(m: &DeepLinear, theta: &[f64]) -> Vec<(DMatrix<f64>, DVector<f64>)> {
    let mut off = 0;
    m.widths()
        .windows(2)
        .map(|w| {
            let (o, i) = (w[1], w[0]);
            let wl = DMatrix::from_row_slice(o, i, &theta[off..off + o * i]);
            off += o * i;
            let bl = if m.has_bias() {
                off += o;
                DVector::from_column_slice(&theta[off - o..off])
            } else {
                DVector::zeros(o)
            };
            (wl, bl)
        })
        .collect()
}

/// `ℓ_i = ½‖h_L − y_i‖²` with `h_ℓ = W_ℓ h_{ℓ−1} + b_ℓ`; backward `g_L = h_L − y_i`, `∇W_ℓ = g_ℓ h_{ℓ−1}ᵀ`,
/// `∇b_ℓ = g_ℓ`, `g_{ℓ−1} = W_ℓᵀ g_ℓ`; the batch mean of both.
fn hand_loss_grad(m: &DeepLinear, theta: &[f64], rows: &[usize]) -> (f64, Vec<f64>) {
    let ls = layers(m, theta);
    let mut grads: Vec<(DMatrix<f64>, DVector<f64>)> = ls
        .iter()
        .map(|(w, b)| (DMatrix::zeros(w.nrows(), w.ncols()), DVector::zeros(b.len())))
        .collect();
    let mut loss = 0.0;
    let inv = 1.0 / rows.len() as f64;
    for &i in rows {
        let mut hs = vec![DVector::from_iterator(
            m.widths()[0],
            m.x().row(i).iter().copied(),
        )];
        for (w, b) in &ls {
            let next = w * &hs[hs.len() - 1] + b;
            hs.push(next);
        }
        let y = DVector::from_iterator(m.y().ncols(), m.y().row(i).iter().copied());
        let mut g = &hs[ls.len()] - y;
        loss += 0.5 * g.norm_squared() * inv;
        for l in (0..ls.len()).rev() {
            grads[l].0 += &g * hs[l].transpose() * inv;
            grads[l].1 += &g * inv;
            g = ls[l].0.transpose() * g;
        }
    }
    let mut flat = Vec::new();
    for (w, b) in grads {
        for r in 0..w.nrows() {
            flat.extend(w.row(r).iter());
        }
        if m.has_bias() {
            flat.extend(b.iter());
        }
    }
    (loss, flat)
}

#[test]
fn loss_and_gradient_equal_hand_backpropagation() {
    for (s, (widths, bias)) in [
        (vec![3, 4, 2, 2], false),
        (vec![3, 4, 2, 2], true),
        (vec![2, 5, 3, 4, 1], true),
    ]
    .into_iter()
    .enumerate()
    {
        let m = net(40 + s as u64, &widths, 13, bias);
        let theta: Vec<f64> = randn(41 + s as u64, 9, m.dim()).iter().map(|t| 0.7 * t).collect();
        for rows in [(0..13).collect::<Vec<_>>(), vec![4, 0, 4, 12]] {
            let (want_l, want_g) = hand_loss_grad(&m, &theta, &rows);
            let mut g = vec![0.0; m.dim()];
            let l = m.loss_grad(&theta, Batch::Indices(&rows), &mut g).unwrap();
            assert!(
                (l - want_l).abs() <= 1e-14 * want_l,
                "{widths:?}: loss {l} vs {want_l}"
            );
            assert!(rel(&g, &want_g, 1e-300) <= 1e-13, "{widths:?}: gradient");
        }
    }
}

/// Without biases `f(x) = E x` with `E = W_L ⋯ W_1`, so the loss is `½ mean ‖E x_i − y_i‖²`.
#[test]
fn end_to_end_matrix_gives_the_loss() {
    let m = net(7, &[4, 6, 5, 3], 11, false);
    let theta: Vec<f64> = randn(8, 9, m.dim()).iter().map(|t| 0.5 * t).collect();
    let e = m.end_to_end(&theta).unwrap();
    let ls = layers(&m, &theta);
    let prod = ls.iter().skip(1).fold(ls[0].0.clone(), |acc, (w, _)| w * acc);
    assert_eq!(e.dim(), (3, 4));
    for ((c, j), v) in e.indexed_iter() {
        assert!((v - prod[(c, j)]).abs() <= 1e-14 * prod.norm(), "E[{c}, {j}]");
    }
    let mut want = 0.0;
    for i in 0..11 {
        for c in 0..3 {
            let f: f64 = (0..4).map(|j| e[(c, j)] * m.x()[(i, j)]).sum();
            want += 0.5 * (f - m.y()[(i, c)]).powi(2) / 11.0;
        }
    }
    let l = m.loss(&theta, Batch::Full).unwrap();
    assert!((l - want).abs() <= 1e-13 * want, "{l} vs {want}");
    assert!(m.end_to_end(&theta[1..]).is_err());
}
