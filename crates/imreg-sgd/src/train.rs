//! One training loop for every first-order method of the workspace.
//!
//! A run is a [`Optimizer`] — a [`Sampler`] (which examples each step uses) × an [`Update`] rule (GD, heavy
//! ball, Nesterov) × gradient [`Noise`] × a [`GradientTransform`] (explicit penalties, clipping, grafting) —
//! driven by [`train`], which calls a list of observers ([`crate::observe`]) on their schedules. At step
//! `t = 0, 1, …, T − 1`:
//!
//! 1. draw `B_t` and compute `L_{B_t}(θ_t)`, `g = ∇L_{B_t}(θ_t)`;
//! 2. call the observers due at `t` with `(t, θ_t, B_t, L_{B_t}, g)`, in list order; the first one that
//!    answers [`Control::Stop`] or [`Control::Diverged`] ends the run here (the later ones are not called);
//! 3. a batch loss above [`Divergence::loss`] (or non-finite) ends the run as diverged at `t`;
//! 4. `d = transform(g)`: `d = g + Σ_r ∇R_r(θ_t; B_t)` (penalties in order), then `clip_grad_norm_`, then
//!    grafting, then `d ← d + ξ_t` (noise);
//! 5. `θ_{t+1} = θ_t − η u(d)` with `u` the update rule (momentum buffer);
//! 6. a non-finite `θ_{t+1}` or `‖θ_{t+1}‖ >` [`Divergence::norm`] ends the run as diverged at `t + 1`.
//!
//! After a completed run the observers are called once more at the final iterate `θ_T` (no batch there).
//! All randomness comes from seeded ChaCha streams ([`Seeds`]), the batches, the noise and the penalties
//! each from their own, so a run is a pure function of its inputs and bitwise reproducible at any thread
//! count. Divergence is a reported [`RunOutcome`] carrying the step, never an error.
//!
//! ```
//! use imreg_sgd::train::{train, Optimizer, TrainOptions, Update, RunOutcome};
//! use imreg_sgd::observe::{FullLoss, Cadence, Scheduled};
//! use imreg_sgd::sampler::Sampler;
//! use imreg_objective::{models::LogCoshQuartic, Remainder};
//! let obj = LogCoshQuartic::random(8, 2, 1).unwrap();
//! let method = Optimizer {
//!     update: Update::HeavyBall { momentum: 0.9 },
//!     ..Optimizer::sgd(Sampler::reshuffling(2, Remainder::Error))
//! };
//! let opts = TrainOptions { lr: 0.1, steps: 40, ..Default::default() };
//! let mut loss = FullLoss::train();
//! let run: imreg_sgd::Result<_> =
//!     train(&obj, &[0.5, -0.5], &method, &opts, &mut [Scheduled::new(Cadence::Every(4), &mut loss)]);
//! let run = run.unwrap();
//! assert_eq!(run.outcome, RunOutcome::Completed);
//! assert_eq!(loss.records.len(), 11); // t = 0, 4, …, 40
//! ```
use crate::error::{check_len, check_lr, Result, SgdError};
use crate::observe::{blown, Control, Scheduled, StepView};
use crate::regularizers::{clip_grad_norm, grafting::IterativeGrafting, Penalty};
use crate::sampler::{BatchStream, Sampler};
use imreg_objective::rng::{self, ChaCha8Rng};
use imreg_objective::{Batch, Objective};
use nalgebra::{DMatrix, DVector};

/// The update rule (PyTorch `torch.optim.SGD` conventions, dampening 0).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Update {
    /// `θ ← θ − η d`.
    #[default]
    Plain,
    /// `b ← μ b + d` (`b_0 = d_0`), `θ ← θ − η b`.
    HeavyBall { momentum: f64 },
    /// `b ← μ b + d` (`b_0 = d_0`), `θ ← θ − η (d + μ b)`.
    Nesterov { momentum: f64 },
}

/// Gaussian noise added to the (transformed) gradient: `d ← d + ξ`, `ξ ~ N(0, Σ)` i.i.d. per step.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Noise {
    #[default]
    None,
    /// `Σ = σ² I`.
    Isotropic { sigma: f64 },
    /// `Σ = diag(variances)`.
    Diagonal { variances: Vec<f64> },
    /// A full covariance `Σ` (symmetric positive semi-definite; factored once).
    Full { covariance: DMatrix<f64> },
}

