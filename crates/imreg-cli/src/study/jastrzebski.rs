//! Jastrzębski et al.: the break-even point (ICLR 2020) and catastrophic Fisher explosion (ICML 2021).
//!
//! * **J1**: the Fisher penalty `α ‖∇L_B(ŷ)‖²` (`ŷ ~ softmax f`, `fisher_penalty`) at a small learning rate
//!   recovers the test accuracy of SGD at a large one.
//! * **J2**: *catastrophic Fisher explosion*: at a small learning rate `Tr F` rises to a peak early in
//!   training that a large learning rate does not reach; **J3**: the Fisher penalty prevents it.
//! * **J4** (break-even conjecture 1): along the trajectory, the maxima of `λ_H¹` (top Hessian eigenvalue)
//!   and `λ_K¹` (top eigenvalue of the gradient covariance `K = (1/N) Σ (g_i − ḡ)(g_i − ḡ)ᵀ`) are smaller
//!   for a larger learning rate or a smaller batch.
//! * **J5** (conjecture 2): `K` is better conditioned for a larger learning rate or a smaller batch. The
//!   paper states it for `λ_K^*/λ_K¹` (`λ_K^*` the smallest non-zero eigenvalue); we measure the
//!   conditioning by the effective rank `Tr K / λ_K¹ = Σ_i λ_K^i / λ_K¹` (`1` for a rank-one `K`, larger
//!   when the gradient noise spreads over more directions), which the tracked `trace_k` and `lambda_k1`
//!   give exactly, and compare its maximum over the recorded steps after initialization.
//!
//! Two groups of runs: [`GROUP_FISHER`] (SGD at `η_s`, at `η_l`, and at `η_s` with the Fisher penalty, batch
//! `b_s`, trained to a plateau, `Tr F` tracked every quarter epoch) and [`GROUP_BREAK_EVEN`] (`η ∈ {η_s,
//! η_l}` × `b ∈ {b_s, b_l}` over the early phase at matched epochs, `λ_H¹`, `λ_K¹`, `Tr K` every epoch).
//! `Tr F` is the tracked `trace_f`: the empirical Fisher `(1/N) Σ_i ‖g_i‖²` with the true labels on the
//! whole training set (the paper's `F` samples the labels from the model; the sampled Fisher has no
//! tracked counterpart for the CNN presets). Settings are fixed in [`SMALL_LR`], [`LARGE_LR`],
//! [`FISHER_ALPHA`], [`BATCHES`] and [`Setting`] before any outcome was seen.
use super::smith::{final_metric, number, recovery_verdict, save_figure, series, Cell, Setting, Sgd, Stat};
use super::{
    ClaimOutcome, FinishedRun, Study, StudyDataset, StudyOptions, StudyReport, StudyRun, StudyScale, Table,
    Verdict,
};
use crate::error::Result;
use imreg_plot::{Figure, Series};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;

/// The small learning rate `η_s`.
pub const SMALL_LR: f64 = 0.025;
/// The large learning rate `η_l = 10 η_s`.
pub const LARGE_LR: f64 = 0.25;
/// The Fisher penalty's coefficient: `(η_l − η_s)/4`, the coefficient of SGD's own implicit term
/// `(η/4)‖∇L_B‖²` (Smith et al.) that the larger rate adds, not tuned.
pub const FISHER_ALPHA: f64 = (LARGE_LR - SMALL_LR) / 4.0;
/// The batch sizes `b_s`, `b_l` of the break-even runs (`b_s` is also the Fisher group's).
pub const BATCHES: [usize; 2] = [32, 128];

/// The accuracy and Fisher-explosion runs.
pub const GROUP_FISHER: &str = "fisher";
/// The break-even runs.
pub const GROUP_BREAK_EVEN: &str = "break-even";
const ARM_SMALL: &str = "SGD at η_s";
const ARM_LARGE: &str = "SGD at η_l";
const ARM_PENALTY: &str = "SGD at η_s + Fisher penalty";

fn break_even_arm(lr: f64, b: usize) -> String {
    format!("η = {lr}, b = {b}")
}

