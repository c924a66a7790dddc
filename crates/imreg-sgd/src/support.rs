//! Learning the support (Beneventano, Pinto & Poggio 2024; `docs/theory/support.md`): bias-free deep linear
//! or ReLU networks `f(x) = W_L σ(⋯σ(W_1 x))` on sparse-support targets, trained by reshuffled SGD with
//! gradient-norm clipping, tracking the irrelevant first-layer norm `‖W_1[:, r:]‖_F`.
//!
//! The network is the bias-free [`Mlp`] on the run's data ([`SupportNet`]): every gradient is the
//! `imreg-ad` tape's, one reverse pass per step on its batch (full batches are cut into the objective's
//! fixed chunks, so runs are bitwise identical at any thread count).
//!
//! **Loss convention** ([`SupportLoss`]): the authors' notebooks use torch `MSELoss`, `mean (f − y)²`
//! (no ½); the derivation (`docs/theory/support.md` §Decay rate) uses `½ mean (f − y)²`. The ½ halves every
//! gradient; a `TorchMse` run at rate `η` is a `HalfMse` run at `2η`.
//!
//! **Decay rate** (derived in `docs/theory/support.md`): near a minimum of the 2-layer linear net `f = wᵀWx`
//! with label noise, the part of `W_irr = W[:, r:]` orthogonal to the output vector `w` (flat directions)
//! decays like
//! `exp(−γ t)` with `γ = (η²/(2b))((n−b)/(n−1)) E[r²] λ(Σ_irr) λ(K)` per step (½-MSE; `K = I` for two
//! layers), and not at all under GD (`b = n`).
use crate::observe::{Cadence, Control, Scheduled, StepView};
use crate::reg_error::{check_positive, RegError, RegResult};
use crate::regularizers::{Penalty, WeightDecay};
use crate::sampler::{EpochOrder, Sampler};
use crate::train::{
    train, Blowup, Divergence, GradientTransform, Optimizer, RunOutcome, Seeds, StreamId, TrainOptions,
};
use imreg_flow::{Partition, Remainder};
use imreg_objective::data::Regression;
use imreg_objective::models::{Activation, Mlp, MlpSpec};
use imreg_objective::{rng, Batch, LossKind, Objective};

/// The per-example loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SupportLoss {
    /// torch `MSELoss`: `mean (f − y)²` (the notebooks).
    TorchMse,
    /// `½ mean (f − y)²` (the decay-rate derivation).
    HalfMse,
}

/// Settings of one support run.
#[derive(Clone, Debug, PartialEq)]
pub struct SupportConfig {
    /// `[d, h_1, …, 1]` (the paper: `[15, 15, 15, 15, 1]`).
    pub widths: Vec<usize>,
    /// ReLU hidden activations (`false`: a deep linear network, the notebooks' default).
    pub relu: bool,
    /// Support size `r`: the irrelevant columns are `W_1[:, r:]`.
    pub r: usize,
    pub lr: f64,
    /// `None`: full batch (GD). `Some(b)`: reshuffled epochs cut into batches of `b`, the last one smaller
    /// (torch `DataLoader(shuffle=True)`).
    pub batch: Option<usize>,
    pub steps: usize,
    /// Gradient-norm clipping over all parameters (the notebooks: 1.0).
    pub clip: Option<f64>,
    /// torch `weight_decay` (adds `wd θ` to the gradient).
    pub weight_decay: f64,
    pub loss: SupportLoss,
    /// Record every this many steps (and at the last step).
    pub record_every: usize,
    pub seed: u64,
}

impl SupportConfig {
    /// The notebooks' linear-target run: width 15, depth 4, linear, lr 0.1, clipping 1.0, torch MSE.
    pub fn paper(batch: Option<usize>, steps: usize, seed: u64) -> Self {
        SupportConfig {
            widths: vec![15, 15, 15, 15, 1],
            relu: false,
            r: 5,
            lr: 0.1,
            batch,
            steps,
            clip: Some(1.0),
            weight_decay: 0.0,
            loss: SupportLoss::TorchMse,
            record_every: 1000,
            seed,
        }
    }
}