/// Explicit regularization as a transform of the step's gradient (optax-style, applied in this order):
/// `d = g + Σ_r ∇R_r(θ; B)`, then `d ← clip(d)` (torch `clip_grad_norm_`), then grafting.
#[derive(Default)]
pub struct GradientTransform<'a> {
    /// The penalties `R_r`, each evaluated on the step's batch with the penalty stream.
    pub penalties: Vec<Box<dyn Penalty + 'a>>,
    /// `Some(c)`: clip `d` at norm `c`.
    pub clip: Option<f64>,
    /// Iterative grafting: `d`'s direction with the norm of the first micro-batch's gradient.
    pub grafting: Option<IterativeGrafting>,
    /// When a penalty evaluated `L_B` and `∇L_B` on the way (the micro-batch penalties, as the mean over
    /// their micro-batches), use those instead of a separate gradient call. They equal the direct ones up to
    /// rounding; `false` always takes the direct gradient.
    pub reuse_penalty_loss: bool,
}

impl GradientTransform<'_> {
    fn is_identity(&self) -> bool {
        self.penalties.is_empty() && self.clip.is_none() && self.grafting.is_none()
    }
}

/// What one run does: sampler × update × noise × gradient transform.
#[derive(Default)]
pub struct Optimizer<'a> {
    pub sampler: Sampler,
    pub update: Update,
    pub noise: Noise,
    pub transform: GradientTransform<'a>,
}

impl Optimizer<'_> {
    /// Plain GD.
    pub fn gd() -> Self {
        Optimizer::default()
    }
    /// Plain SGD with the given sampler.
    pub fn sgd(sampler: Sampler) -> Self {
        Optimizer {
            sampler,
            ..Optimizer::default()
        }
    }
}

/// One seeded ChaCha stream: `rng::stream(seed, stream)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamId {
    pub seed: u64,
    pub stream: u64,
}

/// The random streams of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seeds {
    /// The batches.
    pub sampler: StreamId,
    /// The gradient noise.
    pub noise: StreamId,
    /// The penalties' randomness (sampled labels, random directions), drawn in step order.
    pub penalties: StreamId,
}

impl Seeds {
    /// Streams 0 (batches), 1 (noise) and 2 (penalties) of one master seed.
    pub fn from_seed(seed: u64) -> Self {
        Seeds {
            sampler: StreamId { seed, stream: 0 },
            noise: StreamId { seed, stream: 1 },
            penalties: StreamId { seed, stream: 2 },
        }
    }
}

impl Default for Seeds {
    fn default() -> Self {
        Seeds::from_seed(0)
    }
}

/// When a run counts as diverged (the one divergence threshold of the loop; non-finite values always do).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Divergence {
    /// A batch loss `L_{B_t}(θ_t)` above this.
    pub loss: f64,
    /// An iterate with `‖θ_t‖` above this.
    pub norm: f64,
}

impl Default for Divergence {
    /// Only non-finite values.
    fn default() -> Self {
        Divergence {
            loss: f64::INFINITY,
            norm: f64::INFINITY,
        }
    }
}

/// Options of [`train`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainOptions {
    /// Learning rate `η > 0`.
    pub lr: f64,
    /// Number of updates `T`.
    pub steps: usize,
    pub seeds: Seeds,
    pub divergence: Divergence,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            lr: 0.01,
            steps: 100,
            seeds: Seeds::default(),
            divergence: Divergence::default(),
        }
    }
}

/// What blew up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Blowup {
    /// The batch loss `L_{B_t}(θ_t)`.
    Loss(f64),
    /// `‖θ_t‖` (non-finite, or above [`Divergence::norm`]).
    Norm(f64),
    /// A value an observer measured ([`Control::Diverged`]).
    Observed(f64),
}

