//! Seeded synthetic datasets. Every generator is a pure function of its arguments and `seed`: inputs come
//! from `rng::stream(seed, 0)`, teachers from stream 1, noise from stream 2.
use super::{Classification, Regression};
use crate::error::{ObjectiveError, Result};
use crate::rng;
use ndarray::{Array2, Axis};

fn positive(name: &str, v: usize) -> Result<()> {
    if v == 0 {
        return Err(ObjectiveError::invalid(name, "must be ≥ 1"));
    }
    Ok(())
}

fn noise_level(noise: f64) -> Result<()> {
    if !(noise.is_finite() && noise >= 0.0) {
        return Err(ObjectiveError::invalid(
            "noise",
            format!("must be finite and ≥ 0, got {noise}"),
        ));
    }
    Ok(())
}

/// `rows × cols` i.i.d. `N(0, scale²)` entries.
fn gaussian(rng: &mut rng::ChaCha8Rng, rows: usize, cols: usize, scale: f64) -> Array2<f64> {
    Array2::from_shape_vec((rows, cols), rng::normal_vec(rng, rows * cols))
        .unwrap_or_else(|_| Array2::zeros((rows, cols)))
        .mapv(|v| v * scale)
}

/// `x_i ~ N(0, I_{d_in})`, `y_i = W* x_i + σ ξ_i` with teacher `W*` (`d_out × d_in`, entries `N(0, 1/d_in)`)
/// and `ξ_i ~ N(0, I)`.
pub fn teacher_student_linear(
    n: usize,
    d_in: usize,
    d_out: usize,
    noise: f64,
    seed: u64,
) -> Result<Regression> {
    teacher_student_mlp(n, &[d_in, d_out], noise, seed)
}

/// `x_i ~ N(0, I)`, `y_i = f*(x_i) + σ ξ_i` with `f*` an MLP of widths `[d_in, h_1, …, d_out]`: `tanh` on the
/// hidden layers, linear output, no biases, weights `N(0, 1/fan_in)`. Two widths give the linear teacher.
pub fn teacher_student_mlp(n: usize, widths: &[usize], noise: f64, seed: u64) -> Result<Regression> {
    positive("n", n)?;
    noise_level(noise)?;
    if widths.len() < 2 || widths.contains(&0) {
        return Err(ObjectiveError::invalid(
            "widths",
            format!("need [d_in, …, d_out], all ≥ 1, got {widths:?}"),
        ));
    }
    let x = gaussian(&mut rng::stream(seed, 0), n, widths[0], 1.0);
    let mut teacher = rng::stream(seed, 1);
    let mut h = x.clone();
    let layers = widths.len() - 1;
    for (l, w) in widths.windows(2).enumerate() {
        let wl = gaussian(&mut teacher, w[1], w[0], 1.0 / (w[0] as f64).sqrt());
        h = h.dot(&wl.t());
        if l + 1 < layers {
            h.mapv_inplace(f64::tanh);
        }
    }
    let xi = gaussian(&mut rng::stream(seed, 2), n, widths[layers], noise);
    Regression::new(x, h + xi)
}

/// `x_i ~ N(0, I_d)`, label `argmax_c (W* x_i)_c` with a linear teacher `W*` (`classes × d`, `N(0, 1)`).
pub fn teacher_student_classification(
    n: usize,
    d: usize,
    classes: usize,
    seed: u64,
) -> Result<Classification> {
    positive("n", n)?;
    positive("d", d)?;
    if classes < 2 {
        return Err(ObjectiveError::invalid("classes", "must be ≥ 2"));
    }
    let x = gaussian(&mut rng::stream(seed, 0), n, d, 1.0);
    let w = gaussian(&mut rng::stream(seed, 1), classes, d, 1.0);
    let scores = x.dot(&w.t());
    Classification::new(x, crate::supervised::argmax_rows(&scores), classes)
}

/// The target of the support experiments (`docs/theory/support.md` §Experimental settings), on the first `r`
/// coordinates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SupportTarget {
    /// `f*(x) = Σ_{i<r} x_i`.
    Linear,
    /// `f*(x) = sin(Σ_{i<r} x_i)`.
    Sin,
    /// `f*(x) = Σ_{i=1}^{r} x_i^i` (coordinate `i` 1-based).
    Staircase,
}

/// Settings of [`sparse_support`].
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SupportParams {
    /// Number of base samples (the dataset has `2n` rows).
    pub n: usize,
    /// Input dimension.
    pub d: usize,
    /// Support size `r < d`: the target depends on `x_0 … x_{r−1}` only.
    pub r: usize,
    pub target: SupportTarget,
    /// Label-noise scale: `ε_i = noise · N(0, 1)`.
    pub noise: f64,
    pub seed: u64,
}

