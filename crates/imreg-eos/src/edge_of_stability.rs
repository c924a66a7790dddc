//! The edge of stability on MLPs (Cohen, Kaur, Li, Kolter & Talwalkar, ICLR 2021).
//!
//! Full-batch GD `θ_{k+1} = θ_k − η∇C(θ_k)` on a tanh MLP with the **½-MSE** loss
//! `C(θ) = (1/N) Σ_i ½‖f(x_i; θ) − e_{y_i}‖²` (one-hot targets `e_y`, the ½ and the sum over the outputs as in
//! Cohen et al.'s code; without the ½ every Hessian, and so every sharpness, doubles). Along the run:
//!
//! - the **sharpness** `λ_max(∇²C(θ_k))` every `k` steps by Lanczos, warm-started from the previous top Ritz
//!   vector ([`crate::tracking::SharpnessProbe`], an observer of the one training loop
//!   [`imreg_sgd::train::train`], with the loss curve [`crate::tracking::LossCurve`] every step);
//! - **gradient flow** `θ̇ = −∇C(θ)` integrated with DOP853 (dense output) and compared with GD at equal time
//!   `t = ηk` by the relative distance `‖θ_k − θ_GF(ηk)‖ / ‖θ_GF(ηk)‖`.
//!
//! Predicted (Cohen et al.; `docs/theory/edge-of-stability.md` §Edge of stability): **progressive
//! sharpening** — while `λ_max < 2/η` it rises, and GD tracks gradient flow; then the **edge of stability** —
//! `λ_max` reaches `2/η` and hovers at (or just above) it, GD leaves the gradient-flow trajectory, and the
//! loss keeps decreasing non-monotonically. [`DigitsMlp`] builds the problem on the embedded UCI digits (a
//! subset of `N` images, features centred and standardized with the statistics of all 1797 images, as Cohen
//! et al. standardize CIFAR-10 with the full training set).
use crate::tracking::{sharpness_probe, train_options, Hover, LossCurve, TopEigen, TrackError, TrackResult};
use imreg_flow::dop853::{integrate_dense, Dop853Options, Dop853Report};
use imreg_objective::data::digits;
use imreg_objective::models::{Activation, Mlp, MlpSpec};
use imreg_objective::{Batch, LossKind, Objective};
use imreg_sgd::observe::{Cadence, Iterates, Scheduled};
use imreg_sgd::train::{train, Optimizer, RunOutcome};
use imreg_spectra::{dist, norm};
use rayon::prelude::*;

/// A classification MLP on a seeded subset of the UCI digits, with one-hot ½-MSE loss by default.
#[derive(Clone, Debug, PartialEq)]
pub struct DigitsMlp {
    /// Number of training images `N` (1..=1797), a seeded random subset.
    pub n_examples: usize,
    /// Hidden widths; the network is `64 → hidden… → 10`.
    pub hidden: Vec<usize>,
    pub activation: Activation,
    /// The loss: `LossKind::Mse { half: true }` is Cohen et al.'s `(1/N)Σ ½‖f − e_y‖²`.
    pub loss: LossKind,
    /// Seed of the subset.
    pub data_seed: u64,
    /// Seed of the initialization.
    pub init_seed: u64,
    /// Multiplier of PyTorch's default `U(−1/√in, 1/√in)` initialization.
    pub init_scale: f64,
}

impl DigitsMlp {
    /// Cohen et al.'s `fc-tanh` setting scaled to the digits: tanh MLP 64-100-100-10 with biases, ½-MSE on
    /// one-hot targets, PyTorch's default initialization, `n_examples` images.
    pub fn cohen(n_examples: usize) -> Self {
        DigitsMlp {
            n_examples,
            hidden: vec![100, 100],
            activation: Activation::Tanh,
            loss: LossKind::Mse { half: true },
            data_seed: 0,
            init_seed: 0,
            init_scale: 1.0,
        }
    }

    /// The network widths `[64, hidden…, 10]`.
    pub fn widths(&self) -> Vec<usize> {
        let mut w = vec![64];
        w.extend(&self.hidden);
        w.push(10);
        w
    }

    /// The model and its seeded initial parameters.
    pub fn build(&self) -> TrackResult<(Mlp, Vec<f64>)> {
        let all = digits();
        if self.n_examples == 0 || self.n_examples > all.labels.len() {
            return Err(TrackError::invalid(
                "n_examples",
                self.n_examples,
                "must lie in 1..=1797",
            ));
        }
        if !(self.init_scale.is_finite() && self.init_scale > 0.0) {
            return Err(TrackError::invalid(
                "init_scale",
                self.init_scale,
                "must be finite and > 0",
            ));
        }
        // Centre every feature and divide by its standard deviation over all 1797 images (features with zero
        // variance are only centred).
        let mut data = all;
        let (n, d) = (data.x.nrows(), data.x.ncols());
        for j in 0..d {
            let mean = (0..n).map(|i| data.x[(i, j)]).sum::<f64>() / n as f64;
            let var = (0..n).map(|i| (data.x[(i, j)] - mean).powi(2)).sum::<f64>() / n as f64;
            let scale = if var > 0.0 { 1.0 / var.sqrt() } else { 1.0 };
            (0..n).for_each(|i| data.x[(i, j)] = (data.x[(i, j)] - mean) * scale);
        }
        let (train, _) = data.split(self.n_examples, self.data_seed)?;
        let spec = MlpSpec {
            widths: self.widths(),
            activation: self.activation,
            bias: true,
            loss: self.loss,
        };
        let mlp = Mlp::classification(spec, train.x, train.labels)?;
        let theta = mlp.init_params(self.init_seed, self.init_scale);
        Ok((mlp, theta))
    }
}