/// The recorded series of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct SupportRun {
    /// Steps at which the series were recorded (0 = init).
    pub steps: Vec<usize>,
    /// `‖W_1[:, r:]‖_F`.
    pub irrelevant_norm: Vec<f64>,
    /// `‖W_1[:, :r]‖_F` (the support's columns).
    pub relevant_norm: Vec<f64>,
    /// `‖P_⊥ W_1[:, r:]‖_F`, `P_⊥ = I − uuᵀ/‖u‖²` with `u = (W_L⋯W_2)ᵀ` the output-side vector of layer 1
    /// (exactly meaningful for linear nets).
    pub perp_norm: Vec<f64>,
    /// Full-data loss (the run's convention).
    pub loss: Vec<f64>,
    /// Final parameters (PyTorch layout, no biases).
    pub theta: Vec<f64>,
}

/// He-normal init (`kaiming_normal_`, fan-in, ReLU gain): `W_ℓ ~ N(0, 2/in_ℓ)`, from `rng::stream(seed, 0)`.
pub fn he_init(widths: &[usize], seed: u64) -> Vec<f64> {
    let mut r = rng::stream(seed, 0);
    let mut theta = Vec::new();
    for w in widths.windows(2) {
        let std = (2.0 / w[0] as f64).sqrt();
        theta.extend(rng::normal_vec(&mut r, w[0] * w[1]).into_iter().map(|v| v * std));
    }
    theta
}

/// The bias-free network `f(x) = W_L σ(⋯σ(W_1 x))` on the run's data, differentiated by `imreg-ad`: it is the
/// bias-free [`Mlp`] (identity or ReLU hidden activation) under the run's loss, `mean (f − y)²` as
/// [`LossKind::Mse`] without the ½ or `½ mean (f − y)²` with it, so each step records one tape on its batch
/// and takes the gradient by reverse mode. Parameters are PyTorch's layout: `W_ℓ` (`[out, in]`, row-major)
/// layer by layer.
pub struct SupportNet {
    widths: Vec<usize>,
    net: Mlp,
}

impl SupportNet {
    /// The network `widths` on `data` under `loss`. Errors unless there are ≥ 2 widths, all ≥ 1, ending in 1
    /// output, with `d` inputs and one target column.
    pub fn new(data: &Regression, widths: &[usize], relu: bool, loss: SupportLoss) -> RegResult<Self> {
        if widths.len() < 2 || widths.contains(&0) || widths.last() != Some(&1) {
            return Err(RegError::invalid(
                "widths",
                format!("need [d, h…, 1] with positive entries, got {widths:?}"),
            ));
        }
        if widths[0] != data.x.ncols() || data.y.ncols() != 1 {
            return Err(RegError::invalid(
                "widths",
                format!(
                    "input width must be d = {} with one target column",
                    data.x.ncols()
                ),
            ));
        }
        let spec = MlpSpec {
            widths: widths.to_vec(),
            activation: if relu {
                Activation::Relu
            } else {
                Activation::Identity
            },
            bias: false,
            loss: LossKind::Mse {
                half: loss == SupportLoss::HalfMse,
            },
        };
        let net = Mlp::regression(spec, data.x.clone(), data.y.clone())?;
        Ok(SupportNet {
            widths: widths.to_vec(),
            net,
        })
    }

    /// Number of parameters.
    pub fn dim(&self) -> usize {
        self.net.dim()
    }

    /// The batch loss on the rows (the run's convention); its gradient is written into `grad`.
    pub fn loss_grad(&self, theta: &[f64], rows: &[usize], grad: &mut [f64]) -> RegResult<f64> {
        Ok(self.net.loss_grad(theta, Batch::Indices(rows), grad)?)
    }

    /// The loss on all the data (the run's convention).
    pub fn full_loss(&self, theta: &[f64]) -> RegResult<f64> {
        Ok(self.net.loss(theta, Batch::Full)?)
    }

