//! Smith et al. (2021), *On the origin of implicit regularization in stochastic gradient descent*: SGD at
//! learning rate `η` follows, to first order in `η`, gradient flow on the modified loss
//! `C_SGD(θ) = C(θ) + (η/(4m)) Σ_k ‖∇Ĉ_k(θ)‖²` (`m` batches per epoch). Adding the λ-term explicitly,
//! `Ĉ_B + (λ/4)‖∇Ĉ_B‖²` on each batch (`smith_stochastic`), at a small rate `ε` therefore stands for SGD at
//! `ε + λ`. The study tests the empirical claims built on it:
//!
//! * **S1**: at a small rate `ε`, SGD plus the λ-term with `λ = η − ε` reaches the test accuracy of SGD at
//!   `η`, at matched epochs long enough for the small-rate runs to converge (checked: [`plateau`]).
//! * **S2**: at matched epochs, the learning rate maximizing the test accuracy exceeds the one minimizing
//!   the training loss.
//!
//! One sweep answers both: for every `η` of a factor-2 grid starting at `ε`, SGD at `η` (arm
//! [`ARM_SGD`]) and SGD at `ε` with `λ = η − ε` (arm [`ARM_TERM`]), every seed, same epochs and batch size.
//! The settings (dataset sizes, model, `ε`, grid, epochs) are fixed in [`Setting`] before any outcome was
//! seen; the verdict rules are in [`recovery_verdict`] and [`Smith::report`].
use super::{
    fmt_mean_se, mean_se, ClaimOutcome, FinishedRun, Study, StudyDataset, StudyOptions, StudyReport,
    StudyRun, StudyScale, Table, Verdict,
};
use crate::config::ExperimentConfig;
use crate::error::{CliError, Result};
use imreg_plot::{Figure, Series};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;

/// Arm: plain SGD at the group's learning rate `η`.
pub const ARM_SGD: &str = "SGD at η";
/// Arm: SGD at the small rate `ε` plus Smith's λ-term with `λ = η − ε`.
pub const ARM_TERM: &str = "SGD at ε + λ-term";

/// A training run has reached its plateau when its final training accuracy is at least this …
pub const PLATEAU_ACCURACY: f64 = 0.99;
/// … and its training loss changed by at most this many nats over the last quarter of training.
pub const PLATEAU_LOSS_CHANGE: f64 = 0.01;
/// A paired difference is significant when it exceeds this many standard errors.
pub const SIGNIFICANT_SE: f64 = 2.0;

/// The data, model, batch size and horizon a generalization study trains with on one dataset at one scale
/// (fixed before any outcome was seen).
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    /// The `[data]` and `[split]` tables.
    pub data: String,
    /// The `[model]` and `[init]` tables.
    pub model: String,
    /// A label of the model for reports.
    pub model_label: &'static str,
    /// Training examples (the rest of the data is the test set).
    pub n_train: usize,
    /// The batch size of the small-batch arms.
    pub batch_size: usize,
    /// Epochs of every run of the accuracy comparisons (matched across arms).
    pub epochs: usize,
}

impl Setting {
    /// The setting of `dataset` at `scale`: a ReLU MLP `d`-32-10 at Smoke and Reduced scale (what two
    /// cores run in minutes), Cohen et al.'s `cnn-relu` at Full scale (the sources train CNNs). The digits
    /// train on 512 of the 1,797 images (1,024 at Full scale), MNIST and Fashion-MNIST on 256 of the first
    /// 50 per class of the shipped training part (2,000 of the first 250 per class at Full scale); the rest
    /// is the test set.
    pub fn new(dataset: StudyDataset, scale: StudyScale) -> Self {
        let [_, side, _] = dataset.input_shape();
        let (data, n_train, epochs) = match (dataset, scale) {
            (StudyDataset::Digits, StudyScale::Smoke) => (digits(), 512, 100),
            (StudyDataset::Digits, StudyScale::Reduced) => (digits(), 512, 800),
            (StudyDataset::Digits, StudyScale::Full) => (digits(), 1024, 300),
            (d, StudyScale::Smoke) => (shipped(d, 50), 256, 20),
            (d, StudyScale::Reduced) => (shipped(d, 50), 256, 400),
            (d, StudyScale::Full) => (shipped(d, 250), 2000, 200),
        };
        let (model, model_label) = match scale {
            StudyScale::Full => (
                format!(
                    "[model]\nkind = \"network\"\npreset = \"cnn-relu\"\ninput_shape = [1, {side}, {side}]\nloss = \"cross_entropy\"\n"
                ),
                "cnn-relu",
            ),
            _ => (
                "[model]\nkind = \"mlp\"\nhidden = [32]\nactivation = \"relu\"\nloss = \"cross_entropy\"\n"
                    .to_string(),
                "MLP d-32-10 ReLU",
            ),
        };
        Setting {
            data: format!("[data]\n{data}\n[split]\nn_train = {n_train}\n"),
            model: format!("{model}[init]\nscheme = \"pytorch\"\n"),
            model_label,
            n_train,
            batch_size: 32,
            epochs,
        }
    }