/// Epochs of the break-even runs (the early phase).
fn break_even_epochs(scale: StudyScale) -> usize {
    match scale {
        StudyScale::Smoke => 4,
        StudyScale::Reduced => 40,
        StudyScale::Full => 20,
    }
}

/// Jastrzębski et al.'s Fisher penalty, Fisher explosion and break-even conjectures (claims J1–J5).
pub struct Jastrzebski;

impl Study for Jastrzebski {
    fn name(&self) -> &'static str {
        "jastrzebski"
    }

    fn claims(&self) -> &'static str {
        "Jastrzębski et al. (2020, 2021): the Fisher penalty at a small learning rate recovers the test \
         accuracy of a large one (J1); at a small learning rate Tr F explodes early in training, not at a \
         large one (J2), and the Fisher penalty prevents it (J3); break-even conjecture 1: a larger learning \
         rate or a smaller batch lowers the peaks of λ_H¹ and λ_K¹ (J4); conjecture 2: and conditions the \
         gradient covariance K better (J5)."
    }

    fn runs(&self, opts: &StudyOptions) -> Result<Vec<StudyRun>> {
        let s = Setting::new(opts.dataset, opts.scale);
        let b = BATCHES[0];
        let steps = s.steps(s.epochs, b);
        let fisher_every = fisher_period(&s, opts.scale);
        let fisher_track = format!(
            "every = {}\ngrad_norm = false\naccuracy = true\ntrace_f = {fisher_every}",
            s.steps(s.epochs.div_ceil(80), b)
        );
        let penalty = format!("[[regularizer]]\nkind = \"fisher_penalty\"\nalpha = {FISHER_ALPHA}\n");
        let be_epochs = break_even_epochs(opts.scale);
        let mut runs = Vec::new();
        for &seed in &opts.seeds {
            for (arm, lr, reg) in [
                (ARM_SMALL, SMALL_LR, ""),
                (ARM_LARGE, LARGE_LR, ""),
                (ARM_PENALTY, SMALL_LR, penalty.as_str()),
            ] {
                let name = format!("jastrzebski-{}-seed{seed}", arm.replace(' ', "_"));
                runs.push(StudyRun {
                    arm: arm.into(),
                    group: GROUP_FISHER.into(),
                    seed,
                    config: s.config(
                        &name,
                        seed,
                        Sgd {
                            lr,
                            batch_size: b,
                            steps,
                        },
                        &fisher_track,
                        reg,
                    )?,
                });
            }
            for bb in BATCHES {
                for lr in [SMALL_LR, LARGE_LR] {
                    let every = s.steps(break_even_period(opts.dataset, opts.scale), bb);
                    let track = format!(
                        "every = {every}\ngrad_norm = false\nsharpness = true\nlambda_k1 = true\ntrace_k = true"
                    );
                    let name = format!("jastrzebski-break-even-lr{lr}-b{bb}-seed{seed}");
                    runs.push(StudyRun {
                        arm: break_even_arm(lr, bb),
                        group: GROUP_BREAK_EVEN.into(),
                        seed,
                        config: s.config(
                            &name,
                            seed,
                            Sgd {
                                lr,
                                batch_size: bb,
                                steps: s.steps(be_epochs, bb),
                            },
                            &track,
                            "",
                        )?,
                    });
                }
            }
        }
        Ok(runs)
    }

    fn report(&self, opts: &StudyOptions, runs: &[FinishedRun], out: &Path) -> Result<StudyReport> {
        let s = Setting::new(opts.dataset, opts.scale);
        let cell = |arm: &str, group: &str| Cell::of(runs, arm, group);
        let (small, large, pen) = (
            cell(ARM_SMALL, GROUP_FISHER),
            cell(ARM_LARGE, GROUP_FISHER),
            cell(ARM_PENALTY, GROUP_FISHER),
        );
        let epoch = s.steps(1, BATCHES[0]) as f64;
        let total_steps = s.steps(s.epochs, BATCHES[0]);
        let mut fisher = Table::new(&[
            "arm",
            "test acc",
            "train loss",
            "plateau",
            "peak Tr F",
            "epoch of the peak",
            "final Tr F",
        ]);
        let mut fisher_rows = Vec::new();
        for (arm, c) in [(ARM_SMALL, &small), (ARM_LARGE, &large), (ARM_PENALTY, &pen)] {
            let top = c.summary(|r| peak(r, "trace_f").1);
            let at = c.summary(|r| peak(r, "trace_f").0 as f64 / epoch);
            let last = c.summary(|r| final_metric(r, "trace_f"));
            let acc = c.summary(|r| final_metric(r, "test_accuracy"));
            let loss = c.summary(|r| final_metric(r, "loss"));
            fisher.row([
                arm.to_string(),
                acc.show(4),
                loss.show(4),
                format!("{}/{} ({} diverged)", c.plateaued(), c.runs.len(), c.diverged()),
                top.show(3),
                at.show(1),
                last.show(3),
            ]);
            fisher_rows.push(json!({
                "arm": arm, "test_accuracy": [acc.mean, acc.se, acc.n], "train_loss": [loss.mean, loss.se],
                "plateaued": c.plateaued(), "runs": c.runs.len(), "diverged": c.diverged(),
                "peak_trace_f": [top.mean, top.se], "peak_epoch": [at.mean, at.se],
                "final_trace_f": [last.mean, last.se],
            }));
        }
        let mut verdicts = vec![recovery_verdict(
            format!("J1: Fisher penalty at η_s = {SMALL_LR} reaches SGD at η_l = {LARGE_LR}"),
            &small,
            &large,
            &pen,
        )];
        verdicts.push(explosion_verdict(&small, &large, epoch, total_steps));
        verdicts.push(prevention_verdict(&small, &pen));

        let mut be = Table::new(&[
            "η, b",
            "peak λ_H¹",
            "2/η",
            "epoch of the λ_H¹ peak",
            "peak λ_K¹",
            "epoch of the λ_K¹ peak",
            "max Tr K / λ_K¹",
            "epoch of the max",
        ]);
        let mut be_rows = Vec::new();
        for bb in BATCHES {
            for lr in [SMALL_LR, LARGE_LR] {
                let arm = break_even_arm(lr, bb);
                let c = cell(&arm, GROUP_BREAK_EVEN);
                let e = s.steps(1, bb) as f64;
                let stat = |curve: Curve| {
                    let m = |r: &FinishedRun| curve_max(r, curve);
                    (
                        c.summary(|r| m(r).map_or(f64::NAN, |x| x.1)),
                        c.summary(|r| m(r).map_or(f64::NAN, |x| x.0 as f64 / e)),
                    )
                };
                let (h, h_at) = stat(&lambda_h1);
                let (k, k_at) = stat(&lambda_k1);
                let (cond, cond_at) = stat(&effective_rank);
                be.row([
                    arm.clone(),
                    h.show(3),
                    number(2.0 / lr),
                    h_at.show(1),
                    k.show(4),
                    k_at.show(1),
                    cond.show(3),
                    cond_at.show(1),
                ]);
                be_rows.push(json!({
                    "lr": lr, "batch_size": bb, "peak_lambda_h1": [h.mean, h.se], "peak_lambda_k1": [k.mean, k.se],
                    "max_effective_rank_k": [cond.mean, cond.se], "runs": c.runs.len(), "diverged": c.diverged(),
                }));
            }
        }
        verdicts.push(conjecture_verdict(
            "J4 (conjecture 1, λ_H¹): larger η or smaller b lowers the peak of λ_H¹",
            runs,
            &lambda_h1,
            -1,
        ));
        verdicts.push(conjecture_verdict(
            "J4 (conjecture 1, λ_K¹): larger η or smaller b lowers the peak of λ_K¹",
            runs,
            &lambda_k1,
            -1,
        ));
        verdicts.push(conjecture_verdict(
            "J5 (conjecture 2): larger η or smaller b raises the best conditioning max Tr K / λ_K¹",
            runs,
            &effective_rank,
            1,
        ));
        let md = format!(
            "Setting: {}, {} training examples, η_s = {SMALL_LR}, η_l = {LARGE_LR}, Fisher penalty α = {} \
             (squared, sampled labels), mean ± SE over seeds, verdicts on paired (by seed) differences with \
             {} SE.\n\n**Accuracy and Fisher explosion** (batch {}, {} epochs for every arm; Tr F = the \
             empirical Fisher trace (1/N) Σ ‖g_i‖² on the training set, every {}):\n\n{}\n**Break-even** \
             ({} epochs for every arm; λ_H¹, λ_K¹ and Tr K on the training set every {}; maxima over \
             the recorded steps after initialization):\n\n{}\nFigures: `jastrzebski_trace_f`, \
             `jastrzebski_lambda_h1`, `jastrzebski_lambda_k1`, `jastrzebski_effective_rank_k` (each with its \
             CSV).\n",
            s.model_label,
            s.n_train,
            number(FISHER_ALPHA),
            super::smith::SIGNIFICANT_SE,
            BATCHES[0],
            s.epochs,
            match fisher_period(&s, opts.scale) {
                p if p as f64 == epoch => "epoch".to_string(),
                p => format!("{p} steps"),
            },
            fisher.markdown(),
            break_even_epochs(opts.scale),
            match break_even_period(opts.dataset, opts.scale) {
                1 => "epoch".to_string(),
                k => format!("{k} epochs"),
            },
            be.markdown()
        );
        // Figures: Tr F per arm; λ_H¹, λ_K¹ and Tr K / λ_K¹ per break-even arm, against epochs.
        let fig = Figure::new("Tr F (empirical Fisher) along training, mean over seeds")
            .x_label("epoch")
            .y_label("Tr F")
            .with_series(
                [(ARM_SMALL, &small), (ARM_LARGE, &large), (ARM_PENALTY, &pen)]
                    .into_iter()
                    .map(|(arm, c)| mean_curve(arm, c, epoch, &trace_f)),
            );
        save_figure(&fig, out, "jastrzebski_trace_f")?;
        let curves: [(&str, &str, Curve); 3] = [
            ("jastrzebski_lambda_h1", "λ_H¹", &lambda_h1),
            ("jastrzebski_lambda_k1", "λ_K¹", &lambda_k1),
            ("jastrzebski_effective_rank_k", "Tr K / λ_K¹", &effective_rank),
        ];
        for (stem, title, f) in curves {
            let mut fig = Figure::new(format!("{title} along training, mean over seeds"))
                .x_label("epoch")
                .y_label(title);
            for bb in BATCHES {
                for lr in [SMALL_LR, LARGE_LR] {
                    let arm = break_even_arm(lr, bb);
                    fig.push(mean_curve(
                        &arm,
                        &cell(&arm, GROUP_BREAK_EVEN),
                        s.steps(1, bb) as f64,
                        f,
                    ));
                }
            }
            save_figure(&fig, out, stem)?;
        }
        let json = json!({
        "setting": { "model": s.model_label, "n_train": s.n_train, "small_lr": SMALL_LR, "large_lr": LARGE_LR,
                      "fisher_alpha": FISHER_ALPHA, "batch_sizes": BATCHES, "epochs": s.epochs,
                      "break_even_epochs": break_even_epochs(opts.scale), "seeds": opts.seeds },
        "fisher": fisher_rows,
        "break_even": be_rows,
        });
        Ok(StudyReport {
            markdown: md,
            json,
            verdicts,
        })
    }
}