impl SupportParams {
    /// The authors' notebook settings: `n = 5000` (10 000 rows), `d = 15`, `r = 5`, noise `0.001` for the
    /// linear and sine targets and `0` for the staircase.
    pub fn paper(target: SupportTarget, seed: u64) -> Self {
        let noise = if target == SupportTarget::Staircase {
            0.0
        } else {
            0.001
        };
        SupportParams {
            n: 5000,
            d: 15,
            r: 5,
            target,
            noise,
            seed,
        }
    }
}

impl Default for SupportParams {
    fn default() -> Self {
        SupportParams::paper(SupportTarget::Linear, 0)
    }
}

/// The sparse-support regression data of `docs/theory/support.md` §Experimental settings: `n` base samples
/// `x ~ N(0, I_d)`; the irrelevant coordinates `x_r … x_{d−1}` are centered empirically (column means over
/// the `n` samples subtracted); every sample appears twice, with opposite noise: rows `0..n` have
/// `y = f*(x) + ε` and rows
/// `n..2n` have `y = f*(x) − ε` (same `x`, same `ε`), so the residuals at the optimum are `±ε`.
pub fn sparse_support(p: &SupportParams) -> Result<Regression> {
    positive("n", p.n)?;
    positive("r", p.r)?;
    noise_level(p.noise)?;
    if p.r > p.d {
        return Err(ObjectiveError::invalid(
            "r",
            format!("support size {} exceeds d = {}", p.r, p.d),
        ));
    }
    let mut x = gaussian(&mut rng::stream(p.seed, 0), p.n, p.d, 1.0);
    if p.r < p.d {
        let mut irr = x.slice_mut(ndarray::s![.., p.r..]);
        let mean = irr
            .mean_axis(Axis(0))
            .unwrap_or_else(|| ndarray::Array1::zeros(p.d - p.r));
        irr -= &mean;
    }
    let eps = rng::normal_vec(&mut rng::stream(p.seed, 2), p.n);
    let f: Vec<f64> = x
        .outer_iter()
        .map(|row| {
            let s: f64 = row.iter().take(p.r).sum();
            match p.target {
                SupportTarget::Linear => s,
                SupportTarget::Sin => s.sin(),
                SupportTarget::Staircase => row
                    .iter()
                    .take(p.r)
                    .enumerate()
                    .map(|(i, v)| v.powi(i as i32 + 1))
                    .sum(),
            }
        })
        .collect();
    let xx = ndarray::concatenate(Axis(0), &[x.view(), x.view()])
        .map_err(|e| ObjectiveError::Data(e.to_string()))?;
    let y = Array2::from_shape_fn((2 * p.n, 1), |(i, _)| {
        let (k, sign) = if i < p.n { (i, 1.0) } else { (i - p.n, -1.0) };
        f[k] + sign * p.noise * eps[k]
    });
    Regression::new(xx, y)
}

/// The scalar-net data of the illustrative example (`docs/theory/support.md` §Experimental settings, the
/// authors' `landscape.py`): `x ~ N(0, 1)` rescaled so that `mean x² = 1`, and `y = x + noise · η` with
/// `η ~ N(0, 1)` projected orthogonally to `x`, so `Σ x y = Σ x² = n` and `Φ = Σxy/Σx² = 1` (to rounding) and
/// `σ² = 1`. Returns `(x, y)` for [`ScalarNet::from_data`](crate::models::ScalarNet::from_data).
pub fn scalar_net_data(n: usize, noise: f64, seed: u64) -> Result<(Vec<f64>, Vec<f64>)> {
    if n < 2 {
        return Err(ObjectiveError::invalid("n", "needs at least 2 samples"));
    }
    noise_level(noise)?;
    let mut x = rng::normal_vec(&mut rng::stream(seed, 0), n);
    let s = (x.iter().map(|v| v * v).sum::<f64>() / n as f64).sqrt();
    x.iter_mut().for_each(|v| *v /= s);
    let mut eta = rng::normal_vec(&mut rng::stream(seed, 2), n);
    let proj = eta.iter().zip(&x).map(|(e, v)| e * v).sum::<f64>() / x.iter().map(|v| v * v).sum::<f64>();
    eta.iter_mut().zip(&x).for_each(|(e, v)| *e -= proj * v);
    let y = x.iter().zip(&eta).map(|(v, e)| v + noise * e).collect();
    Ok((x, y))
}

/// `D1 = {(1, −1), (1, 1)}` ("label oscillation", the authors' `convergence.py`; `docs/theory/support.md`) as
/// `(x, y)`.
pub fn label_oscillation() -> (Vec<f64>, Vec<f64>) {
    (vec![1.0, 1.0], vec![-1.0, 1.0])
}

/// `D2 = {(1/3, 0), (3, 0)}` ("input oscillation", the authors' `convergence.py`; `docs/theory/support.md`)
/// as `(x, y)`, the pairs as recorded there.
pub fn input_oscillation() -> (Vec<f64>, Vec<f64>) {
    (vec![1.0 / 3.0, 3.0], vec![0.0, 0.0])
}