/// How far gradient flow is integrated for the comparison with GD.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GfHorizon {
    /// Up to this GD step (time `η·step`).
    Step(usize),
    /// Up to `factor ×` the first step at which the sharpness reached `2/η` (all steps if it never did).
    CrossingTimes(f64),
}

/// Options of the gradient-flow comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct GfOptions {
    /// DOP853 tolerances etc. (the integration error must stay far below the GD–GF distance measured).
    pub dop853: Dop853Options,
    pub horizon: GfHorizon,
    /// Also measure the sharpness along gradient flow (same Lanczos options as GD's) at the compared steps
    /// that are multiples of this many GD steps (`None`: never).
    pub sharpness_every: Option<usize>,
}

impl Default for GfOptions {
    fn default() -> Self {
        GfOptions {
            dop853: Dop853Options::with_tol(1e-9, 1e-12),
            horizon: GfHorizon::CrossingTimes(1.5),
            sharpness_every: Some(1),
        }
    }
}

/// Options of [`edge_of_stability`].
#[derive(Clone, Debug, PartialEq)]
pub struct EosOptions {
    /// Step size η.
    pub lr: f64,
    /// GD steps.
    pub steps: usize,
    /// Sharpness every this many steps.
    pub every: usize,
    /// Lanczos steps per sharpness (warm-started).
    pub lanczos_iters: usize,
    /// Lanczos relative tolerance (0: always `lanczos_iters` steps).
    pub lanczos_tol: f64,
    /// Seed of the first Lanczos start vector.
    pub seed: u64,
    /// Loss above which the run counts as diverged.
    pub divergence_loss: f64,
    /// Compare with gradient flow (`None`: GD only).
    pub gradient_flow: Option<GfOptions>,
}

impl Default for EosOptions {
    fn default() -> Self {
        EosOptions {
            lr: 0.05,
            steps: 2000,
            every: 20,
            lanczos_iters: 20,
            lanczos_tol: 1e-8,
            seed: 0,
            divergence_loss: 1e6,
            gradient_flow: Some(GfOptions::default()),
        }
    }
}

/// GD against gradient flow at equal times `t = ηk`.
#[derive(Clone, Debug, PartialEq)]
pub struct GfComparison {
    /// The GD steps compared (measurement steps up to the horizon).
    pub steps: Vec<usize>,
    /// `‖θ_k − θ_GF(ηk)‖ / ‖θ_GF(ηk)‖`.
    pub relative_distance: Vec<f64>,
    /// `‖θ_GF(ηk) − θ₀‖`, the distance travelled by the flow (scale of the distances above).
    pub flow_displacement: Vec<f64>,
    /// The compared steps at which `λ_max` was measured along gradient flow ([`GfOptions::sharpness_every`]).
    pub sharpness_steps: Vec<usize>,
    /// `λ_max(θ_GF(ηk))` at those steps.
    pub sharpness: Vec<f64>,
    /// `max` of the relative distance over the compared steps strictly before the first crossing of 2/η (over
    /// all compared steps if there is none).
    pub max_before_crossing: f64,
    /// The relative distance at the last compared step.
    pub final_distance: f64,
    /// The DOP853 report.
    pub report: Dop853Report,
}

/// One EoS run.
#[derive(Clone, Debug, PartialEq)]
pub struct EosRun {
    pub lr: f64,
    /// `2/η`.
    pub threshold: f64,
    /// Measurement steps.
    pub steps: Vec<usize>,
    /// Sharpness at the measurement steps.
    pub sharpness: Vec<TopEigen>,
    /// Full-batch loss `C(θ_t)` at every step `t = 0, 1, …` (up to the divergence, its value included).
    pub loss: Vec<f64>,
    /// Completed, or diverged at a step (the loss above [`EosOptions::divergence_loss`]).
    pub outcome: RunOutcome,
    /// First measurement step with `λ_max ≥ 2/η`.
    pub first_crossing: Option<usize>,
    /// Sharpness over the second half of the steps relative to `2/η`.
    pub hover: Hover,
    /// The gradient-flow comparison.
    pub gradient_flow: Option<GfComparison>,
}

impl EosRun {
    /// The sharpness values.
    pub fn sharpness_values(&self) -> Vec<f64> {
        self.sharpness.iter().map(|s| s.value).collect()
    }
}