    /// Optimizer steps of `epochs` epochs at batch size `b` (the last batch of an epoch may be smaller).
    pub fn steps(&self, epochs: usize, b: usize) -> usize {
        epochs * self.n_train.div_ceil(b)
    }

    /// The config of one run: `sgd`, the `[track]` table `track` and the `[[regularizer]]` tables
    /// `regularizers`.
    pub fn config(
        &self,
        name: &str,
        seed: u64,
        sgd: Sgd,
        track: &str,
        regularizers: &str,
    ) -> Result<ExperimentConfig> {
        let Sgd {
            lr,
            batch_size,
            steps,
        } = sgd;
        let text = format!(
            "name = \"{name}\"\nseed = {seed}\nsteps = {steps}\n{}{}[optimizer]\nkind = \"sgd\"\nlr = {lr}\nbatch_size = {batch_size}\n[track]\n{track}\n{regularizers}",
            self.data, self.model
        );
        ExperimentConfig::from_toml_str(&text, Path::new(name))
    }
}

/// Plain minibatch SGD (without replacement): learning rate, batch size, steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    pub lr: f64,
    pub batch_size: usize,
    pub steps: usize,
}

/// The `[data]` body of the embedded digits.
fn digits() -> String {
    "kind = \"digits\"".to_string()
}

/// The `[data]` body of a class-balanced subset of a shipped dataset: the first `per_class` of each class
/// of its training part.
fn shipped(dataset: StudyDataset, per_class: usize) -> String {
    let kind = match dataset {
        StudyDataset::FashionMnist => "fashion_mnist",
        _ => "mnist",
    };
    format!("kind = \"{kind}\"\npart = \"train\"\nper_class = {per_class}")
}

/// The recorded, finite values of a tracked metric.
pub fn series<'a>(run: &'a FinishedRun, metric: &str) -> impl Iterator<Item = (usize, f64)> + 'a {
    run.series
        .get(metric)
        .into_iter()
        .flatten()
        .copied()
        .filter(|(_, v)| v.is_finite())
}

/// A final metric of a run that completed (NaN for a diverged run or a missing metric).
pub fn final_metric(run: &FinishedRun, metric: &str) -> f64 {
    match run.diverged_at {
        Some(_) => f64::NAN,
        None => run.final_metrics.get(metric).copied().unwrap_or(f64::NAN),
    }
}

/// The plateau check of a run: its final training accuracy, the change of its training loss over the last
/// quarter of its recorded steps, and whether both meet [`PLATEAU_ACCURACY`] and [`PLATEAU_LOSS_CHANGE`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plateau {
    pub accuracy: f64,
    pub loss_change: f64,
    pub reached: bool,
}

/// [`Plateau`] of `run` (never reached for a diverged run).
pub fn plateau(run: &FinishedRun) -> Plateau {
    let loss: Vec<(usize, f64)> = series(run, "loss").collect();
    let accuracy = final_metric(run, "accuracy");
    let loss_change = match loss.last() {
        Some(&(last, end)) if run.diverged_at.is_none() => {
            let quarter = last - last / 4;
            loss.iter()
                .rev()
                .find(|(s, _)| *s <= quarter)
                .map_or(f64::NAN, |&(_, v)| v - end)
        }
        _ => f64::NAN,
    };
    Plateau {
        accuracy,
        loss_change,
        reached: accuracy >= PLATEAU_ACCURACY && loss_change.abs() <= PLATEAU_LOSS_CHANGE,
    }
}

