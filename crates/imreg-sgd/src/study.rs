//! A small, reproducible generalization study on the embedded UCI digits: small-LR SGD vs large-LR SGD vs
//! small-LR SGD plus each explicit regularizer, over several seeds, reporting mean ± standard error of the
//! test accuracy, the final sharpness `λ_max(H)` (Lanczos, full training set) and `Tr F` (exact over the
//! classes, on the first `fisher_examples` training examples). Every run is a pure function of
//! `(config, arm, seed)`; runs execute in parallel and are collected in a fixed order.
//!
//! The outcome is reported as measured, whatever it is: the seeds themselves warn that CIFAR findings
//! often reverse on other data.
use crate::observe::Accuracy;
use crate::reg_error::{RegError, RegResult};
use crate::regularizers::fisher::{FisherPenalty, NormPower};
use crate::regularizers::gradient_penalty::{GradientPenalty, InputGradientPenalty, RandomLabelPenalty};
use crate::regularizers::micro_batch::{AverageJacobian, FisherTrace, MicroBatchGradNorm, UnitJacobian};
use crate::regularizers::smith::SmithStochastic;
use crate::regularizers::{NetworkModel, Penalty};
use crate::sampler::{EpochOrder, Sampler};
use crate::train::{
    train as train_loop, Blowup, Divergence, GradientTransform, Optimizer, RunOutcome, Seeds, StreamId,
    TrainOptions,
};
use imreg_flow::Remainder;
use imreg_objective::data::digits_split;
use imreg_objective::models::{Activation, Mlp, MlpSpec};
use imreg_objective::{Batch, LossKind};
use rayon::prelude::*;

/// The arms of the study.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arm {
    SmallLr,
    LargeLr,
    /// Smith's per-step λ-term with `λ = lr_large − lr_small` (so `ε + λ` = the large rate).
    Smith,
    Gn,
    Ft,
    Aj,
    Uj,
    /// Fisher penalty, unsquared norm (the slide's form).
    Fp,
    Gp,
    GpX,
    GpR,
}

impl Arm {
    /// All arms in report order.
    pub const ALL: [Arm; 11] = [
        Arm::SmallLr,
        Arm::LargeLr,
        Arm::Smith,
        Arm::Gn,
        Arm::Ft,
        Arm::Aj,
        Arm::Uj,
        Arm::Fp,
        Arm::Gp,
        Arm::GpX,
        Arm::GpR,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Arm::SmallLr => "small-LR SGD",
            Arm::LargeLr => "large-LR SGD",
            Arm::Smith => "small-LR + Smith λ",
            Arm::Gn => "small-LR + GN",
            Arm::Ft => "small-LR + FT",
            Arm::Aj => "small-LR + AJ",
            Arm::Uj => "small-LR + UJ",
            Arm::Fp => "small-LR + FP (unsquared)",
            Arm::Gp => "small-LR + GP",
            Arm::GpX => "small-LR + GP_x",
            Arm::GpR => "small-LR + GP_r",
        }
    }
}

/// Settings of [`run_study`]. Penalty coefficients follow the Smith/Novack correspondence
/// `λ_GN = (ε_large − ε_small)/4` unless stated.
#[derive(Clone, Debug, PartialEq)]
pub struct StudyConfig {
    /// Training examples (the rest of the 1797 digits are the test set).
    pub n_train: usize,
    pub hidden: usize,
    pub batch: usize,
    /// Micro-batch size of GN/FT/AJ/UJ (must divide `batch`).
    pub micro: usize,
    pub steps: usize,
    pub lr_small: f64,
    pub lr_large: f64,
    /// Coefficients: GN, FT, GP, GP_r use `lambda_gn`; AJ, UJ use `lambda_jac`; FP uses `alpha_fp`; GP_x
    /// uses `alpha_gpx`.
    pub lambda_gn: f64,
    pub lambda_jac: f64,
    pub alpha_fp: f64,
    pub alpha_gpx: f64,
    pub seeds: Vec<u64>,
    pub arms: Vec<Arm>,
    /// Examples for `Tr F`.
    pub fisher_examples: usize,
    /// Seed of the train/test split (fixed across runs).
    pub split_seed: u64,
}