impl Blowup {
    /// The value that blew up.
    pub fn value(self) -> f64 {
        match self {
            Blowup::Loss(v) | Blowup::Norm(v) | Blowup::Observed(v) => v,
        }
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RunOutcome {
    /// All `T` steps taken.
    Completed,
    /// Diverged at `step`: the iterate `θ_step` (or its batch loss, or an observed value) blew up.
    Diverged { step: usize, blowup: Blowup },
    /// An observer stopped the run at `θ_step`.
    Stopped { step: usize },
}

/// One token per outcome, safe inside a CSV field: `completed`, `diverged@STEP`, `stopped@STEP`.
impl std::fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunOutcome::Completed => f.write_str("completed"),
            RunOutcome::Diverged { step, .. } => write!(f, "diverged@{step}"),
            RunOutcome::Stopped { step } => write!(f, "stopped@{step}"),
        }
    }
}

impl RunOutcome {
    /// The step of divergence, if any.
    pub fn diverged_at(&self) -> Option<usize> {
        match *self {
            RunOutcome::Diverged { step, .. } => Some(step),
            _ => None,
        }
    }
}

/// The end of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Training {
    /// The last finite iterate: `θ_T`, the iterate where an observer stopped the run, or the last one
    /// before divergence.
    pub theta: Vec<f64>,
    pub outcome: RunOutcome,
    /// Gradient evaluations of the loss by the loop (penalties' own not counted).
    pub gradient_calls: usize,
}

/// Draws Gaussian vectors with a given covariance.
enum NoiseSampler {
    None,
    Scaled(Vec<f64>),
    Factor(DMatrix<f64>),
}

impl NoiseSampler {
    fn new(noise: &Noise, p: usize) -> Result<Self> {
        Ok(match noise {
            Noise::None => NoiseSampler::None,
            Noise::Isotropic { sigma } => {
                if !(sigma.is_finite() && *sigma >= 0.0) {
                    return Err(SgdError::invalid(
                        "sigma",
                        format!("must be ≥ 0 and finite, got {sigma}"),
                    ));
                }
                NoiseSampler::Scaled(vec![*sigma; p])
            }
            Noise::Diagonal { variances } => {
                if variances.len() != p {
                    return Err(SgdError::Length {
                        name: "variances",
                        expected: p,
                        got: variances.len(),
                    });
                }
                if let Some(v) = variances.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
                    return Err(SgdError::invalid(
                        "variances",
                        format!("must be ≥ 0 and finite, got {v}"),
                    ));
                }
                NoiseSampler::Scaled(variances.iter().map(|v| v.sqrt()).collect())
            }
            Noise::Full { covariance } => {
                if covariance.nrows() != p || covariance.ncols() != p {
                    return Err(SgdError::invalid(
                        "covariance",
                        format!(
                            "must be {p}×{p}, got {}×{}",
                            covariance.nrows(),
                            covariance.ncols()
                        ),
                    ));
                }
                if (covariance - covariance.transpose()).amax() > 1e-12 * (1.0 + covariance.amax()) {
                    return Err(SgdError::invalid("covariance", "is not symmetric"));
                }
                // Σ = U Λ Uᵀ, factor U Λ^{1/2} (semi-definite allowed; negative eigenvalues rejected).
                let eig = covariance.clone().symmetric_eigen();
                let lmin = eig.eigenvalues.min();
                if lmin < -1e-12 * (1.0 + eig.eigenvalues.amax()) {
                    return Err(SgdError::invalid(
                        "covariance",
                        format!("is not positive semi-definite (eigenvalue {lmin:e})"),
                    ));
                }
                let sq = eig.eigenvalues.map(|l| l.max(0.0).sqrt());
                NoiseSampler::Factor(&eig.eigenvectors * DMatrix::from_diagonal(&sq))
            }
        })
    }

    fn add(&self, rng: &mut ChaCha8Rng, g: &mut [f64]) {
        match self {
            NoiseSampler::None => {}
            NoiseSampler::Scaled(s) => {
                let z = rng::normal_vec(rng, g.len());
                for ((gi, si), zi) in g.iter_mut().zip(s).zip(z) {
                    *gi += si * zi;
                }
            }
            NoiseSampler::Factor(l) => {
                let z = DVector::from_vec(rng::normal_vec(rng, g.len()));
                let xi = l * z;
                for (gi, x) in g.iter_mut().zip(xi.iter()) {
                    *gi += x;
                }
            }
        }
    }
}