    /// `u = (W_L ⋯ W_2)ᵀ`, the output-side vector of the first layer (linear nets).
    pub fn output_vector(&self, theta: &[f64]) -> Vec<f64> {
        let layers = self.widths.len() - 1;
        let mut row = vec![1.0];
        // Layer `l`'s weight ends where layer `l + 1`'s begins; walk them from the output backwards.
        let mut end = self.dim();
        for l in (1..layers).rev() {
            let (inn, out) = (self.widths[l], self.widths[l + 1]);
            let w = &theta[end - inn * out..end];
            end -= inn * out;
            let mut next = vec![0.0; inn];
            for o in 0..out {
                for j in 0..inn {
                    next[j] += row[o] * w[o * inn + j];
                }
            }
            row = next;
        }
        row
    }

    /// `‖W_1[:, :r]‖_F`, the first-layer weights of the support.
    pub fn relevant_norm(&self, theta: &[f64], r: usize) -> f64 {
        let (d, h) = (self.widths[0], self.widths[1]);
        let w1 = &theta[..d * h];
        (0..h)
            .flat_map(|o| &w1[o * d..o * d + r])
            .map(|v| v * v)
            .sum::<f64>()
            .sqrt()
    }

    /// `(‖W_1[:, r:]‖_F, ‖P_⊥ W_1[:, r:]‖_F)`.
    pub fn irrelevant_norms(&self, theta: &[f64], r: usize) -> (f64, f64) {
        let (d, h) = (self.widths[0], self.widths[1]);
        let w1 = &theta[..d * h];
        let u = self.output_vector(theta);
        let uu: f64 = u.iter().map(|v| v * v).sum();
        let mut full = 0.0;
        let mut perp = 0.0;
        for j in r..d {
            let col: Vec<f64> = (0..h).map(|o| w1[o * d + j]).collect();
            let proj: f64 = if uu > 0.0 {
                col.iter().zip(&u).map(|(a, b)| a * b).sum::<f64>() / uu
            } else {
                0.0
            };
            for o in 0..h {
                full += col[o] * col[o];
                let p = col[o] - proj * u[o];
                perp += p * p;
            }
        }
        (full.sqrt(), perp.sqrt())
    }
}

/// Trains from `theta0` (default: [`he_init`] with the config's seed) and records the series.
/// Errors on bad settings; a non-finite loss is [`RegError::Diverged`] with its step.
pub fn train_support(
    data: &Regression,
    cfg: &SupportConfig,
    theta0: Option<Vec<f64>>,
) -> RegResult<SupportRun> {
    check_positive("lr", cfg.lr)?;
    crate::reg_error::check_coefficient("weight_decay", cfg.weight_decay)?;
    if cfg.r > data.x.ncols() {
        return Err(RegError::invalid(
            "r",
            format!("{} exceeds d = {}", cfg.r, data.x.ncols()),
        ));
    }
    let n = data.n();
    let b = cfg.batch.unwrap_or(n);
    if b == 0 || b > n {
        return Err(RegError::invalid(
            "batch",
            format!("must lie in 1..={n}, got {b}"),
        ));
    }
    if let Some(c) = cfg.clip {
        check_positive("clip", c)?;
    }
    let net = SupportNet::new(data, &cfg.widths, cfg.relu, cfg.loss)?;
    let theta = theta0.unwrap_or_else(|| he_init(&cfg.widths, cfg.seed));
    imreg_objective::check_len("theta0", &theta, net.dim())?;
    // GD visits all rows in order as one explicit batch; SGD reshuffles one index list in place (stream 1)
    // and cuts it into batches of `b`, the last one smaller (torch `DataLoader(shuffle=True)`).
    let sampler = if b == n {
        Sampler::FixedPartition {
            partition: Partition::consecutive(n, n, Remainder::Error)?,
        }
    } else {
        Sampler::RandomReshuffling {
            batch_size: b,
            remainder: Remainder::SmallerLastBatch,
            order: EpochOrder::Continued,
        }
    };
    let mut penalties: Vec<Box<dyn Penalty>> = Vec::new();
    if cfg.weight_decay > 0.0 {
        penalties.push(Box::new(WeightDecay::new(cfg.weight_decay)?));
    }
    let method = Optimizer {
        sampler,
        transform: GradientTransform {
            penalties,
            clip: cfg.clip,
            ..Default::default()
        },
        ..Default::default()
    };
    let opts = TrainOptions {
        lr: cfg.lr,
        steps: cfg.steps,
        seeds: Seeds {
            sampler: StreamId {
                seed: cfg.seed,
                stream: 1,
            },
            ..Seeds::from_seed(cfg.seed)
        },
        divergence: Divergence::default(),
    };
    let mut run = SupportRun {
        steps: vec![],
        irrelevant_norm: vec![],
        relevant_norm: vec![],
        perp_norm: vec![],
        loss: vec![],
        theta: vec![],
    };
    let mut record = |at: &StepView<'_, Mlp>| -> RegResult<Control> {
        let (f, p) = net.irrelevant_norms(at.theta, cfg.r);
        let l = net.full_loss(at.theta)?;
        if !l.is_finite() {
            return Err(RegError::Diverged {
                step: at.step,
                what: format!("full loss {l}"),
            });
        }
        run.steps.push(at.step);
        run.irrelevant_norm.push(f);
        run.relevant_norm.push(net.relevant_norm(at.theta, cfg.r));
        run.perp_norm.push(p);
        run.loss.push(l);
        Ok(Control::Continue)
    };
    let every = cfg.record_every.max(1);
    let end = train(
        &net.net,
        &theta,
        &method,
        &opts,
        &mut [Scheduled::new(Cadence::Every(every), &mut record)],
    )?;
    // The update of step t (1-based: `t + 1`) diverged: its batch loss at θ_t, or the iterate θ_{t+1}.
    match end.outcome {
        RunOutcome::Completed => {}
        RunOutcome::Diverged {
            step,
            blowup: Blowup::Loss(l),
        } => {
            return Err(RegError::Diverged {
                step: step + 1,
                what: format!("batch loss {l}"),
            })
        }
        RunOutcome::Diverged { step, blowup } => {
            return Err(RegError::Diverged {
                step,
                what: format!("‖θ‖ = {}", blowup.value()),
            })
        }
        RunOutcome::Stopped { step } => return Err(RegError::invalid("steps", format!("stopped at {step}"))),
    }
    run.theta = end.theta;
    Ok(run)
}