impl Default for StudyConfig {
    /// About a minute on 2 cores.
    fn default() -> Self {
        StudyConfig {
            n_train: 1024,
            hidden: 32,
            batch: 128,
            micro: 16,
            steps: 800,
            lr_small: 0.05,
            lr_large: 0.5,
            lambda_gn: 0.1125,
            lambda_jac: 0.01,
            alpha_fp: 0.05,
            alpha_gpx: 0.05,
            seeds: vec![0, 1, 2, 3, 4],
            arms: Arm::ALL.to_vec(),
            fisher_examples: 200,
            split_seed: 2024,
        }
    }
}

/// One run's final measurements.
#[derive(Clone, Debug, PartialEq)]
pub struct RunResult {
    pub arm: Arm,
    pub seed: u64,
    /// `None` if the run diverged (with the step in `diverged_at`).
    pub test_accuracy: Option<f64>,
    pub train_loss: Option<f64>,
    pub sharpness: Option<f64>,
    pub fisher_trace: Option<f64>,
    pub diverged_at: Option<usize>,
}

/// Mean ± standard error over the seeds that did not diverge.
#[derive(Clone, Debug, PartialEq)]
pub struct ArmSummary {
    pub arm: Arm,
    pub runs: usize,
    pub diverged: usize,
    pub test_accuracy: (f64, f64),
    pub train_loss: (f64, f64),
    pub sharpness: (f64, f64),
    pub fisher_trace: (f64, f64),
}

/// Everything a study measured.
#[derive(Clone, Debug, PartialEq)]
pub struct StudyReport {
    pub config: StudyConfig,
    pub runs: Vec<RunResult>,
    pub summary: Vec<ArmSummary>,
}

fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (m, f64::NAN);
    }
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

impl StudyReport {
    /// A Markdown table of the summary.
    pub fn to_markdown(&self) -> String {
        let mut s = String::from("| arm | test accuracy | train loss | sharpness λ_max | Tr F | diverged |\n|---|---|---|---|---|---|\n");
        for a in &self.summary {
            s += &format!(
                "| {} | {:.4} ± {:.4} | {:.4} ± {:.4} | {:.3} ± {:.3} | {:.3} ± {:.3} | {}/{} |\n",
                a.arm.label(),
                a.test_accuracy.0,
                a.test_accuracy.1,
                a.train_loss.0,
                a.train_loss.1,
                a.sharpness.0,
                a.sharpness.1,
                a.fisher_trace.0,
                a.fisher_trace.1,
                a.diverged,
                a.runs
            );
        }
        s
    }
}