fn validate(method: &Optimizer<'_>, opts: &TrainOptions) -> Result<()> {
    check_lr("lr", opts.lr)?;
    if let Update::HeavyBall { momentum } | Update::Nesterov { momentum } = method.update {
        if !(momentum.is_finite() && (0.0..1.0).contains(&momentum)) {
            return Err(SgdError::invalid(
                "momentum",
                format!("must lie in [0, 1), got {momentum}"),
            ));
        }
    }
    for (name, v) in [
        ("divergence.loss", opts.divergence.loss),
        ("divergence.norm", opts.divergence.norm),
    ] {
        if v.is_nan() || v <= 0.0 {
            return Err(SgdError::invalid(name, format!("must be > 0, got {v}")));
        }
    }
    if let Some(c) = method.transform.clip {
        if !(c.is_finite() && c > 0.0) {
            return Err(SgdError::invalid(
                "clip",
                format!("must be > 0 and finite, got {c}"),
            ));
        }
    }
    Ok(())
}

fn penalty_error(e: crate::reg_error::RegError) -> SgdError {
    SgdError::Penalty(e.to_string())
}

/// `d = g + Σ ∇R` (the loss and `g` possibly taken from a penalty), clipped, grafted. Returns the loss.
fn transformed_gradient<O: Objective + ?Sized>(
    obj: &O,
    transform: &GradientTransform<'_>,
    theta: &[f64],
    batch: Batch<'_>,
    rng: &mut ChaCha8Rng,
    g: &mut [f64],
    d: &mut Vec<f64>,
) -> Result<(f64, bool)> {
    let mut values = Vec::with_capacity(transform.penalties.len());
    let mut reused = None;
    for p in &transform.penalties {
        let mut v = p.value_grad(theta, batch, rng).map_err(penalty_error)?;
        if transform.reuse_penalty_loss && reused.is_none() {
            reused = v.loss.take();
        }
        values.push(v.grad);
    }
    let (loss, computed) = match reused {
        Some((l, lg)) => {
            g.copy_from_slice(&lg);
            (l, false)
        }
        None => (obj.loss_grad(theta, batch, g)?, true),
    };
    d.clear();
    d.extend_from_slice(g);
    for r in &values {
        d.iter_mut().zip(r).for_each(|(di, ri)| *di += ri);
    }
    if let Some(c) = transform.clip {
        clip_grad_norm(d, c);
    }
    if let Some(gr) = &transform.grafting {
        let rows: Vec<usize> = batch.iter(obj.n_examples()).collect();
        gr.apply(obj, theta, &rows, d).map_err(penalty_error)?;
    }
    Ok((loss, computed))
}