/// The decay-rate setup (`docs/theory/support.md` §Decay rate): `x ~ N(0, I_d)`, `y = Σ_{i<r} x_i + σ ε`,
/// with the irrelevant columns made exactly centered, orthogonal to the relevant columns and to the noise,
/// and whitened (`X_irrᵀX_irr/n = I`), so that `λ(Σ_irr) = 1` exactly and `x_irr` is uncorrelated with
/// `(x_rel, y)` in the sample.
pub fn decay_rate_data(n: usize, d: usize, r: usize, sigma: f64, seed: u64) -> RegResult<Regression> {
    if r == 0 || r >= d || n <= d + 2 {
        return Err(RegError::invalid(
            "decay_rate_data",
            format!("need 0 < r < d and n > d + 2, got n = {n}, d = {d}, r = {r}"),
        ));
    }
    let mut g = rng::stream(seed, 0);
    let x0 = rng::normal_vec(&mut g, n * d);
    let eps = rng::normal_vec(&mut g, n);
    let mut cols: Vec<Vec<f64>> = (0..d).map(|j| (0..n).map(|i| x0[i * d + j]).collect()).collect();
    // Gram–Schmidt of the irrelevant columns against [1, x_rel, ε] and each other, then scale to norm √n.
    let mut basis: Vec<Vec<f64>> = vec![vec![1.0; n]];
    basis.extend(cols[..r].iter().cloned());
    basis.push(eps.clone());
    let mut ortho: Vec<Vec<f64>> = Vec::new();
    for v in basis.into_iter() {
        let mut v = v;
        for q in &ortho {
            let p: f64 = v.iter().zip(q).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(q).for_each(|(a, b)| *a -= p * b);
        }
        let nv = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        ortho.push(v.into_iter().map(|a| a / nv).collect());
    }
    for col in cols.iter_mut().skip(r) {
        for q in &ortho {
            let p: f64 = col.iter().zip(q).map(|(a, b)| a * b).sum();
            col.iter_mut().zip(q).for_each(|(a, b)| *a -= p * b);
        }
        let nv = col.iter().map(|a| a * a).sum::<f64>().sqrt();
        col.iter_mut().for_each(|a| *a /= nv);
        ortho.push(col.clone());
        col.iter_mut().for_each(|a| *a *= (n as f64).sqrt());
    }
    let x = ndarray::Array2::from_shape_fn((n, d), |(i, j)| cols[j][i]);
    let y = ndarray::Array2::from_shape_fn((n, 1), |(i, _)| {
        cols[..r].iter().map(|c| c[i]).sum::<f64>() + sigma * eps[i]
    });
    Ok(Regression::new(x, y)?)
}