/// The runs of one cell (arm × group), by seed.
pub struct Cell<'a> {
    pub runs: BTreeMap<u64, &'a FinishedRun>,
}

impl<'a> Cell<'a> {
    /// The runs of `arm` in `group`.
    pub fn of(runs: &'a [FinishedRun], arm: &str, group: &str) -> Self {
        Cell {
            runs: runs
                .iter()
                .filter(|r| r.run.arm == arm && r.run.group == group)
                .map(|r| (r.run.seed, r))
                .collect(),
        }
    }

    /// `f` of every run, by seed (NaN for runs where it is undefined).
    pub fn values(&self, f: impl Fn(&FinishedRun) -> f64) -> BTreeMap<u64, f64> {
        self.runs.iter().map(|(s, r)| (*s, f(r))).collect()
    }

    /// Mean ± SE of `f` over the runs where it is finite, and how many those are.
    pub fn summary(&self, f: impl Fn(&FinishedRun) -> f64) -> Stat {
        Stat::of(&self.values(f))
    }

    /// Runs that diverged.
    pub fn diverged(&self) -> usize {
        self.runs.values().filter(|r| r.diverged_at.is_some()).count()
    }

    /// Runs whose training reached the plateau.
    pub fn plateaued(&self) -> usize {
        self.runs.values().filter(|r| plateau(r).reached).count()
    }
}

/// Mean ± standard error over seeds of the finite values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stat {
    pub mean: f64,
    pub se: f64,
    pub n: usize,
}

impl Stat {
    /// Over the finite values of `by_seed`.
    pub fn of(by_seed: &BTreeMap<u64, f64>) -> Self {
        let v: Vec<f64> = by_seed.values().copied().filter(|v| v.is_finite()).collect();
        if v.is_empty() {
            return Stat {
                mean: f64::NAN,
                se: f64::NAN,
                n: 0,
            };
        }
        let (mean, se) = mean_se(&v);
        Stat { mean, se, n: v.len() }
    }

    /// The paired difference `a − b` over the seeds where both are finite.
    pub fn paired(a: &BTreeMap<u64, f64>, b: &BTreeMap<u64, f64>) -> Self {
        let d = a
            .iter()
            .filter_map(|(s, x)| b.get(s).map(|y| (*s, x - y)))
            .collect();
        Stat::of(&d)
    }

    /// `+1` if significantly above zero, `−1` if significantly below, `0` otherwise (also with fewer than
    /// two values, whose standard error is undefined).
    pub fn sign(&self) -> i32 {
        if self.n < 2 || !self.se.is_finite() {
            return 0;
        }
        if self.mean > SIGNIFICANT_SE * self.se {
            1
        } else if self.mean < -SIGNIFICANT_SE * self.se {
            -1
        } else {
            0
        }
    }

    /// `mean ± se` with `digits` decimals (`n/a` without values).
    pub fn show(&self, digits: usize) -> String {
        match self.n {
            0 => "n/a".to_string(),
            _ => fmt_mean_se((self.mean, self.se), digits),
        }
    }
}

/// Whether an explicit regularizer at the small rate recovers the test accuracy of plain SGD at the large
/// rate, from the per-seed test accuracies of the three arms (paired by seed, [`SIGNIFICANT_SE`]):
///
/// * inconclusive when a small-rate arm did not reach its [`plateau`] in every seed, or when fewer than two
///   seeds completed in every arm;
/// * reversed when the regularizer lowers the test accuracy at the small rate;
/// * reproduced when it raises it and the result is not below the large rate's;
/// * inconclusive when the large rate is not better than the small one (nothing to recover);
/// * not reproduced otherwise.
pub fn recovery_verdict(
    claim: String,
    small: &Cell<'_>,
    large: &Cell<'_>,
    regularized: &Cell<'_>,
) -> Verdict {
    let acc = |c: &Cell<'_>| c.values(|r| final_metric(r, "test_accuracy"));
    let (a_small, a_large, a_reg) = (acc(small), acc(large), acc(regularized));
    let gain = Stat::paired(&a_reg, &a_small);
    let to_large = Stat::paired(&a_reg, &a_large);
    let gap = Stat::paired(&a_large, &a_small);
    let converged =
        small.plateaued() == small.runs.len() && regularized.plateaued() == regularized.runs.len();
    let evidence = format!(
        "test accuracy (paired by seed): regularized − small rate {}, regularized − large rate {}, large − \
         small rate {}; small-rate runs at their plateau: plain {}/{}, regularized {}/{}",
        gain.show(4),
        to_large.show(4),
        gap.show(4),
        small.plateaued(),
        small.runs.len(),
        regularized.plateaued(),
        regularized.runs.len()
    );
    let outcome = if !converged || gain.n < 2 || to_large.n < 2 {
        ClaimOutcome::Inconclusive
    } else if gain.sign() < 0 {
        ClaimOutcome::Reversed
    } else if gain.sign() > 0 && to_large.sign() >= 0 {
        ClaimOutcome::Reproduced
    } else if gap.sign() <= 0 {
        ClaimOutcome::Inconclusive
    } else {
        ClaimOutcome::NotReproduced
    };
    Verdict {
        claim,
        outcome,
        evidence,
    }
}