/// The period of the Tr F tracking in steps: a quarter epoch (an epoch at Full scale, where each
/// evaluation costs about an epoch of gradients).
fn fisher_period(s: &Setting, scale: StudyScale) -> usize {
    let epoch = s.steps(1, BATCHES[0]);
    match scale {
        StudyScale::Full => epoch,
        _ => (epoch / 4).max(1),
    }
}

/// The period of the break-even tracking in epochs: every epoch, every second on the 28 × 28 images below
/// Full scale (where `λ_K¹` is an `N × N` eigenproblem over 25k-parameter gradients).
fn break_even_period(dataset: StudyDataset, scale: StudyScale) -> usize {
    match (dataset, scale) {
        (StudyDataset::Digits, _) | (_, StudyScale::Full) => 1,
        _ => 2,
    }
}

/// A tracked curve of a run: its recorded `(step, value)` points.
type Curve<'f> = &'f dyn Fn(&FinishedRun) -> Vec<(usize, f64)>;

fn trace_f(run: &FinishedRun) -> Vec<(usize, f64)> {
    series(run, "trace_f").collect()
}

fn lambda_h1(run: &FinishedRun) -> Vec<(usize, f64)> {
    series(run, "sharpness").collect()
}

fn lambda_k1(run: &FinishedRun) -> Vec<(usize, f64)> {
    series(run, "lambda_k1").collect()
}