fn run_one(
    cfg: &StudyConfig,
    train: &Mlp,
    (test, test_labels): (&Mlp, &[usize]),
    arm: Arm,
    seed: u64,
) -> RegResult<RunResult> {
    let lr = if arm == Arm::LargeLr {
        cfg.lr_large
    } else {
        cfg.lr_small
    };
    let m: &dyn NetworkModel = train.objective();
    let penalty: Option<Box<dyn Penalty + '_>> = match arm {
        Arm::SmallLr | Arm::LargeLr => None,
        Arm::Smith => Some(Box::new(SmithStochastic::new(m, cfg.lr_large - cfg.lr_small)?)),
        Arm::Gn => Some(Box::new(MicroBatchGradNorm::new(m, cfg.micro, cfg.lambda_gn)?)),
        Arm::Ft => Some(Box::new(FisherTrace::new(m, cfg.micro, cfg.lambda_gn)?)),
        Arm::Aj => Some(Box::new(AverageJacobian::new(m, cfg.micro, cfg.lambda_jac)?)),
        Arm::Uj => Some(Box::new(UnitJacobian::new(m, cfg.micro, cfg.lambda_jac)?)),
        Arm::Fp => Some(Box::new(FisherPenalty::new(
            m,
            NormPower::Unsquared,
            cfg.alpha_fp,
        )?)),
        Arm::Gp => Some(Box::new(GradientPenalty::new(m, cfg.lambda_gn)?)),
        Arm::GpX => Some(Box::new(InputGradientPenalty::new(m, cfg.alpha_gpx)?)),
        Arm::GpR => Some(Box::new(RandomLabelPenalty::new(m, cfg.lambda_gn)?)),
    };
    // Reshuffled epochs of `batch` (the last `n mod batch` examples dropped), one permutation reshuffled in
    // place from stream 1; penalty randomness from stream 2; the micro-batch penalties' loss reused.
    let method = Optimizer {
        sampler: Sampler::RandomReshuffling {
            batch_size: cfg.batch,
            remainder: Remainder::Drop,
            order: EpochOrder::Continued,
        },
        transform: GradientTransform {
            penalties: penalty.into_iter().collect(),
            reuse_penalty_loss: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let opts = TrainOptions {
        lr,
        steps: cfg.steps,
        seeds: Seeds {
            sampler: StreamId { seed, stream: 1 },
            noise: StreamId { seed, stream: 3 },
            penalties: StreamId { seed, stream: 2 },
        },
        divergence: Divergence::default(),
    };
    let m_obj: &dyn imreg_objective::Objective = m;
    let end = train_loop::<_, RegError>(m_obj, &train.init_params(seed, 1.0), &method, &opts, &mut [])?;
    // The update of step t diverged: its batch loss (at θ_t) or the new iterate θ_{t+1}.
    let diverged_at = match end.outcome {
        RunOutcome::Diverged {
            step,
            blowup: Blowup::Norm(_),
        } => Some(step - 1),
        o => o.diverged_at(),
    };
    if diverged_at.is_some() {
        return Ok(RunResult {
            arm,
            seed,
            test_accuracy: None,
            train_loss: None,
            sharpness: None,
            fisher_trace: None,
            diverged_at,
        });
    }
    let theta = end.theta;
    use imreg_objective::Objective;
    let acc = Some(Accuracy::measure(test, &theta, test_labels)?);
    let loss = train.loss(&theta, Batch::Full)?;
    let lopts = imreg_spectra::LanczosOptions {
        max_iter: 40,
        seed,
        ..Default::default()
    };
    let sharp = imreg_spectra::sharpness(train, &theta, Batch::Full, &lopts)?.value;
    let fe: Vec<usize> = (0..cfg.fisher_examples.min(cfg.n_train)).collect();
    let trf = imreg_spectra::fisher_trace(
        train,
        &theta,
        Batch::Indices(&fe),
        imreg_spectra::FisherSampling::Exact,
    )?;
    Ok(RunResult {
        arm,
        seed,
        test_accuracy: acc,
        train_loss: Some(loss),
        sharpness: Some(sharp),
        fisher_trace: Some(trf),
        diverged_at: None,
    })
}

/// Runs every `(arm, seed)` of the config (in parallel; collected in arm-then-seed order).
pub fn run_study(cfg: &StudyConfig) -> RegResult<StudyReport> {
    if cfg.batch == 0 || cfg.batch > cfg.n_train || cfg.n_train >= imreg_objective::data::digits::DIGITS_N {
        return Err(RegError::invalid(
            "batch",
            format!(
                "need 0 < batch ≤ n_train < 1797, got {} and {}",
                cfg.batch, cfg.n_train
            ),
        ));
    }
    crate::regularizers::micro_batch_count(cfg.batch, cfg.micro)?;
    if cfg.lr_large.partial_cmp(&cfg.lr_small) != Some(std::cmp::Ordering::Greater) {
        return Err(RegError::invalid("lr_large", "must exceed lr_small"));
    }
    let (tr, te) = digits_split(cfg.n_train, cfg.split_seed)?;
    let spec = MlpSpec {
        widths: vec![64, cfg.hidden, 10],
        activation: Activation::Tanh,
        bias: true,
        loss: LossKind::CrossEntropy,
    };
    let train = Mlp::classification(spec.clone(), tr.x, tr.labels)?;
    let test_labels = te.labels.clone();
    let test = Mlp::classification(spec, te.x, te.labels)?;
    let jobs: Vec<(Arm, u64)> = cfg
        .arms
        .iter()
        .flat_map(|&a| cfg.seeds.iter().map(move |&s| (a, s)))
        .collect();
    let runs: Vec<RunResult> = jobs
        .par_iter()
        .map(|&(a, s)| run_one(cfg, &train, (&test, &test_labels), a, s))
        .collect::<RegResult<_>>()?;
    let summary = cfg
        .arms
        .iter()
        .map(|&arm| {
            let rs: Vec<&RunResult> = runs.iter().filter(|r| r.arm == arm).collect();
            let pick = |f: fn(&RunResult) -> Option<f64>| {
                mean_se(&rs.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
            };
            ArmSummary {
                arm,
                runs: rs.len(),
                diverged: rs.iter().filter(|r| r.diverged_at.is_some()).count(),
                test_accuracy: pick(|r| r.test_accuracy),
                train_loss: pick(|r| r.train_loss),
                sharpness: pick(|r| r.sharpness),
                fisher_trace: pick(|r| r.fisher_trace),
            }
        })
        .collect();
    Ok(StudyReport {
        config: cfg.clone(),
        runs,
        summary,
    })
}