/// Saves `figure` into `out` as `stem.{svg,png,csv}`.
pub fn save_figure(figure: &Figure, out: &Path, stem: &str) -> Result<()> {
    figure
        .save(out, stem)
        .map(|_| ())
        .map_err(|e| CliError::Failed(format!("figure {stem}: {e}")))
}

/// The learning rates of the sweep: `ε·2^k`, `k = 0, 1, …` (Smoke: `ε` and `8ε`).
fn learning_rates(scale: StudyScale) -> Vec<f64> {
    match scale {
        StudyScale::Smoke => vec![SMALL_LR, 8.0 * SMALL_LR],
        _ => (0..5).map(|k| SMALL_LR * f64::from(1 << k)).collect(),
    }
}

/// The small learning rate `ε`.
pub const SMALL_LR: f64 = 0.025;

fn group(eta: f64) -> String {
    format!("η = {eta}")
}

/// Smith et al.'s explicit regularizer against SGD's learning rate (claims S1, S2).
pub struct Smith;

impl Study for Smith {
    fn name(&self) -> &'static str {
        "smith"
    }

    fn claims(&self) -> &'static str {
        "Smith et al. (2021): SGD at a small learning rate ε plus the explicit term (λ/4)‖∇L_B‖² with \
         λ = η − ε reaches the test accuracy of plain SGD at η, at matched epochs long enough for the \
         small-rate runs to converge (S1); and the learning rate maximizing test accuracy exceeds the one \
         minimizing the training loss (S2)."
    }

    fn runs(&self, opts: &StudyOptions) -> Result<Vec<StudyRun>> {
        let s = Setting::new(opts.dataset, opts.scale);
        let b = s.batch_size;
        let steps = s.steps(s.epochs, b);
        let every = s.steps(s.epochs.div_ceil(80), b);
        let track = format!("every = {every}\ngrad_norm = false\naccuracy = true");
        let mut runs = Vec::new();
        for &seed in &opts.seeds {
            for eta in learning_rates(opts.scale) {
                let name = format!("smith-sgd-eta{eta}-seed{seed}");
                runs.push(StudyRun {
                    arm: ARM_SGD.into(),
                    group: group(eta),
                    seed,
                    config: s.config(
                        &name,
                        seed,
                        Sgd {
                            lr: eta,
                            batch_size: b,
                            steps,
                        },
                        &track,
                        "",
                    )?,
                });
                let lambda = eta - SMALL_LR;
                if lambda > 0.0 {
                    let name = format!("smith-term-eta{eta}-seed{seed}");
                    let reg = format!("[[regularizer]]\nkind = \"smith_stochastic\"\nlambda = {lambda}\n");
                    runs.push(StudyRun {
                        arm: ARM_TERM.into(),
                        group: group(eta),
                        seed,
                        config: s.config(
                            &name,
                            seed,
                            Sgd {
                                lr: SMALL_LR,
                                batch_size: b,
                                steps,
                            },
                            &track,
                            &reg,
                        )?,
                    });
                }
            }
        }
        Ok(runs)
    }

    fn report(&self, opts: &StudyOptions, runs: &[FinishedRun], out: &Path) -> Result<StudyReport> {
        let s = Setting::new(opts.dataset, opts.scale);
        let etas = learning_rates(opts.scale);
        let small = Cell::of(runs, ARM_SGD, &group(SMALL_LR));
        let test_acc = |r: &FinishedRun| final_metric(r, "test_accuracy");
        let train_loss = |r: &FinishedRun| final_metric(r, "loss");
        let mut table = Table::new(&[
            "η",
            "SGD at η: test acc",
            "train loss",
            "Δ loss (last ¼)",
            "plateau",
            "SGD at ε + λ-term (λ = η − ε): test acc",
            "train loss",
            "Δ loss (last ¼)",
            "plateau",
        ]);
        let mut rows = Vec::new();
        let mut verdicts = Vec::new();
        let mut curves: [Vec<(f64, Stat)>; 2] = [Vec::new(), Vec::new()];
        let mut sgd_cells = Vec::new();
        for &eta in &etas {
            let sgd = Cell::of(runs, ARM_SGD, &group(eta));
            // At η = ε the λ-term is zero: the with-term curve starts at plain SGD at ε.
            let term = match Cell::of(runs, ARM_TERM, &group(eta)) {
                c if c.runs.is_empty() => Cell::of(runs, ARM_SGD, &group(eta)),
                c => c,
            };
            let mut cells = vec![number(eta)];
            let mut json_row = json!({ "eta": eta });
            for (i, c) in [&sgd, &term].into_iter().enumerate() {
                let acc = c.summary(test_acc);
                let loss = c.summary(train_loss);
                let change = c.summary(|r| plateau(r).loss_change);
                let diverged = match c.diverged() {
                    0 => String::new(),
                    d => format!(", {d} diverged"),
                };
                cells.extend([
                    acc.show(4),
                    loss.show(4),
                    change.show(4),
                    format!("{}/{}{diverged}", c.plateaued(), c.runs.len()),
                ]);
                curves[i].push((eta, acc));
                json_row[["sgd", "term"][i]] = json!({
                    "test_accuracy": [acc.mean, acc.se, acc.n], "train_loss": [loss.mean, loss.se, loss.n],
                    "loss_change_last_quarter": [change.mean, change.se], "plateaued": c.plateaued(),
                    "runs": c.runs.len(), "diverged": c.diverged(),
                });
            }
            table.row(cells);
            rows.push(json_row);
            if eta > SMALL_LR {
                verdicts.push(recovery_verdict(
                    format!(
                        "S1 at η = {}: SGD at ε = {SMALL_LR} + λ-term (λ = {}) reaches SGD at η",
                        number(eta),
                        number(eta - SMALL_LR)
                    ),
                    &small,
                    &sgd,
                    &Cell::of(runs, ARM_TERM, &group(eta)),
                ));
            }
            sgd_cells.push((eta, sgd));
        }
        verdicts.push(best_rates_verdict(&sgd_cells));
        let md = format!(
            "Setting: {}, {} training examples, batch {}, {} epochs for every run, ε = {SMALL_LR}, the \
             per-step λ-term `smith_stochastic`; plateau = final train accuracy ≥ {PLATEAU_ACCURACY} and \
             |Δ train loss| ≤ {PLATEAU_LOSS_CHANGE} over the last quarter of training. Mean ± SE over seeds; \
             verdicts compare paired (by seed) differences with {SIGNIFICANT_SE} SE.\n\n{}\nFigures: \
             `smith_test_accuracy_vs_lr` (SE series in `smith_test_accuracy_vs_lr_se.csv`), \
             `smith_train_loss_vs_lr`.\n",
            s.model_label,
            s.n_train,
            s.batch_size,
            s.epochs,
            table.markdown()
        );
        // Figures: test accuracy against η with and without the term; train loss against η.
        let names = ["SGD at η", "SGD at ε + λ-term, λ = η − ε"];
        let line = |i: usize, f: &dyn Fn(&Stat) -> f64| {
            let (x, y): (Vec<f64>, Vec<f64>) = curves[i].iter().map(|(e, st)| (*e, f(st))).unzip();
            Series::line_markers(names[i], x, y)
        };
        let fig = Figure::new("Test accuracy at matched epochs (mean over seeds)")
            .x_label("learning rate η (with the term: ε + λ)")
            .y_label("test accuracy")
            .log_x()
            .with_series((0..2).map(|i| line(i, &|st| st.mean)));
        save_figure(&fig, out, "smith_test_accuracy_vs_lr")?;
        imreg_plot::write_csv(
            &out.join("smith_test_accuracy_vs_lr_se.csv"),
            &(0..2).map(|i| line(i, &|st| st.se)).collect::<Vec<_>>(),
        )
        .map_err(|e| CliError::Failed(format!("smith_test_accuracy_vs_lr_se.csv: {e}")))?;
        let (x, y): (Vec<f64>, Vec<f64>) = sgd_cells
            .iter()
            .map(|(e, c)| (*e, c.summary(train_loss).mean))
            .unzip();
        let fig = Figure::new("Final train loss of SGD (mean over seeds)")
            .x_label("learning rate η")
            .y_label("train loss")
            .log_x()
            .log_y()
            .series(Series::line_markers("SGD at η", x, y));
        save_figure(&fig, out, "smith_train_loss_vs_lr")?;
        let json = json!({
            "setting": { "model": s.model_label, "n_train": s.n_train, "batch_size": s.batch_size,
                          "epochs": s.epochs, "small_lr": SMALL_LR, "seeds": opts.seeds },
            "rows": rows,
            "verdicts": verdicts.iter().map(|v| json!({"claim": v.claim, "outcome": v.outcome.label(), "evidence": v.evidence})).collect::<Vec<_>>(),
        });
        Ok(StudyReport {
            markdown: md,
            json,
            verdicts,
        })
    }
}

