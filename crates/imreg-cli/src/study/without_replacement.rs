//! Beneventano (2023), *On the Trajectories of SGD Without Replacement*, on the CNN preset `cnn-relu`
//! (cross-entropy, PyTorch initialization) and a small class-balanced MNIST subset. The theory is derived in
//! `docs/theory/without-replacement.md`; the measurements are `imreg_sgd::without_replacement`'s.
//!
//! Arms, from the same initialization per seed, at the same step size and number of steps: SGD without
//! replacement (reshuffled epochs, batch `b`), SGD with replacement (i.i.d. batches of `b`), noise-injected GD
//! `θ ← θ − η(∇L + ξ)`, `ξ ~ N(0, σ²I)` with `σ` matched to SGD's batch noise at the initialization
//! (`pσ² = tr S(θ₀)`, `S = ((n−b)/(n−1))Σ/b`, σ rounded to six significant digits), and plain GD as the deterministic reference. Two groups:
//!
//! - `flat`: PyTorch initialization; at the end of each run, the top Hessian eigenpairs (Lanczos) of the
//!   run's own endpoint define the sharp directions and everything else is flat. Measured: the distance
//!   travelled along the flat directions `‖(I − VVᵀ)(θ_T − θ₀)‖` (and along the sharp ones), and the
//!   weighted noise trace `T_w = Σ_j ŵ_j v_jᵀΣv_j + (tr Σ − Σ_j v_jᵀΣv_j)` with the epoch weights
//!   `ŵ_j = epoch_weight(ηλ_j, k)/(k(k−1)/2)` of the regularizer that SGD without replacement adds.
//! - `saddle`: the PyTorch initialization scaled by `SADDLE_SCALE` (near the saddle at `θ = 0`, where the
//!   balanced classes make every gradient vanish); measured: the escape time, the first recorded step whose
//!   training loss is at most `ESCAPE_FRACTION · ln 10` (censored at the horizon when never reached).
//!
//! Every setting below was fixed from the source before any result was seen. Verdicts compare per-seed
//! paired differences (same initialization) with `z = 2` standard errors ([`ClaimOutcome::of_effect`]).
use super::{
    fmt_mean_se, mean_se, ClaimOutcome, FinishedRun, Study, StudyDataset, StudyOptions, StudyReport,
    StudyRun, StudyScale, Table, Verdict,
};
use crate::config::{ExperimentConfig, ShippedConfig};
use crate::error::{CliError, Result};
use crate::experiment::prepare;
use imreg_plot::{Figure, Series};
use imreg_sgd::without_replacement::{
    first_step_at_most, flat_and_sharp_norms, matched_isotropic_sigma, top_hessian_pairs,
    weighted_noise_trace,
};
use std::collections::BTreeMap;
use std::path::Path;

/// SGD without replacement vs with replacement vs noise-injected GD.
pub struct WithoutReplacement;

/// Standard errors of a paired difference that count as an effect.
const Z: f64 = 2.0;
/// The saddle group's initialization: PyTorch's, times this factor.
const SADDLE_SCALE: f64 = 0.1;
/// Escape: the training loss at most this fraction of `ln 10` (the loss at `θ = 0`).
const ESCAPE_FRACTION: f64 = 0.9;

const FLAT: &str = "flat";
const SADDLE: &str = "saddle";
const WOR: &str = "SGD w/o replacement";
const WR: &str = "SGD with replacement";
const NOISY: &str = "noise-injected GD";
const GD: &str = "GD";
const ARMS: [&str; 4] = [WOR, WR, NOISY, GD];

/// The sizes of one instance.
#[derive(Clone, Debug, PartialEq)]
pub struct WithoutReplacementProtocol {
    /// Training examples (`n/10` per class of the shipped training part).
    pub n: usize,
    /// Batch size `b` (divides `n`; `k = n/b` steps per epoch).
    pub batch: usize,
    pub epochs: usize,
    pub lr: f64,
    /// Loss rows every this many steps.
    pub every: usize,
    /// Top Hessian eigenpairs taken as sharp, from `2 × sharp` Lanczos steps.
    pub sharp: usize,
}