/// `Tr K / λ_K¹` at every step where both were recorded.
fn effective_rank(run: &FinishedRun) -> Vec<(usize, f64)> {
    let k1: BTreeMap<usize, f64> = series(run, "lambda_k1").collect();
    series(run, "trace_k")
        .filter_map(|(s, t)| k1.get(&s).filter(|&&k| k > 0.0).map(|k| (s, t / k)))
        .collect()
}

/// The step and value of the largest recorded value of `metric` (NaN without one or for a diverged run).
fn peak(run: &FinishedRun, metric: &str) -> (usize, f64) {
    if run.diverged_at.is_some() {
        return (0, f64::NAN);
    }
    series(run, metric).fold((0, f64::NAN), |best, (s, v)| {
        if best.1.is_nan() || v > best.1 {
            (s, v)
        } else {
            best
        }
    })
}

/// The maximum of `curve` over the recorded steps after initialization: its step, its value, and whether
/// it is the last recorded point (the curve was still rising when the run ended, so the maximum along the
/// trajectory was not attained). `None` for a diverged run or an empty curve.
fn curve_max(run: &FinishedRun, curve: Curve) -> Option<(usize, f64, bool)> {
    if run.diverged_at.is_some() {
        return None;
    }
    let points: Vec<(usize, f64)> = curve(run).into_iter().filter(|(s, _)| *s > 0).collect();
    let last = points.last()?.0;
    let (step, value) = points.into_iter().fold((0, f64::NAN), |best, (s, v)| {
        if best.1.is_nan() || v > best.1 {
            (s, v)
        } else {
            best
        }
    });
    Some((step, value, step == last))
}