/// Full-batch GD from `θ₀` with the sharpness tracked every `opts.every` steps, compared with gradient flow.
///
/// Divergence of GD is reported in [`EosRun::outcome`] (the records up to it are kept); a gradient-flow
/// integration failure is an error.
pub fn edge_of_stability<O: Objective + ?Sized>(
    obj: &O,
    theta0: &[f64],
    opts: &EosOptions,
) -> TrackResult<EosRun> {
    let mut loss = LossCurve::new(opts.divergence_loss);
    let mut sharpness = sharpness_probe(opts.lanczos_iters, opts.lanczos_tol, opts.seed)?;
    // The GD iterates at the measured steps, for the comparison with gradient flow.
    let mut iterates = Iterates::default();
    let every = Cadence::Every(opts.every);
    let mut observers = vec![
        Scheduled::new(Cadence::Every(1), &mut loss),
        Scheduled::new(every, &mut sharpness),
    ];
    if opts.gradient_flow.is_some() {
        observers.push(Scheduled::new(every, &mut iterates));
    }
    let train_opts = train_options(opts.lr, opts.steps, 0, opts.divergence_loss);
    let end = train::<_, TrackError>(obj, theta0, &Optimizer::gd(), &train_opts, &mut observers)?;
    let threshold = 2.0 / opts.lr;
    let (steps, sharpness): (Vec<usize>, Vec<TopEigen>) = sharpness.records.into_iter().unzip();
    let values: Vec<f64> = sharpness.iter().map(|s| s.value).collect();
    let first_crossing = steps
        .iter()
        .zip(&values)
        .find(|(_, &v)| v >= threshold)
        .map(|(&s, _)| s);
    let hover = Hover::over(&steps, &values, opts.steps / 2, threshold);
    let gradient_flow = match &opts.gradient_flow {
        None => None,
        Some(gf) => {
            let horizon = match gf.horizon {
                GfHorizon::Step(s) => s,
                GfHorizon::CrossingTimes(f) => {
                    first_crossing.map_or(opts.steps, |c| ((c as f64 * f).ceil() as usize).min(opts.steps))
                }
            };
            let snaps: Vec<(usize, &Vec<f64>)> = iterates
                .records
                .iter()
                .filter(|r| r.0 <= horizon)
                .map(|(t, theta)| (*t, theta))
                .collect();
            Some(compare_with_flow(obj, theta0, opts, gf, &snaps, first_crossing)?)
        }
    };
    Ok(EosRun {
        lr: opts.lr,
        threshold,
        steps,
        sharpness,
        loss: loss.values(),
        outcome: end.outcome,
        first_crossing,
        hover,
        gradient_flow,
    })
}

/// Integrates gradient flow to the times `η·k` of the snapshots and measures the distances.
fn compare_with_flow<O: Objective + ?Sized>(
    obj: &O,
    theta0: &[f64],
    opts: &EosOptions,
    gf: &GfOptions,
    snaps: &[(usize, &Vec<f64>)],
    first_crossing: Option<usize>,
) -> TrackResult<GfComparison> {
    let times: Vec<f64> = snaps.iter().map(|(s, _)| opts.lr * *s as f64).collect();
    let (states, report) = if times.is_empty() {
        (Vec::new(), Dop853Report::default())
    } else {
        integrate_dense(
            |_t, y: &[f64], dy: &mut [f64]| {
                obj.loss_grad(y, Batch::Full, dy)?;
                dy.iter_mut().for_each(|v| *v = -*v);
                Ok(())
            },
            0.0,
            theta0,
            &times,
            &gf.dop853,
        )?
    };
    let mut probe = sharpness_probe(opts.lanczos_iters, opts.lanczos_tol, opts.seed)?;
    let mut out = GfComparison {
        steps: Vec::with_capacity(snaps.len()),
        relative_distance: Vec::with_capacity(snaps.len()),
        flow_displacement: Vec::with_capacity(snaps.len()),
        sharpness_steps: Vec::new(),
        sharpness: Vec::new(),
        max_before_crossing: 0.0,
        final_distance: f64::NAN,
        report,
    };
    for ((step, gd), flow) in snaps.iter().zip(&states) {
        let rel = dist(gd, flow) / norm(flow);
        out.steps.push(*step);
        out.relative_distance.push(rel);
        out.flow_displacement.push(dist(flow, theta0));
        if gf.sharpness_every.is_some_and(|e| e > 0 && step % e == 0) {
            out.sharpness_steps.push(*step);
            out.sharpness.push(probe.sharpness(obj, flow)?.value);
        }
        if first_crossing.is_none() || first_crossing.is_some_and(|c| *step < c) {
            out.max_before_crossing = out.max_before_crossing.max(rel);
        }
    }
    out.final_distance = out.relative_distance.last().copied().unwrap_or(f64::NAN);
    Ok(out)
}

/// Runs [`edge_of_stability`] for each options set (e.g. an η sweep), rayon-parallel over the runs, results
/// in input order; each run is a pure function of its inputs, so the sweep is bitwise deterministic.
pub fn sweep_edge_of_stability<O: Objective + ?Sized>(
    obj: &O,
    theta0: &[f64],
    runs: &[EosOptions],
) -> Vec<TrackResult<EosRun>> {
    runs.par_iter()
        .map(|o| edge_of_stability(obj, theta0, o))
        .collect()
}