/// The measured and predicted decay rate of `‖P_⊥ W_irr‖_F` for one batch size.
#[derive(Clone, Debug, PartialEq)]
pub struct DecayRate {
    pub batch: usize,
    /// `−slope` of the least-squares line through `log ‖P_⊥W_irr‖` against the step.
    pub measured: f64,
    /// `γ = (η²/(2b))((n−b)/(n−1)) E[r²] λ(Σ_irr) λ(K)` with `λ(Σ_irr) = λ(K) = 1` (whitened data,
    /// two layers).
    pub predicted: f64,
    /// `E[r²]` at the GD pre-trained point.
    pub mean_sq_residual: f64,
    /// The recorded steps and `log ‖P_⊥W_irr‖_F` at them (the series the slope is fitted to).
    pub steps: Vec<f64>,
    pub log_perp_norm: Vec<f64>,
}

/// Settings of [`decay_rates`] (the simulation check of `docs/theory/support.md` §Decay rate).
#[derive(Clone, Debug, PartialEq)]
pub struct DecayRateConfig {
    pub n: usize,
    pub d: usize,
    pub r: usize,
    pub width: usize,
    pub sigma: f64,
    pub lr: f64,
    pub pretrain_steps: usize,
    pub steps: usize,
    pub seed: u64,
}

impl Default for DecayRateConfig {
    /// That check's setup: 2-layer linear net, d = 6, r = 2, width 4, n = 400, σ = 0.5, η = 0.05, 6·10⁴
    /// steps.
    fn default() -> Self {
        DecayRateConfig {
            n: 400,
            d: 6,
            r: 2,
            width: 4,
            sigma: 0.5,
            lr: 0.05,
            pretrain_steps: 20_000,
            steps: 60_000,
            seed: 0,
        }
    }
}

/// GD pre-training of the 2-layer linear net (½-MSE) to the minimum, then, from that point, reshuffled SGD
/// with each batch size (`b = n` is GD) for `steps` steps; returns measured and predicted decay rates.
pub fn decay_rates(cfg: &DecayRateConfig, batches: &[usize]) -> RegResult<Vec<DecayRate>> {
    let data = decay_rate_data(cfg.n, cfg.d, cfg.r, cfg.sigma, cfg.seed)?;
    let widths = vec![cfg.d, cfg.width, 1];
    let base = SupportConfig {
        widths: widths.clone(),
        relu: false,
        r: cfg.r,
        lr: cfg.lr,
        batch: None,
        steps: cfg.pretrain_steps,
        clip: None,
        weight_decay: 0.0,
        loss: SupportLoss::HalfMse,
        record_every: cfg.pretrain_steps.max(1),
        seed: cfg.seed,
    };
    let theta0: Vec<f64> = he_init(&widths, cfg.seed).into_iter().map(|v| 0.5 * v).collect();
    let pre = train_support(&data, &base, Some(theta0))?;
    let net = SupportNet::new(&data, &widths, false, SupportLoss::HalfMse)?;
    let mean_sq = 2.0 * net.full_loss(&pre.theta)?;
    let n = cfg.n as f64;
    batches
        .iter()
        .map(|&b| {
            let run = train_support(
                &data,
                &SupportConfig {
                    batch: Some(b),
                    steps: cfg.steps,
                    record_every: (cfg.steps / 200).max(1),
                    seed: cfg.seed + 1 + b as u64,
                    ..base.clone()
                },
                Some(pre.theta.clone()),
            )?;
            let xs: Vec<f64> = run.steps.iter().map(|&s| s as f64).collect();
            let ys: Vec<f64> = run
                .perp_norm
                .iter()
                .map(|v| v.max(f64::MIN_POSITIVE).ln())
                .collect();
            let bf = b as f64;
            Ok(DecayRate {
                batch: b,
                measured: -least_squares_slope(&xs, &ys),
                predicted: cfg.lr * cfg.lr / (2.0 * bf) * (n - bf) / (n - 1.0) * mean_sq,
                mean_sq_residual: mean_sq,
                steps: xs,
                log_perp_norm: ys,
            })
        })
        .collect()
}