/// The mean over the runs of `cell` of `curve`, step by step, against epochs (`steps / epoch`).
fn mean_curve(name: &str, cell: &Cell<'_>, epoch: f64, curve: Curve) -> Series {
    let mut at: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for r in cell.runs.values() {
        for (s, v) in curve(r) {
            at.entry(s).or_default().push(v);
        }
    }
    let (x, y) = at
        .into_iter()
        .map(|(s, v)| (s as f64 / epoch, v.iter().sum::<f64>() / v.len() as f64))
        .unzip();
    Series::line(name, x, y)
}

/// J2: Tr F peaks higher at η_s than at η_l (paired) and the η_s peak lies in the first quarter of
/// training. Reversed when the large rate peaks significantly higher; not reproduced when the difference is
/// within noise or the small rate's higher peak comes late; inconclusive with fewer than two seeds.
fn explosion_verdict(small: &Cell<'_>, large: &Cell<'_>, epoch: f64, total_steps: usize) -> Verdict {
    let peaks = |c: &Cell<'_>| c.values(|r| peak(r, "trace_f").1);
    let diff = Stat::paired(&peaks(small), &peaks(large));
    let at = small.summary(|r| peak(r, "trace_f").0 as f64 / epoch);
    let early = at.n > 0 && at.mean * epoch <= total_steps as f64 / 4.0;
    let evidence = format!(
        "peak Tr F at η_s − at η_l (paired) {}; the η_s peak at epoch {} of {}",
        diff.show(3),
        at.show(1),
        number(total_steps as f64 / epoch)
    );
    let outcome = match diff.sign() {
        _ if diff.n < 2 => ClaimOutcome::Inconclusive,
        1 if early => ClaimOutcome::Reproduced,
        -1 => ClaimOutcome::Reversed,
        _ => ClaimOutcome::NotReproduced,
    };
    Verdict {
        claim: format!("J2: Tr F explodes early at η_s = {SMALL_LR}, not at η_l = {LARGE_LR}"),
        outcome,
        evidence,
    }
}

