//! Theorem checks registered in the `reproduce` / `verify` registry: the autodiff's second- and
//! third-order derivatives against independent oracles.
use imreg_ad::check::dot;
use imreg_ad::nn::{Dense, DenseLoss, Head};
use imreg_ad::program::{self, Program};
use imreg_ad::{Graph, Mat, Tensor, Unary, Var};
use imreg_check::{Check, CheckContext, CheckError, OrCheckError, Outcome};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The checks this crate registers.
pub fn checks() -> Vec<Check> {
    vec![
        Check {
            id: "ad.hvp-vs-dense",
            claim: "The forward-over-reverse HVP equals the dense Hessian (forward-over-forward, no reverse pass) \
                    times v, on tanh/GELU MLPs with ½-MSE and cross-entropy",
            run: hvp_vs_dense,
        },
        Check {
            id: "ad.double-backward",
            claim: "Gradients of gradient norms, ∇_θ‖∇_θL‖² = 2Hg and ∇_θ‖∇_xL‖² (through the input gradient), \
                    match central differences of the norms",
            run: double_backward,
        },
        Check {
            id: "ad.third-order",
            claim: "The third-order directional derivative T3[u,v] = ∇(uᵀHv) matches central differences of the HVP",
            run: third_order,
        },
    ]
}

fn problem(widths: Vec<usize>, activation: Unary, ce: bool, n: usize, seed: u64) -> (DenseLoss, Vec<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (d, c) = (widths[0], *widths.last().expect("widths"));
    let x = Mat::from_shape_fn((n, d), |_| rng.random::<f64>() * 2.0 - 1.0);
    let head = if ce {
        Head::CrossEntropy {
            labels: (0..n).map(|i| (i * 5 + 1) % c).collect(),
        }
    } else {
        Head::Mse {
            y: Mat::from_shape_fn((n, c), |_| rng.random::<f64>() * 2.0 - 1.0),
            half: true,
        }
    };
    let prog = DenseLoss {
        net: Dense {
            widths,
            activation,
            bias: true,
        },
        x,
        head,
    };
    let theta = random_vec(&mut rng, prog.n_inputs(), 1.0);
    (prog, theta)
}

fn random_vec(rng: &mut ChaCha8Rng, n: usize, scale: f64) -> Vec<f64> {
    (0..n)
        .map(|_| scale * (rng.random::<f64>() * 2.0 - 1.0))
        .collect()
}

fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    d / dot(b, b).sqrt().max(1e-300)
}

fn cases() -> Vec<(DenseLoss, Vec<f64>)> {
    vec![
        problem(vec![3, 5, 2], Unary::Tanh, false, 6, 1),
        problem(vec![3, 4, 3], Unary::Tanh, true, 5, 2),
        problem(vec![2, 4, 3, 3], Unary::Gelu, true, 4, 3),
    ]
}

fn hvp_vs_dense(_: &CheckContext) -> Result<Outcome, CheckError> {
    let mut worst = 0.0f64;
    for (k, (prog, theta)) in cases().into_iter().enumerate() {
        let p = theta.len();
        let h = program::dense_hessian_forward(&prog, &theta).or_check()?;
        let mut rng = ChaCha8Rng::seed_from_u64(50 + k as u64);
        for _ in 0..3 {
            let v = random_vec(&mut rng, p, 1.0);
            let dense: Vec<f64> = (0..p).map(|i| dot(&h[i * p..(i + 1) * p], &v)).collect();
            let hv = program::hvp(&prog, &theta, &v).or_check()?;
            worst = worst.max(rel_err(&hv, &dense));
        }
    }
    // Both routes are exact; they differ only by rounding in differently ordered sums (~1e-15).
    Ok(Outcome::at_most(
        "max relative error ‖Hv − H_dense v‖/‖H_dense v‖",
        worst,
        1e-10,
    ))
}

/// Central difference of a scalar function along `v`.
fn central(
    f: &dyn Fn(&[f64]) -> Result<f64, CheckError>,
    x: &[f64],
    v: &[f64],
    h: f64,
) -> Result<f64, CheckError> {
    let xp: Vec<f64> = x.iter().zip(v).map(|(a, b)| a + h * b).collect();
    let xm: Vec<f64> = x.iter().zip(v).map(|(a, b)| a - h * b).collect();
    Ok((f(&xp)? - f(&xm)?) / (2.0 * h))
}