/// Slope of the least-squares line `y = a + s x`.
pub fn least_squares_slope(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let mx = xs.iter().sum::<f64>() / n;
    let my = ys.iter().sum::<f64>() / n;
    let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}

/// The largest relative component of a first-layer update orthogonal to the output-side vector `u_t` over
/// a GD (or SGD) run of a linear net: `max_t ‖P_⊥(u_t)(W_1^{t+1} − W_1^t)‖_F / ‖W_1^{t+1} − W_1^t‖_F`. Zero
/// up to rounding, since `∇_{W_1} L = u ρᵀ` for every batch (clipping only rescales it).
pub fn first_layer_update_leak(data: &Regression, cfg: &SupportConfig, steps: usize) -> RegResult<f64> {
    if cfg.relu {
        return Err(RegError::invalid(
            "relu",
            "the rank-one structure of ∇W_1 holds for linear nets",
        ));
    }
    let net = SupportNet::new(data, &cfg.widths, false, cfg.loss)?;
    let (d, h) = (cfg.widths[0], cfg.widths[1]);
    let mut theta = he_init(&cfg.widths, cfg.seed);
    let mut worst: f64 = 0.0;
    let one = SupportConfig {
        steps: 1,
        record_every: 1,
        ..cfg.clone()
    };
    for s in 0..steps {
        let u = net.output_vector(&theta);
        let uu: f64 = u.iter().map(|v| v * v).sum();
        let next = train_support(
            data,
            &SupportConfig {
                seed: cfg.seed + s as u64,
                ..one.clone()
            },
            Some(theta.clone()),
        )?
        .theta;
        let (mut perp, mut tot) = (0.0, 0.0);
        for j in 0..d {
            let dcol: Vec<f64> = (0..h).map(|o| next[o * d + j] - theta[o * d + j]).collect();
            let proj = dcol.iter().zip(&u).map(|(a, b)| a * b).sum::<f64>() / uu;
            for o in 0..h {
                let p = dcol[o] - proj * u[o];
                perp += p * p;
                tot += dcol[o] * dcol[o];
            }
        }
        if tot > 0.0 {
            worst = worst.max((perp / tot).sqrt());
        }
        theta = next;
    }
    Ok(worst)
}

/// Which optimizer a shrink-rate run uses, from the common GD pre-trained point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ShrinkArm {
    /// Reshuffled SGD at rate `lr` with batches of `batch`.
    Sgd { lr: f64, batch: usize },
    /// Full-batch GD at rate `lr`.
    Gd { lr: f64 },
    /// Full-batch GD at rate `lr` with torch `weight_decay` (gradient `+ wd θ`).
    GdWeightDecay { lr: f64, weight_decay: f64 },
}

impl ShrinkArm {
    fn lr(&self) -> f64 {
        match *self {
            ShrinkArm::Sgd { lr, .. } | ShrinkArm::Gd { lr } | ShrinkArm::GdWeightDecay { lr, .. } => lr,
        }
    }
}

/// One run of [`shrink_rates`]: the rates are per unit of time `τ = ηt` (so that GD with weight decay `wd`
/// on a flat direction has rate exactly `wd`, and the second-order SGD rate is `∝ η/b`).
#[derive(Clone, Debug, PartialEq)]
pub struct ShrinkRate {
    pub arm: ShrinkArm,
    /// The SGD noise scale `(η/b)(n−b)/(n−1)` (0 for GD).
    pub noise_scale: f64,
    /// Steps run.
    pub steps: usize,
    /// `−slope` of the least-squares line through `log ‖W_1[:, r:]‖_F` against `τ = ηt`.
    pub rate_irrelevant: f64,
    /// The same for `log ‖W_1[:, :r]‖_F` (the support).
    pub rate_relevant: f64,
    /// `τ = ηt` and `log ‖W_1[:, r:]‖_F` at the recorded steps.
    pub time: Vec<f64>,
    pub log_irrelevant: Vec<f64>,
}