/// J3: the Fisher penalty lowers the peak of Tr F at η_s (paired).
fn prevention_verdict(small: &Cell<'_>, penalized: &Cell<'_>) -> Verdict {
    let peaks = |c: &Cell<'_>| c.values(|r| peak(r, "trace_f").1);
    let diff = Stat::paired(&peaks(small), &peaks(penalized));
    Verdict {
        claim: "J3: the Fisher penalty prevents the explosion (lower peak Tr F at η_s)".into(),
        outcome: ClaimOutcome::of_effect(diff.mean, diff.se, super::smith::SIGNIFICANT_SE),
        evidence: format!(
            "peak Tr F without the penalty − with it (paired) {}",
            diff.show(3)
        ),
    }
}

/// A break-even conjecture over the four comparisons (larger η at each b; smaller b at each η) of the
/// maximum of `curve` after initialization, predicted to be lower (`sign = −1`) or higher (`+1`) for the
/// larger η or the smaller b. A comparison holds when the paired difference is significant in the
/// predicted direction, against the conjecture when significant the other way; it is undecided instead
/// when the arm that must stay below the other was still rising at the end of the run in some seed (its
/// maximum along the trajectory was not attained). Reproduced when all four hold; reversed when none
/// holds and three or more are against; not reproduced when any is against or (none undecided) some are
/// within noise; inconclusive when some are undecided and none against, or with fewer than two seeds.
fn conjecture_verdict(claim: &str, runs: &[FinishedRun], curve: Curve, sign: i32) -> Verdict {
    let cell = |lr: f64, b: usize| Cell::of(runs, &break_even_arm(lr, b), GROUP_BREAK_EVEN);
    let maxima = |c: &Cell<'_>| c.values(|r| curve_max(r, curve).map_or(f64::NAN, |m| m.1));
    let rising = |c: &Cell<'_>| c.runs.values().any(|r| curve_max(r, curve).is_some_and(|m| m.2));
    let [bs, bl] = BATCHES;
    // (label, the arm predicted to move in direction `sign`, the reference arm)
    let pairs = [
        (
            format!("η {LARGE_LR} vs {SMALL_LR} at b = {bs}"),
            cell(LARGE_LR, bs),
            cell(SMALL_LR, bs),
        ),
        (
            format!("η {LARGE_LR} vs {SMALL_LR} at b = {bl}"),
            cell(LARGE_LR, bl),
            cell(SMALL_LR, bl),
        ),
        (
            format!("b {bs} vs {bl} at η = {SMALL_LR}"),
            cell(SMALL_LR, bs),
            cell(SMALL_LR, bl),
        ),
        (
            format!("b {bs} vs {bl} at η = {LARGE_LR}"),
            cell(LARGE_LR, bs),
            cell(LARGE_LR, bl),
        ),
    ];
    let (mut hold, mut against, mut undecided) = (0, 0, 0);
    let mut evidence = Vec::new();
    for (label, moved, reference) in &pairs {
        let d = Stat::paired(&maxima(moved), &maxima(reference));
        // The arms predicted to be higher and lower: a rising arm's maximum may still grow, so a comparison
        // only counts when the arm it needs to stay below did not rise to the end.
        let (higher, lower) = if sign < 0 {
            (reference, moved)
        } else {
            (moved, reference)
        };
        let note = match d.sign() * sign {
            1 if !rising(lower) => {
                hold += 1;
                ""
            }
            -1 if !rising(higher) => {
                against += 1;
                " (against)"
            }
            0 => "",
            _ => {
                undecided += 1;
                " (undecided: a maximum was not attained within the run)"
            }
        };
        evidence.push(format!("{label}: {}{note}", d.show(4)));
    }
    let outcome = if pairs
        .iter()
        .any(|(_, a, b)| Stat::paired(&maxima(a), &maxima(b)).n < 2)
    {
        ClaimOutcome::Inconclusive
    } else if hold == pairs.len() {
        ClaimOutcome::Reproduced
    } else if hold == 0 && against >= 3 {
        ClaimOutcome::Reversed
    } else if against == 0 && undecided > 0 {
        ClaimOutcome::Inconclusive
    } else {
        ClaimOutcome::NotReproduced
    };
    Verdict {
        claim: claim.into(),
        outcome,
        evidence: format!(
            "paired differences of the maxima (predicted {}): {}; {hold} of 4 as predicted, {against} \
             against, {undecided} undecided",
            if sign < 0 { "< 0" } else { "> 0" },
            evidence.join("; ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::smith::tests::finished;

    /// The break-even runs with the given λ_H¹ peaks per (η, b), reached at step 10 and followed by a lower
    /// value at step 20 — or, for `rising` arms, reached at the last step.
    fn break_even(peaks: [(f64, usize, f64, bool); 4]) -> Vec<FinishedRun> {
        let mut runs = Vec::new();
        for seed in 0..3u64 {
            for (lr, b, top, rising) in peaks {
                let top = top + 0.01 * seed as f64;
                let curve = if rising {
                    vec![(0, 0.5), (10, top - 0.5), (20, top)]
                } else {
                    vec![(0, 0.5), (10, top), (20, top - 0.5)]
                };
                runs.push(finished(
                    &break_even_arm(lr, b),
                    GROUP_BREAK_EVEN,
                    seed,
                    &[("sharpness", curve)],
                    &[],
                ));
            }
        }
        runs
    }

    #[test]
    fn conjecture_one_counts_comparisons_and_unattained_maxima() {
        let [bs, bl] = BATCHES;
        let (s, l) = (SMALL_LR, LARGE_LR);
        // Peaks of λ_H¹ for (η_s, b_s), (η_l, b_s), (η_s, b_l), (η_l, b_l); `rising`: the first arm is still
        // rising at the end.
        let verdict = |[a, b, c, d]: [f64; 4], rising: bool| {
            let p = [
                (s, bs, a, rising),
                (l, bs, b, false),
                (s, bl, c, false),
                (l, bl, d, false),
            ];
            conjecture_verdict("c", &break_even(p), &lambda_h1, -1).outcome
        };
        assert_eq!(verdict([5.0, 3.0, 7.0, 4.0], false), ClaimOutcome::Reproduced);
        // Every comparison reversed.
        assert_eq!(verdict([3.0, 5.0, 2.0, 4.0], false), ClaimOutcome::Reversed);
        // The small-η, small-batch arm is lower than the large-η one but still rising at the end: the two
        // comparisons it takes part in are undecided, the others hold.
        assert_eq!(verdict([2.0, 3.0, 7.0, 4.0], true), ClaimOutcome::Inconclusive);
        assert_eq!(verdict([2.0, 3.0, 7.0, 4.0], false), ClaimOutcome::NotReproduced);
    }

    #[test]
    fn effective_rank_is_trace_over_top_eigenvalue() {
        let r = finished(
            "a",
            "g",
            0,
            &[
                ("lambda_k1", vec![(0, 2.0), (5, 4.0), (9, 1.0)]),
                ("trace_k", vec![(0, 10.0), (5, 12.0), (7, 3.0), (9, 5.0)]),
            ],
            &[],
        );
        assert_eq!(effective_rank(&r), vec![(0, 5.0), (5, 3.0), (9, 5.0)]);
        // The maximum after initialization is the last point, so it was not attained.
        assert_eq!(curve_max(&r, &effective_rank), Some((9, 5.0, true)));
        assert_eq!(peak(&r, "lambda_k1"), (5, 4.0));
    }
}
