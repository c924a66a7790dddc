//! The optimizer loop of `imreg run`: GD, SGD with and without replacement, heavy-ball momentum, with the
//! tracked metrics recorded on the full batch every `track.every` steps. Single-threaded and seeded, so a run
//! is bitwise reproducible.
use crate::config::{ExperimentConfig, OptimizerConfig};
use crate::data::STREAM_BATCHES;
use crate::error::{CliError, Result};
use crate::model::Model;
use crate::spectrum::full_sharpness;
use imreg_objective::rng::{stream, ChaCha8Rng};
use imreg_objective::Batch;
use rand::seq::SliceRandom;
use rand::Rng;

/// Loss magnitude treated as divergence (with any NaN or infinity).
pub const DIVERGENCE_LOSS: f64 = 1e100;

/// Draws the minibatch of each step.
pub enum Sampler {
    /// Every step uses all `N` examples.
    Full,
    /// `b` i.i.d. uniform indices per step.
    WithReplacement { b: usize, rng: ChaCha8Rng },
    /// Random reshuffling: a fresh permutation each epoch, consecutive slices of `b` (the last slice of an
    /// epoch may be shorter).
    Reshuffle {
        b: usize,
        rng: ChaCha8Rng,
        perm: Vec<usize>,
        pos: usize,
    },
}

impl Sampler {
    pub fn new(opt: &OptimizerConfig, n: usize, seed: u64) -> Sampler {
        let rng = stream(seed, STREAM_BATCHES);
        match (opt.batch_size(), opt.replacement()) {
            (None, _) => Sampler::Full,
            (Some(b), true) => Sampler::WithReplacement { b, rng },
            (Some(b), false) => Sampler::Reshuffle {
                b,
                rng,
                perm: (0..n).collect(),
                pos: n,
            },
        }
    }

    /// The next batch (`None` for the full batch).
    pub fn next_batch(&mut self, n: usize) -> Option<Vec<usize>> {
        match self {
            Sampler::Full => None,
            Sampler::WithReplacement { b, rng } => Some((0..*b).map(|_| rng.random_range(0..n)).collect()),
            Sampler::Reshuffle { b, rng, perm, pos } => {
                if *pos >= n {
                    perm.shuffle(rng);
                    *pos = 0;
                }
                let end = (*pos + *b).min(n);
                let out = perm[*pos..end].to_vec();
                *pos = end;
                Some(out)
            }
        }
    }
}

/// Tracked metrics: named columns, one row per recorded step.
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<f64>>,
}

impl Metrics {
    /// The values of one column (empty if absent).
    pub fn column(&self, name: &str) -> Vec<f64> {
        match self.columns.iter().position(|c| *c == name) {
            Some(j) => self.rows.iter().map(|r| r[j]).collect(),
            None => Vec::new(),
        }
    }
    /// CSV text with a header; numbers in shortest round-trip form.
    pub fn to_csv(&self) -> String {
        let mut s = self.columns.join(",");
        s.push('\n');
        for r in &self.rows {
            s.push_str(&r.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(","));
            s.push('\n');
        }
        s
    }
}

/// What a training run produced.
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    pub theta: Vec<f64>,
    pub metrics: Metrics,
    /// The step at which the loss or the parameters became non-finite (or the loss exceeded
    /// [`DIVERGENCE_LOSS`]); training stopped there.
    pub diverged_at: Option<usize>,
    /// Optimizer steps taken.
    pub steps_run: usize,
}

fn failed(step: usize, e: impl std::fmt::Display) -> CliError {
    CliError::Failed(format!("step {step}: {e}"))
}

/// Records the tracked metrics at `step`; returns the loss.
fn record(model: &Model, theta: &[f64], step: usize, cfg: &ExperimentConfig, m: &mut Metrics) -> Result<f64> {
    let (loss, g) = model.loss_grad(theta).map_err(|e| failed(step, e))?;
    let mut row = vec![step as f64];
    if cfg.track.loss {
        row.push(loss);
    }
    if cfg.track.grad_norm {
        row.push(g.iter().map(|v| v * v).sum::<f64>().sqrt());
    }
    if cfg.track.sharpness {
        let s = if loss.is_finite() && theta.iter().all(|v| v.is_finite()) {
            full_sharpness(model.objective(), theta, cfg.seed).map_err(|e| failed(step, e))?
        } else {
            f64::NAN
        };
        row.push(s);
    }
    if cfg.track.accuracy {
        row.push(model.accuracy(theta).unwrap_or(f64::NAN));
    }
    m.rows.push(row);
    Ok(loss)
}

/// Runs the optimizer of `cfg` from `theta0`. `tick` is called after every step (progress bars).
pub fn train(
    model: &Model,
    theta0: Vec<f64>,
    cfg: &ExperimentConfig,
    tick: &dyn Fn(),
) -> Result<TrainOutcome> {
    let obj = model.objective();
    let n = obj.n_examples();
    let mut columns = vec!["step"];
    for (on, name) in [
        (cfg.track.loss, "loss"),
        (cfg.track.grad_norm, "grad_norm"),
        (cfg.track.sharpness, "sharpness"),
        (cfg.track.accuracy, "accuracy"),
    ] {
        if on {
            columns.push(name);
        }
    }
    let mut metrics = Metrics {
        columns,
        rows: Vec::new(),
    };
    let mut theta = theta0;
    let mut velocity = vec![0.0; theta.len()];
    let mut grad = vec![0.0; theta.len()];
    let mut sampler = Sampler::new(&cfg.optimizer, n, cfg.seed);
    let lr = cfg.optimizer.lr();
    let beta = match cfg.optimizer {
        OptimizerConfig::Momentum { beta, .. } => Some(beta),
        _ => None,
    };
    let diverged = |loss: f64, theta: &[f64]| {
        !(loss.is_finite() && loss.abs() < DIVERGENCE_LOSS) || theta.iter().any(|v| !v.is_finite())
    };
    let loss0 = record(model, &theta, 0, cfg, &mut metrics)?;
    if diverged(loss0, &theta) {
        return Ok(TrainOutcome {
            theta,
            metrics,
            diverged_at: Some(0),
            steps_run: 0,
        });
    }
    for step in 1..=cfg.steps {
        let batch_ix = sampler.next_batch(n);
        let batch = match &batch_ix {
            Some(ix) => Batch::Indices(ix),
            None => Batch::Full,
        };
        let batch_loss = obj
            .loss_grad(&theta, batch, &mut grad)
            .map_err(|e| failed(step, e))?;
        match beta {
            Some(b) => {
                for ((t, v), g) in theta.iter_mut().zip(&mut velocity).zip(&grad) {
                    *v = b * *v + g;
                    *t -= lr * *v;
                }
            }
            None => theta.iter_mut().zip(&grad).for_each(|(t, g)| *t -= lr * g),
        }
        tick();
        let blown = diverged(batch_loss, &theta);
        if step % cfg.track.every == 0 || step == cfg.steps || blown {
            let loss = if blown {
                f64::NAN
            } else {
                record(model, &theta, step, cfg, &mut metrics)?
            };
            if blown || diverged(loss, &theta) {
                if blown {
                    let mut row = vec![f64::NAN; metrics.columns.len()];
                    row[0] = step as f64;
                    metrics.rows.push(row);
                }
                return Ok(TrainOutcome {
                    theta,
                    metrics,
                    diverged_at: Some(step),
                    steps_run: step,
                });
            }
        }
    }
    Ok(TrainOutcome {
        theta,
        metrics,
        diverged_at: None,
        steps_run: cfg.steps,
    })
}