/// Settings of [`shrink_rates`]: how fast SGD, GD and GD with weight decay shrink the irrelevant first-layer
/// weights of a (ReLU) network from a common GD pre-trained point.
#[derive(Clone, Debug, PartialEq)]
pub struct ShrinkRateConfig {
    /// The data of [`decay_rate_data`]: `n` rows, `d` inputs, support `r`, label noise `σ`.
    pub n: usize,
    pub d: usize,
    pub r: usize,
    pub sigma: f64,
    /// Hidden widths: the network is `[d, hidden…, 1]`, bias-free.
    pub hidden: Vec<usize>,
    pub relu: bool,
    /// GD pre-training (½-MSE) from `0.5 ×` [`he_init`].
    pub pretrain_lr: f64,
    pub pretrain_steps: usize,
    /// The SGD grid: every `lr × batch`.
    pub lrs: Vec<f64>,
    pub batches: Vec<usize>,
    /// An SGD run lasts one predicted e-fold of the linear-net rate, `⌈1/γ⌉` steps with
    /// `γ = (η²/(2b))((n−b)/(n−1))E[r²]`, clamped to `min_steps..=max_steps`.
    pub min_steps: usize,
    pub max_steps: usize,
    /// The GD control (rate `gd_lr`, `gd_steps` steps) and GD with `weight_decay` (`wd_steps` steps).
    pub gd_lr: f64,
    pub gd_steps: usize,
    pub weight_decay: f64,
    pub wd_steps: usize,
    pub seed: u64,
}

impl Default for ShrinkRateConfig {
    /// The ReLU setting of the `support.relu-shrink-rate` check: the decay-rate data (`n = 400`, `d = 6`,
    /// `r = 2`, `σ = 0.5`), a bias-free ReLU net `[6, 16, 1]`, GD pre-training at `η = 0.05` for `2·10⁴`
    /// steps, SGD on `η ∈ {0.02, 0.05} × b ∈ {1, 4, 16}` for one predicted e-fold each (`2·10³ ..= 2·10⁵`
    /// steps), GD at `η = 0.05` for `2·10⁴` steps, GD with `wd = 0.01` for `4·10³` steps.
    fn default() -> Self {
        ShrinkRateConfig {
            n: 400,
            d: 6,
            r: 2,
            sigma: 0.5,
            hidden: vec![16],
            relu: true,
            pretrain_lr: 0.05,
            pretrain_steps: 20_000,
            lrs: vec![0.02, 0.05],
            batches: vec![1, 4, 16],
            min_steps: 2_000,
            max_steps: 200_000,
            gd_lr: 0.05,
            gd_steps: 20_000,
            weight_decay: 0.01,
            wd_steps: 4_000,
            seed: 0,
        }
    }
}

/// What [`shrink_rates`] measured.
#[derive(Clone, Debug, PartialEq)]
pub struct ShrinkRates {
    /// `E[r²]` at the pre-trained point.
    pub mean_sq_residual: f64,
    /// `‖W_1[:, r:]‖_F` at the pre-trained point.
    pub start_norm: f64,
    /// The SGD grid, in `lrs × batches` order.
    pub sgd: Vec<ShrinkRate>,
    pub gd: ShrinkRate,
    pub gd_weight_decay: ShrinkRate,
    /// Least-squares slope of `log rate_irrelevant` against `log noise_scale` over the SGD grid (the
    /// second-order theory: 1). `NaN` when a rate is not positive.
    pub slope: f64,
}