impl WithoutReplacementProtocol {
    pub fn of(scale: StudyScale) -> WithoutReplacementProtocol {
        let (n, batch, epochs, every, sharp) = match scale {
            StudyScale::Smoke => (100, 10, 2, 5, 4),
            StudyScale::Reduced => (200, 10, 5, 5, 10),
            StudyScale::Full => (1000, 50, 30, 10, 20),
        };
        WithoutReplacementProtocol {
            n,
            batch,
            epochs,
            lr: 0.05,
            every,
            sharp,
        }
    }

    /// Steps per epoch `k`.
    pub fn k(&self) -> usize {
        self.n / self.batch
    }

    pub fn steps(&self) -> usize {
        self.epochs * self.k()
    }
}

/// The optimizer table of `arm` (`sigma`: the matched noise level).
fn optimizer(arm: &str, p: &WithoutReplacementProtocol, sigma: f64) -> String {
    let lr = p.lr;
    match arm {
        WOR => format!(
            "kind = \"sgd\"\nlr = {lr:?}\nbatch_size = {}\nreplacement = false\n",
            p.batch
        ),
        WR => format!(
            "kind = \"sgd\"\nlr = {lr:?}\nbatch_size = {}\nreplacement = true\n",
            p.batch
        ),
        NOISY => format!("kind = \"noisy_gd\"\nlr = {lr:?}\nsigma = {sigma:?}\n"),
        _ => format!("kind = \"gd\"\nlr = {lr:?}\n"),
    }
}

/// The config of `arm` in `group` for `seed`.
fn config(
    p: &WithoutReplacementProtocol,
    group: &str,
    arm: &str,
    sigma: f64,
    seed: u64,
) -> Result<ExperimentConfig> {
    let scale = if group == SADDLE { SADDLE_SCALE } else { 1.0 };
    let text = format!(
        "seed = {seed}\nsteps = {steps}\n\
         [model]\nkind = \"network\"\npreset = \"cnn-relu\"\ninput_shape = [1, 28, 28]\nloss = \"cross_entropy\"\n\
         [init]\nscheme = \"pytorch\"\nscale = {scale:?}\n\
         [optimizer]\n{opt}\
         [track]\nevery = {every}\n",
        steps = p.steps(),
        opt = optimizer(arm, p, sigma),
        every = p.every,
    );
    let mut cfg = ExperimentConfig::from_toml_str(&text, Path::new("study without-replacement"))?;
    cfg.data = Some(StudyDataset::Mnist.data(ShippedConfig {
        per_class: Some(p.n / 10),
        ..ShippedConfig::default()
    }));
    Ok(cfg)
}

fn failed(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::Failed(format!("study without-replacement: {what}: {e}"))
}

