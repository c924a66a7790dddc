//! Theorem checks registered in the `reproduce` / `verify` registry.
use imreg_check::{Check, CheckContext, CheckError, OrCheckError, Outcome};
use imreg_objective::models::ScalarNet;
use imreg_objective::{rng, Batch, Objective};
use nalgebra::SymmetricEigen;

/// The checks this crate registers.
pub fn checks() -> Vec<Check> {
    vec![Check {
        id: "objective.scalar-net-hessian",
        claim: "the depth-2 scalar net's Hessian spectrum equals the closed form of docs/theory/scalar-net.md §Hessian \
                (and λ_max = ‖a‖²+‖b‖² at a minimum)",
        run: scalar_net_hessian,
    }]
}

/// Max over seeded random `(a, b, Φ, k)` (both the `½(aᵀb − Φ)²` form and the data form) and over global
/// minima of: `max_j |λ_j^closed − λ_j^eig| / ‖H‖₂`, with `λ^eig` the eigenvalues (nalgebra `SymmetricEigen`)
/// of the dense Hessian assembled from the model's HVPs; at minima also `|λ_max − σ²(‖a‖² + ‖b‖²)| / λ_max`.
/// A backward-stable eigensolver on a `2k × 2k` matrix is accurate to ≈ `2k · 1e-16 · ‖H‖₂`, so 1e-10
/// leaves a wide margin while any wrong term in the closed form gives O(1) errors.
fn scalar_net_hessian(ctx: &CheckContext) -> Result<Outcome, CheckError> {
    let points = if ctx.quick { 12 } else { 200 };
    let mut spec_err = 0.0f64;
    let mut min_err = 0.0f64;
    for seed in 0..points as u64 {
        let mut r = rng::stream(seed, 0x5ca1a7);
        let k = 1 + (seed as usize % 6);
        let phi = rng::normal_vec(&mut r, 1)[0];
        let (x, y) = (rng::normal_vec(&mut r, 9), rng::normal_vec(&mut r, 9));
        let nets = [
            ScalarNet::new(k, phi).or_check()?,
            ScalarNet::from_data(k, x, y).or_check()?,
        ];
        let theta0 = rng::normal_vec(&mut r, 2 * k);
        for net in &nets {
            // a random point, then the global minimum reached by rescaling b so that aᵀb = Φ
            let mut theta = theta0.clone();
            for at_min in [false, true] {
                if at_min {
                    let m: f64 = theta[..k].iter().zip(&theta[k..]).map(|(a, b)| a * b).sum();
                    let s = net.phi() / m;
                    theta[k..].iter_mut().for_each(|b| *b *= s);
                }
                let h = net.dense_hessian(&theta, Batch::Full).or_check()?;
                let mut eig: Vec<f64> = SymmetricEigen::new(h).eigenvalues.iter().copied().collect();
                eig.sort_by(|a, b| b.total_cmp(a));
                let closed = net.hessian_spectrum(&theta).or_check()?;
                let scale = eig
                    .iter()
                    .fold(0.0f64, |m, e| m.max(e.abs()))
                    .max(f64::MIN_POSITIVE);
                let err = eig
                    .iter()
                    .zip(&closed)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max)
                    / scale;
                spec_err = spec_err.max(err);
                if at_min {
                    let lam: f64 = net.sigma2() * theta.iter().map(|t| t * t).sum::<f64>();
                    min_err = min_err.max((eig[0] - lam).abs() / lam);
                }
            }
        }
    }
    Ok(Outcome::all(vec![
        Outcome::at_most(
            "max rel. error, closed-form spectrum vs SymmetricEigen",
            spec_err,
            1e-10,
        ),
        Outcome::at_most("max rel. error, λ_max vs σ²(‖a‖²+‖b‖²) at minima", min_err, 1e-10),
    ]))
}