/// GD pre-training to a minimum (½-MSE, label noise), then, from that point, every arm of `cfg`; measures
/// the shrink rate of the irrelevant first-layer weights per unit time `ηt`. The runs are independent and
/// run in parallel (each is bitwise reproducible, so the result does not depend on the thread count).
pub fn shrink_rates(cfg: &ShrinkRateConfig) -> RegResult<ShrinkRates> {
    use rayon::prelude::*;
    let data = decay_rate_data(cfg.n, cfg.d, cfg.r, cfg.sigma, cfg.seed)?;
    let mut widths = vec![cfg.d];
    widths.extend(&cfg.hidden);
    widths.push(1);
    let base = SupportConfig {
        widths: widths.clone(),
        relu: cfg.relu,
        r: cfg.r,
        lr: cfg.pretrain_lr,
        batch: None,
        steps: cfg.pretrain_steps,
        clip: None,
        weight_decay: 0.0,
        loss: SupportLoss::HalfMse,
        record_every: cfg.pretrain_steps.max(1),
        seed: cfg.seed,
    };
    let theta0: Vec<f64> = he_init(&widths, cfg.seed).into_iter().map(|v| 0.5 * v).collect();
    let pre = train_support(&data, &base, Some(theta0))?;
    let net = SupportNet::new(&data, &widths, cfg.relu, SupportLoss::HalfMse)?;
    let mean_sq = 2.0 * net.full_loss(&pre.theta)?;
    let start_norm = net.irrelevant_norms(&pre.theta, cfg.r).0;
    let n = cfg.n as f64;
    let mut arms: Vec<(ShrinkArm, usize)> = Vec::new();
    for &lr in &cfg.lrs {
        check_positive("lrs", lr)?;
        for &b in &cfg.batches {
            let bf = b as f64;
            let gamma = lr * lr / (2.0 * bf) * (n - bf) / (n - 1.0) * mean_sq;
            let steps = if gamma > 0.0 {
                ((1.0 / gamma).ceil() as usize).clamp(cfg.min_steps, cfg.max_steps)
            } else {
                cfg.max_steps
            };
            arms.push((ShrinkArm::Sgd { lr, batch: b }, steps));
        }
    }
    arms.push((ShrinkArm::Gd { lr: cfg.gd_lr }, cfg.gd_steps));
    arms.push((
        ShrinkArm::GdWeightDecay {
            lr: cfg.gd_lr,
            weight_decay: cfg.weight_decay,
        },
        cfg.wd_steps,
    ));
    let mut runs = arms
        .par_iter()
        .enumerate()
        .map(|(i, &(arm, steps))| {
            let (batch, weight_decay) = match arm {
                ShrinkArm::Sgd { batch, .. } => (Some(batch), 0.0),
                ShrinkArm::Gd { .. } => (None, 0.0),
                ShrinkArm::GdWeightDecay { weight_decay, .. } => (None, weight_decay),
            };
            let lr = arm.lr();
            let run = train_support(
                &data,
                &SupportConfig {
                    lr,
                    batch,
                    steps,
                    weight_decay,
                    record_every: (steps / 200).max(1),
                    seed: cfg.seed + 1 + i as u64,
                    ..base.clone()
                },
                Some(pre.theta.clone()),
            )?;
            let time: Vec<f64> = run.steps.iter().map(|&s| lr * s as f64).collect();
            let log = |v: &[f64]| -> Vec<f64> { v.iter().map(|x| x.max(f64::MIN_POSITIVE).ln()).collect() };
            let log_irrelevant = log(&run.irrelevant_norm);
            let noise_scale = batch.map_or(0.0, |b| {
                let bf = b as f64;
                lr / bf * (n - bf) / (n - 1.0)
            });
            Ok(ShrinkRate {
                arm,
                noise_scale,
                steps,
                rate_irrelevant: -least_squares_slope(&time, &log_irrelevant),
                rate_relevant: -least_squares_slope(&time, &log(&run.relevant_norm)),
                time,
                log_irrelevant,
            })
        })
        .collect::<RegResult<Vec<ShrinkRate>>>()?;
    let gd_weight_decay = runs.pop().expect("the GD + weight decay arm");
    let gd = runs.pop().expect("the GD arm");
    let slope = if runs.iter().all(|r| r.rate_irrelevant > 0.0) {
        let xs: Vec<f64> = runs.iter().map(|r| r.noise_scale.ln()).collect();
        let ys: Vec<f64> = runs.iter().map(|r| r.rate_irrelevant.ln()).collect();
        least_squares_slope(&xs, &ys)
    } else {
        f64::NAN
    };
    Ok(ShrinkRates {
        mean_sq_residual: mean_sq,
        start_norm,
        sgd: runs,
        gd,
        gd_weight_decay,
        slope,
    })
}