impl Study for WithoutReplacement {
    fn name(&self) -> &'static str {
        "without-replacement"
    }

    fn claims(&self) -> &'static str {
        "Beneventano (2023): the trajectories of SGD without replacement differ from those of SGD with \
         replacement and of noise-injected GD: it travels flat regions of the loss differently (farther), may \
         escape saddles faster, and implicitly regularizes the trace of the noise covariance weighted towards \
         the flat (small and negative curvature) directions, so it ends where that weighted trace is smaller."
    }

    fn datasets(&self) -> &'static [StudyDataset] {
        &[StudyDataset::Mnist]
    }

    fn runs(&self, opts: &StudyOptions) -> Result<Vec<StudyRun>> {
        let p = WithoutReplacementProtocol::of(opts.scale);
        let mut out = Vec::new();
        for group in [FLAT, SADDLE] {
            for &seed in &opts.seeds {
                // σ of noise-injected GD: SGD's batch-noise variance at this seed's initialization.
                let gd = config(&p, group, GD, 0.0, seed)?;
                let prep = prepare(gd, Path::new("study without-replacement"))?;
                let sigma = matched_isotropic_sigma(prep.model.objective(), &prep.theta0, p.batch)
                    .map_err(|e| failed("matched noise", e))?;
                // Six significant digits: a short decimal reads back as the same f64 from the manifest's
                // JSON and the run's TOML.
                let sigma: f64 = format!("{sigma:.5e}")
                    .parse()
                    .map_err(|e| failed("matched noise", e))?;
                for arm in ARMS {
                    out.push(StudyRun {
                        arm: arm.into(),
                        group: group.into(),
                        seed,
                        config: config(&p, group, arm, sigma, seed)?,
                    });
                }
            }
        }
        Ok(out)
    }

    fn report(&self, opts: &StudyOptions, runs: &[FinishedRun], out: &Path) -> Result<StudyReport> {
        let p = WithoutReplacementProtocol::of(opts.scale);
        let steps = p.steps();
        let threshold = ESCAPE_FRACTION * 10f64.ln();
        // Per (group, arm, seed): the measured quantities.
        let mut flat: BTreeMap<(String, u64), FlatMeasure> = BTreeMap::new();
        let mut escape: BTreeMap<(String, u64), (usize, bool)> = BTreeMap::new();
        let mut diverged: Vec<String> = Vec::new();
        let mut loss_series: Vec<(String, u64, Points)> = Vec::new();
        for (index, r) in runs.iter().enumerate() {
            let (arm, seed) = (r.run.arm.clone(), r.run.seed);
            if let Some(step) = r.diverged_at {
                diverged.push(format!("{} {} seed {seed} at step {step}", r.run.group, arm));
                continue;
            }
            let loss = r.series.get("loss").cloned().unwrap_or_default();
            if r.run.group == SADDLE {
                let t = first_step_at_most(&loss, threshold);
                escape.insert((arm.clone(), seed), (t.unwrap_or(steps), t.is_some()));
                loss_series.push((arm, seed, loss));
                continue;
            }
            let dir = out.join(format!("run-{index:04}"));
            flat.insert((arm, seed), measure_flat(&p, r, &dir)?);
        }
        let mut md = String::new();
        let mut json = serde_json::Map::new();
        // Table 1: flat group.
        let mut t = Table::new(&[
            "arm",
            "seeds",
            "‖P_flat(θ_T − θ₀)‖",
            "‖P_sharp(θ_T − θ₀)‖",
            "tr Σ(θ_T)",
            "weighted trace T_w(θ_T)",
            "train loss",
            "λ_max(θ_T)",
        ]);
        let col = |arm: &str, f: &dyn Fn(&FlatMeasure) -> f64| -> Vec<f64> {
            flat.iter()
                .filter(|((a, _), _)| a == arm)
                .map(|(_, m)| f(m))
                .collect()
        };
        for arm in ARMS {
            let seeds = col(arm, &|m| m.flat_distance).len();
            let cell = |f: &dyn Fn(&FlatMeasure) -> f64, d: usize| fmt_mean_se(mean_se(&col(arm, f)), d);
            t.row([
                arm.to_string(),
                seeds.to_string(),
                cell(&|m| m.flat_distance, 4),
                cell(&|m| m.sharp_distance, 4),
                cell(&|m| m.trace, 4),
                cell(&|m| m.weighted, 4),
                cell(&|m| m.loss, 4),
                cell(&|m| m.lambda_max, 3),
            ]);
            json.insert(
                format!("flat/{arm}"),
                serde_json::json!({
                    "flat_distance": col(arm, &|m| m.flat_distance),
                    "sharp_distance": col(arm, &|m| m.sharp_distance),
                    "trace": col(arm, &|m| m.trace),
                    "weighted_trace": col(arm, &|m| m.weighted),
                    "loss": col(arm, &|m| m.loss),
                    "lambda_max": col(arm, &|m| m.lambda_max),
                }),
            );
        }
        md.push_str(&format!(
            "Flat group: n = {}, b = {} (k = {} steps per epoch), η = {}, {} epochs ({steps} steps), sharp \
             directions = the top {} Hessian eigenpairs of each endpoint ({} Lanczos steps). Mean ± SE over seeds.\n\n{}",
            p.n,
            p.batch,
            p.k(),
            p.lr,
            p.epochs,
            p.sharp,
            2 * p.sharp,
            t.markdown()
        ));
        // Table 2: saddle group.
        let mut t = Table::new(&["arm", "seeds", "escape step", "escaped"]);
        for arm in ARMS {
            let v: Vec<(usize, bool)> = escape
                .iter()
                .filter(|((a, _), _)| a == arm)
                .map(|(_, v)| *v)
                .collect();
            let times: Vec<f64> = v.iter().map(|(t, _)| *t as f64).collect();
            t.row([
                arm.to_string(),
                v.len().to_string(),
                fmt_mean_se(mean_se(&times), 1),
                format!("{}/{}", v.iter().filter(|(_, e)| *e).count(), v.len()),
            ]);
            json.insert(
                format!("saddle/{arm}"),
                serde_json::json!({ "escape_step": times }),
            );
        }
        md.push_str(&format!(
            "\nSaddle group: initialization {SADDLE_SCALE} × PyTorch's; escape = first recorded step (every {}) \
             with training loss ≤ {ESCAPE_FRACTION} ln 10 = {threshold:.4}; runs that never escape count as \
             {steps} (censored).\n\n{}",
            p.every,
            t.markdown()
        ));
        if !diverged.is_empty() {
            md.push_str(&format!("\nDiverged (left out): {}.\n", diverged.join("; ")));
        }
        // Verdicts: paired per-seed differences.
        let paired = |a: &str, b: &str, f: &dyn Fn(&FlatMeasure) -> f64| -> Vec<f64> {
            opts.seeds
                .iter()
                .filter_map(|s| Some(f(flat.get(&(a.to_string(), *s))?) - f(flat.get(&(b.to_string(), *s))?)))
                .collect()
        };
        let paired_escape = |slow: &str, fast: &str| -> Vec<f64> {
            opts.seeds
                .iter()
                .filter_map(|s| {
                    let a = escape.get(&(slow.to_string(), *s))?.0 as f64;
                    let b = escape.get(&(fast.to_string(), *s))?.0 as f64;
                    Some(a - b)
                })
                .collect()
        };
        let verdict = |claim: String, diffs: Vec<f64>, digits: usize| {
            let (m, se) = mean_se(&diffs);
            let outcome = if diffs.len() < 2 {
                ClaimOutcome::Inconclusive
            } else {
                ClaimOutcome::of_effect(m, se, Z)
            };
            Verdict {
                claim,
                outcome,
                evidence: format!(
                    "paired difference {} over {} seeds",
                    fmt_mean_se((m, se), digits),
                    diffs.len()
                ),
            }
        };
        let mut verdicts = Vec::new();
        for other in [WR, NOISY] {
            verdicts.push(verdict(
                format!("{WOR} travels farther along flat directions than {other}"),
                paired(WOR, other, &|m| m.flat_distance),
                4,
            ));
        }
        // A seed where neither arm escaped within the horizon says nothing about which is faster.
        let informative = |a: &str, b: &str| {
            opts.seeds.iter().any(|s| {
                [a, b]
                    .iter()
                    .any(|arm| escape.get(&(arm.to_string(), *s)).is_some_and(|(_, e)| *e))
            })
        };
        for other in [WR, NOISY] {
            let claim = format!("{WOR} escapes the saddle faster than {other} (steps saved)");
            verdicts.push(if informative(WOR, other) {
                verdict(claim, paired_escape(other, WOR), 1)
            } else {
                Verdict {
                    claim,
                    outcome: ClaimOutcome::Inconclusive,
                    evidence: format!("neither arm escaped within {steps} steps in any seed (censored)"),
                }
            });
        }
        for other in [WR, NOISY] {
            verdicts.push(verdict(
                format!("{WOR} ends with a smaller weighted noise trace T_w than {other}"),
                paired(other, WOR, &|m| m.weighted),
                4,
            ));
        }
        // Figure: the saddle group's training loss along training, every arm and seed.
        let mut fig = Figure::new(format!(
            "cnn-relu on {} MNIST digits from {SADDLE_SCALE} × PyTorch init: training loss (η = {}, b = {})",
            p.n, p.lr, p.batch
        ))
        .x_label("step")
        .y_label("training loss");
        for (arm, seed, s) in &loss_series {
            fig = fig.series(Series::line(
                format!("{arm} (seed {seed})"),
                s.iter().map(|(x, _)| *x as f64).collect(),
                s.iter().map(|(_, y)| *y).collect(),
            ));
        }
        let stem = "saddle_loss_vs_step";
        match fig.save(out, stem) {
            Ok(_) => md.push_str(&format!(
                "\n- Saddle group, training loss along training: [{stem}.svg]({stem}.svg), data [{stem}.csv]({stem}.csv)\n"
            )),
            Err(imreg_plot::PlotError::Empty { .. }) => {}
            Err(e) => return Err(CliError::from(e)),
        }
        Ok(StudyReport {
            markdown: md,
            json: serde_json::Value::Object(json),
            verdicts,
        })
    }
}