/// S2 from the plain-SGD cells `(η, runs)`: the learning rate of the best mean test accuracy against the
/// one of the lowest mean final train loss. Reproduced when the first is larger and its test accuracy is
/// significantly higher (paired) than at the second, reversed when it is smaller and significantly higher,
/// not reproduced when the two coincide or the difference is within noise.
fn best_rates_verdict(cells: &[(f64, Cell<'_>)]) -> Verdict {
    let claim =
        "S2: the learning rate maximizing test accuracy exceeds the one minimizing train loss".to_string();
    let mean_of = |c: &Cell<'_>, m: &str| c.summary(|r| final_metric(r, m));
    let best = |key: &dyn Fn(&Cell<'_>) -> f64| {
        cells
            .iter()
            .filter(|(_, c)| key(c).is_finite())
            .max_by(|a, b| key(&a.1).total_cmp(&key(&b.1)))
    };
    let (Some(acc), Some(loss)) = (
        best(&|c| mean_of(c, "test_accuracy").mean),
        best(&|c| -mean_of(c, "loss").mean),
    ) else {
        return Verdict {
            claim,
            outcome: ClaimOutcome::Inconclusive,
            evidence: "no learning rate completed".into(),
        };
    };
    let test = |c: &Cell<'_>| c.values(|r| final_metric(r, "test_accuracy"));
    let diff = Stat::paired(&test(&acc.1), &test(&loss.1));
    let evidence = format!(
        "best test accuracy at η = {} ({}), lowest train loss at η = {} ({}, test accuracy {}); paired \
         test-accuracy difference {}; grid {:?}",
        number(acc.0),
        mean_of(&acc.1, "test_accuracy").show(4),
        number(loss.0),
        mean_of(&loss.1, "loss").show(5),
        mean_of(&loss.1, "test_accuracy").show(4),
        diff.show(4),
        cells.iter().map(|c| number(c.0)).collect::<Vec<_>>()
    );
    let outcome = if acc.0 == loss.0 || diff.sign() <= 0 {
        ClaimOutcome::NotReproduced
    } else if acc.0 > loss.0 {
        ClaimOutcome::Reproduced
    } else {
        ClaimOutcome::Reversed
    };
    Verdict {
        claim,
        outcome,
        evidence,
    }
}

/// A number as the reports print it: at most nine significant decimals, no binary noise (`0.175`, not
/// `0.17500000000000002`).
pub fn number(x: f64) -> String {
    format!("{}", (x * 1e9).round() / 1e9)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A finished run of `arm` in `group` with the given tracked series and final metrics.
    pub fn finished(
        arm: &str,
        group: &str,
        seed: u64,
        series: &[(&str, Vec<(usize, f64)>)],
        finals: &[(&str, f64)],
    ) -> FinishedRun {
        let s = Setting::new(StudyDataset::Digits, StudyScale::Smoke);
        let sgd = Sgd {
            lr: 0.1,
            batch_size: 32,
            steps: 100,
        };
        FinishedRun {
            run: StudyRun {
                arm: arm.into(),
                group: group.into(),
                seed,
                config: s.config("t", seed, sgd, "every = 1", "").unwrap(),
            },
            final_metrics: finals.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            series: series.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            diverged_at: None,
        }
    }

    fn classifier(arm: &str, group: &str, seed: u64, test_acc: f64, change: f64) -> FinishedRun {
        let loss = vec![(0, 2.0), (50, 0.1), (75, 0.01 + change), (100, 0.01)];
        finished(
            arm,
            group,
            seed,
            &[("loss", loss)],
            &[("test_accuracy", test_acc), ("accuracy", 1.0), ("loss", 0.01)],
        )
    }

    #[test]
    fn plateau_needs_accuracy_and_a_flat_last_quarter() {
        let flat = classifier("a", "g", 0, 0.9, 0.005);
        assert_eq!(plateau(&flat).loss_change, 0.005 + 0.01 - 0.01);
        assert!(plateau(&flat).reached);
        assert!(!plateau(&classifier("a", "g", 0, 0.9, 0.05)).reached);
        let mut low = flat.clone();
        low.final_metrics.insert("accuracy".into(), 0.9);
        assert!(!plateau(&low).reached);
        let mut diverged = flat;
        diverged.diverged_at = Some(40);
        assert!(!plateau(&diverged).reached);
    }

    fn verdict(small: [f64; 3], large: [f64; 3], reg: [f64; 3], small_change: f64) -> ClaimOutcome {
        let mut runs = Vec::new();
        for seed in 0..3 {
            runs.push(classifier("s", "g", seed, small[seed as usize], small_change));
            runs.push(classifier("l", "g", seed, large[seed as usize], 0.0));
            runs.push(classifier("r", "g", seed, reg[seed as usize], 0.0));
        }
        let c = |a: &str| Cell::of(&runs, a, "g");
        recovery_verdict("claim".into(), &c("s"), &c("l"), &c("r")).outcome
    }

    #[test]
    fn recovery_verdicts_follow_the_paired_differences() {
        let (small, large) = ([0.90, 0.91, 0.92], [0.95, 0.96, 0.97]);
        assert_eq!(
            verdict(small, large, [0.95, 0.961, 0.969], 0.0),
            ClaimOutcome::Reproduced
        );
        assert_eq!(
            verdict(small, large, [0.901, 0.909, 0.92], 0.0),
            ClaimOutcome::NotReproduced
        );
        assert_eq!(
            verdict(small, large, [0.85, 0.86, 0.87], 0.0),
            ClaimOutcome::Reversed
        );
        // Unconverged small-rate runs, or no gap to recover: inconclusive.
        assert_eq!(
            verdict(small, large, [0.95, 0.961, 0.969], 0.05),
            ClaimOutcome::Inconclusive
        );
        assert_eq!(
            verdict(small, small, [0.901, 0.909, 0.92], 0.0),
            ClaimOutcome::Inconclusive
        );
    }

    #[test]
    fn best_rates_compare_accuracy_and_loss_optima() {
        // Test accuracy peaks at η = 0.2, the train loss is lowest at η = 0.4.
        let mut runs = Vec::new();
        for seed in 0..3u64 {
            let d = seed as f64 * 0.001;
            for (eta, acc, loss) in [(0.1, 0.90, 0.05), (0.2, 0.95, 0.02), (0.4, 0.92, 0.01)] {
                let mut r = classifier(ARM_SGD, &group(eta), seed, acc + d, 0.0);
                r.final_metrics.insert("loss".into(), loss);
                runs.push(r);
            }
        }
        let cells = |etas: &[f64]| -> Vec<(f64, Cell<'_>)> {
            etas.iter()
                .map(|&e| (e, Cell::of(&runs, ARM_SGD, &group(e))))
                .collect()
        };
        assert_eq!(
            best_rates_verdict(&cells(&[0.1, 0.2, 0.4])).outcome,
            ClaimOutcome::Reversed
        );
        assert_eq!(
            best_rates_verdict(&cells(&[0.1, 0.2])).outcome,
            ClaimOutcome::NotReproduced
        );
        assert_eq!(number(0.2 - 0.025), "0.175");
    }
}