/// The network with its input as a differentiable leaf (to differentiate through `∇_x L`).
struct WithInput<'a>(&'a DenseLoss);

impl Program for WithInput<'_> {
    fn leaf_shapes(&self) -> Vec<(usize, usize)> {
        let mut s = self.0.leaf_shapes();
        s.push(self.0.x.dim());
        s
    }
    fn build<T: Tensor>(&self, g: &mut Graph<T>, l: &[Var]) -> imreg_ad::Result<Var> {
        let (params, x) = l.split_at(l.len() - 1);
        let (out, _) = self.0.net.forward(g, params, x[0], &[])?;
        match &self.0.head {
            Head::Mse { y, half } => g.mse(out, y, *half),
            Head::CrossEntropy { labels } => g.softmax_cross_entropy(out, labels),
        }
    }
}

fn double_backward(_: &CheckContext) -> Result<Outcome, CheckError> {
    // Central differences with h = 1e-5 have truncation error ~h²·|f'''| ≈ 1e-10 and rounding error
    // ~u·|f|/h ≈ 1e-11 for these O(1) functions; 1e-6 relative leaves four decades of margin while any
    // wrong factor or missing term would show at O(1).
    let mut worst = 0.0f64;
    for (k, (prog, theta)) in cases().into_iter().enumerate() {
        let p = theta.len();
        let mut rng = ChaCha8Rng::seed_from_u64(80 + k as u64);
        let (_, grad_g2) = program::grad_of_block_grad_norm(&prog, &theta, 0..p).or_check()?;
        let g2 = |t: &[f64]| -> Result<f64, CheckError> {
            let (_, g) = program::grad(&prog, t).or_check()?;
            Ok(dot(&g, &g))
        };
        let with_x = WithInput(&prog);
        let xflat: Vec<f64> = prog.x.iter().copied().collect();
        let z: Vec<f64> = theta.iter().chain(&xflat).copied().collect();
        let (_, grad_gx2) = program::grad_of_block_grad_norm(&with_x, &z, p..z.len()).or_check()?;
        let gx2 = |t: &[f64]| -> Result<f64, CheckError> {
            let zz: Vec<f64> = t.iter().chain(&xflat).copied().collect();
            let (_, g) = program::grad(&with_x, &zz).or_check()?;
            Ok(dot(&g[p..], &g[p..]))
        };
        for _ in 0..3 {
            let v = random_vec(&mut rng, p, 1.0);
            for (ad, f) in [
                (
                    dot(&grad_g2, &v),
                    &g2 as &dyn Fn(&[f64]) -> Result<f64, CheckError>,
                ),
                (dot(&grad_gx2[..p], &v), &gx2),
            ] {
                let fd = central(f, &theta, &v, 1e-5)?;
                worst = worst.max((ad - fd).abs() / ad.abs().max(fd.abs()).max(1e-8));
            }
        }
    }
    Ok(Outcome::at_most(
        "max relative error vs central differences",
        worst,
        1e-6,
    ))
}

fn third_order(_: &CheckContext) -> Result<Outcome, CheckError> {
    // The HVP is exact, so its central difference along w has error ~h²·|∂⁴f| + u·|Hv|/h; see above.
    let mut worst = 0.0f64;
    for (k, (prog, theta)) in cases().into_iter().enumerate() {
        let p = theta.len();
        let mut rng = ChaCha8Rng::seed_from_u64(90 + k as u64);
        for _ in 0..3 {
            let (u, w) = (random_vec(&mut rng, p, 1.0), random_vec(&mut rng, p, 1.0));
            let t3 = program::third_order(&prog, &theta, &u, &w).or_check()?;
            let h = 1e-5;
            let tp: Vec<f64> = theta.iter().zip(&w).map(|(a, b)| a + h * b).collect();
            let tm: Vec<f64> = theta.iter().zip(&w).map(|(a, b)| a - h * b).collect();
            let hp = program::hvp(&prog, &tp, &u).or_check()?;
            let hm = program::hvp(&prog, &tm, &u).or_check()?;
            let fd: Vec<f64> = hp.iter().zip(&hm).map(|(a, b)| (a - b) / (2.0 * h)).collect();
            worst = worst.max(rel_err(&t3, &fd));
        }
    }
    Ok(Outcome::at_most(
        "max relative error ‖T3[u,w] − FD‖/‖FD‖",
        worst,
        1e-6,
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn registered_checks_pass() {
        imreg_check::assert_all_pass(&super::checks(), true);
    }
}