/// A recorded series: `(step, value)` points.
type Points = Vec<(usize, f64)>;

/// What the flat group measures at one endpoint.
#[derive(Clone, Debug, PartialEq)]
struct FlatMeasure {
    flat_distance: f64,
    sharp_distance: f64,
    trace: f64,
    weighted: f64,
    loss: f64,
    lambda_max: f64,
}

/// Rebuilds the run's model and `θ₀` from its config, reads `θ_T` from its folder, and measures.
fn measure_flat(p: &WithoutReplacementProtocol, r: &FinishedRun, dir: &Path) -> Result<FlatMeasure> {
    let file = dir.join("config.toml");
    let mut prep = prepare(r.run.config.clone(), &file)?;
    let theta = prep
        .model
        .load_theta(&dir.join("theta_final.npy"), "theta_final")?;
    let obj = prep.model.objective();
    let pairs =
        top_hessian_pairs(obj, &theta, p.sharp, 2 * p.sharp, r.run.seed).map_err(|e| failed("Lanczos", e))?;
    let w = weighted_noise_trace(obj, &theta, p.lr, p.k(), &pairs).map_err(|e| failed("noise trace", e))?;
    let delta: Vec<f64> = theta.iter().zip(&prep.theta0).map(|(a, b)| a - b).collect();
    let vecs: Vec<Vec<f64>> = pairs.iter().map(|(_, v)| v.clone()).collect();
    let (flat_distance, sharp_distance) = flat_and_sharp_norms(&vecs, &delta);
    Ok(FlatMeasure {
        flat_distance,
        sharp_distance,
        trace: w.trace,
        weighted: w.weighted,
        loss: r.final_metrics.get("loss").copied().unwrap_or(f64::NAN),
        lambda_max: pairs.first().map_or(f64::NAN, |(l, _)| *l),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OptimizerConfig;

    /// The smoke instance: 2 groups × 4 arms per seed, every config valid; noise-injected GD gets the
    /// matched σ of its seed and group (positive, the same `θ₀` as the other arms), the saddle group the
    /// scaled initialization.
    #[test]
    fn smoke_runs_pair_the_arms_on_one_initialization() {
        let study = WithoutReplacement;
        let opts = StudyOptions::new(StudyDataset::Mnist, StudyScale::Smoke);
        let entries = super::super::manifest(&study, &opts).unwrap();
        assert_eq!(entries.len(), 2 * ARMS.len() * opts.seeds.len());
        let p = WithoutReplacementProtocol::of(StudyScale::Smoke);
        for e in &entries {
            assert_eq!(e.config.steps, p.steps());
            let saddle = e.params["group"] == SADDLE;
            assert_eq!(e.config.init.scale(), if saddle { SADDLE_SCALE } else { 1.0 });
            match (&e.config.optimizer, e.params["arm"].as_str().unwrap()) {
                (OptimizerConfig::NoisyGd { sigma, lr, .. }, NOISY) => {
                    assert!(*sigma > 0.0 && sigma.is_finite());
                    assert_eq!(*lr, p.lr);
                }
                (
                    OptimizerConfig::Sgd {
                        replacement,
                        batch_size,
                        ..
                    },
                    arm,
                ) => {
                    assert_eq!(*replacement, arm == WR);
                    assert_eq!(*batch_size, p.batch);
                }
                (OptimizerConfig::Gd { .. }, GD) => {}
                (o, arm) => panic!("arm {arm} has optimizer {o:?}"),
            }
        }
        assert_eq!(p.n % p.batch, 0);
    }
}