/// Runs `opts.steps` updates of `method` on `obj` from `θ₀`, calling each observer of `observers` on its
/// schedule (see the module documentation for the order of a step). Errors are bad options or inputs, a
/// failing gradient or penalty (as `E::from(SgdError)`), or an observer's error; divergence is an
/// [`RunOutcome`]. Holds a fixed number of length-`p` vectors whatever the number of steps.
pub fn train<O, E>(
    obj: &O,
    theta0: &[f64],
    method: &Optimizer<'_>,
    opts: &TrainOptions,
    observers: &mut [Scheduled<'_, O, E>],
) -> std::result::Result<Training, E>
where
    O: Objective + ?Sized,
    E: From<SgdError>,
{
    let p = obj.dim();
    check_len("theta0", theta0, p)?;
    validate(method, opts)?;
    for o in observers.iter() {
        o.cadence.validate()?;
    }
    let n = obj.n_examples();
    let per_epoch = method.sampler.steps_per_epoch(n);
    let noise = NoiseSampler::new(&method.noise, p)?;
    let s = opts.seeds;
    let mut noise_rng = rng::stream(s.noise.seed, s.noise.stream);
    let mut penalty_rng = rng::stream(s.penalties.seed, s.penalties.stream);
    let mut batches = BatchStream::new(&method.sampler, n, s.sampler.seed, s.sampler.stream)?;
    let (lr, steps) = (opts.lr, opts.steps);
    let mut theta = theta0.to_vec();
    let mut next = theta.clone();
    let mut g = vec![0.0; p];
    let mut d = Vec::with_capacity(p);
    let mut buf: Option<Vec<f64>> = None;
    // The next step at which each observer is due (`None`: only the final iterate).
    let mut due: Vec<Option<usize>> = vec![Some(0); observers.len()];
    let mut gradient_calls = 0;
    let plain = method.transform.is_identity();
    let mut outcome = RunOutcome::Completed;
    'steps: for t in 0..steps {
        let batch = batches.next_batch()?;
        let loss = if plain {
            let l = obj.loss_grad(&theta, batch, &mut g).map_err(SgdError::from)?;
            gradient_calls += 1;
            l
        } else {
            let (l, computed) = transformed_gradient(
                obj,
                &method.transform,
                &theta,
                batch,
                &mut penalty_rng,
                &mut g,
                &mut d,
            )?;
            gradient_calls += usize::from(computed);
            l
        };
        for (i, o) in observers.iter_mut().enumerate() {
            if due[i] != Some(t) {
                continue;
            }
            due[i] = o.cadence.next_after(t, per_epoch);
            let view = StepView {
                step: t,
                theta: &theta,
                objective: obj,
                lr,
                batch: Some(batch),
                loss: Some(loss),
                grad: Some(&g),
                last: false,
            };
            match o.observer.observe(&view)? {
                Control::Continue => {}
                Control::Stop => {
                    outcome = RunOutcome::Stopped { step: t };
                    break 'steps;
                }
                Control::Diverged(v) => {
                    outcome = RunOutcome::Diverged {
                        step: t,
                        blowup: Blowup::Observed(v),
                    };
                    break 'steps;
                }
            }
        }
        if blown(loss, opts.divergence.loss) {
            outcome = RunOutcome::Diverged {
                step: t,
                blowup: Blowup::Loss(loss),
            };
            break;
        }
        let dir: &mut [f64] = if plain { &mut g } else { &mut d };
        noise.add(&mut noise_rng, dir);
        match method.update {
            Update::Plain => {
                for j in 0..p {
                    next[j] = theta[j] - lr * dir[j];
                }
            }
            Update::HeavyBall { momentum } | Update::Nesterov { momentum } => {
                let b = buf.get_or_insert_with(|| vec![0.0; p]);
                let first = t == 0;
                let nesterov = matches!(method.update, Update::Nesterov { .. });
                for j in 0..p {
                    b[j] = if first { dir[j] } else { momentum * b[j] + dir[j] };
                    let u = if nesterov { dir[j] + momentum * b[j] } else { b[j] };
                    next[j] = theta[j] - lr * u;
                }
            }
        }
        if let Some(norm) = norm_blowup(&next, opts.divergence.norm) {
            outcome = RunOutcome::Diverged {
                step: t + 1,
                blowup: Blowup::Norm(norm),
            };
            break;
        }
        std::mem::swap(&mut theta, &mut next);
    }
    if outcome == RunOutcome::Completed {
        for o in observers.iter_mut() {
            let view = StepView {
                step: steps,
                theta: &theta,
                objective: obj,
                lr,
                batch: None,
                loss: None,
                grad: None,
                last: true,
            };
            match o.observer.observe(&view)? {
                Control::Continue => {}
                Control::Stop => {
                    outcome = RunOutcome::Stopped { step: steps };
                    break;
                }
                Control::Diverged(v) => {
                    outcome = RunOutcome::Diverged {
                        step: steps,
                        blowup: Blowup::Observed(v),
                    };
                    break;
                }
            }
        }
    }
    Ok(Training {
        theta,
        outcome,
        gradient_calls,
    })
}

/// `Some(‖θ‖)` when `θ` has a non-finite entry or its norm exceeds `limit`.
fn norm_blowup(theta: &[f64], limit: f64) -> Option<f64> {
    let finite = theta.iter().all(|v| v.is_finite());
    if finite && limit == f64::INFINITY {
        return None;
    }
    let norm = theta.iter().map(|v| v * v).sum::<f64>().sqrt();
    (!finite || !norm.is_finite() || norm > limit).then_some(norm)
}
