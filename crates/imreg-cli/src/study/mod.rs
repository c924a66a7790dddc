//! Empirical studies: a source's experiment on networks, as a named set of `imreg run` configs
//! (arms × groups × seeds) run as a sweep (`crate::sweep`: resumable per-run folders with completion
//! markers, shards, Slurm, locks), plus a study-specific report: tables of mean ± standard error over seeds,
//! figures with their CSV series, and a verdict per claim of the source (reproduced, not reproduced,
//! reversed, inconclusive), as measured.
//!
//! A study's outcome is empirical: `reproduce` runs every study at [`StudyScale::Reduced`]
//! ([`StudyScale::Smoke`] with `--quick`) and reports the verdicts, which never change its exit code.
//!
//! Layout of a study folder `DIR` (`imreg study run NAME --out DIR`): one sweep folder per dataset,
//! `DIR/<dataset>/` with `study.json` (name, dataset, scale, seeds), `manifest.jsonl`, the run folders
//! `run-0000/`, … and, after `imreg study report`, `report.md`, `report.json` and the study's figures;
//! `DIR/report.md` and `DIR/report.json` gather every dataset's report.
pub mod jastrzebski;
pub mod novack;
pub mod smith;
pub mod without_replacement;
use crate::config::{DataConfig, ExperimentConfig, ShippedConfig};
use crate::error::{CliError, Result};
use crate::experiment::{FolderOptions, RunSummary};
use crate::sweep::{self, ManifestEntry, Shard, ShardReport};
use crate::{limits, output};
use imreg_plot::write_atomic;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Which images (or the embedded UCI digits) a study runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StudyDataset {
    /// The embedded UCI optical digits (1,797 images 8 × 8).
    Digits,
    /// The shipped MNIST digits (10,000 images 28 × 28).
    Mnist,
    /// The shipped class-balanced Fashion-MNIST subset (12,000 images 28 × 28).
    FashionMnist,
}

impl StudyDataset {
    /// Every dataset, in report order.
    pub const ALL: [StudyDataset; 3] = [
        StudyDataset::Digits,
        StudyDataset::Mnist,
        StudyDataset::FashionMnist,
    ];

    /// The name used on the command line and as the dataset's folder.
    pub fn name(self) -> &'static str {
        match self {
            StudyDataset::Digits => "digits",
            StudyDataset::Mnist => "mnist",
            StudyDataset::FashionMnist => "fashion_mnist",
        }
    }

    /// Parses [`StudyDataset::name`] (also `fashion-mnist`).
    pub fn parse(s: &str) -> Result<StudyDataset> {
        match s {
            "digits" => Ok(StudyDataset::Digits),
            "mnist" => Ok(StudyDataset::Mnist),
            "fashion_mnist" | "fashion-mnist" => Ok(StudyDataset::FashionMnist),
            other => Err(CliError::arg(
                "--dataset",
                format!("unknown dataset {other:?} (digits, mnist, fashion_mnist)"),
            )),
        }
    }

    /// The images' shape `[C, H, W]`.
    pub fn input_shape(self) -> [usize; 3] {
        match self {
            StudyDataset::Digits => [1, 8, 8],
            StudyDataset::Mnist | StudyDataset::FashionMnist => [1, 28, 28],
        }
    }

    /// The `[data]` table: all 1,797 digits, or the first `per_class` images of each class of the shipped
    /// part `part` (`[split]` then splits what is kept).
    pub fn data(self, shipped: ShippedConfig) -> DataConfig {
        match self {
            StudyDataset::Digits => DataConfig::Digits {},
            StudyDataset::Mnist => DataConfig::Mnist(shipped),
            StudyDataset::FashionMnist => DataConfig::FashionMnist(shipped),
        }
    }
}

/// How large a study runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StudyScale {
    /// CI-sized (`reproduce --quick`), one seed: exercises the machinery, not evidence.
    Smoke,
    /// What `reproduce` runs (minutes on two cores): fewer examples and epochs; reported, weak evidence.
    Reduced,
    /// The docs' tables: ≥ 3 seeds, trained until the train loss has plateaued.
    Full,
}

impl StudyScale {
    pub fn name(self) -> &'static str {
        match self {
            StudyScale::Smoke => "smoke",
            StudyScale::Reduced => "reduced",
            StudyScale::Full => "full",
        }
    }

    pub fn parse(s: &str) -> Result<StudyScale> {
        match s {
            "smoke" => Ok(StudyScale::Smoke),
            "reduced" => Ok(StudyScale::Reduced),
            "full" => Ok(StudyScale::Full),
            other => Err(CliError::arg(
                "--scale",
                format!("unknown scale {other:?} (smoke, reduced, full)"),
            )),
        }
    }

    /// The seeds of a run without `--seeds`: 1 (smoke), 2 (reduced), 3 (full).
    pub fn default_seeds(self) -> Vec<u64> {
        match self {
            StudyScale::Smoke => vec![0],
            StudyScale::Reduced => vec![0, 1],
            StudyScale::Full => vec![0, 1, 2],
        }
    }
}

/// One instance of a study: dataset, scale and seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudyOptions {
    pub dataset: StudyDataset,
    pub scale: StudyScale,
    pub seeds: Vec<u64>,
}

impl StudyOptions {
    /// The dataset at `scale` with the scale's default seeds.
    pub fn new(dataset: StudyDataset, scale: StudyScale) -> Self {
        StudyOptions {
            dataset,
            scale,
            seeds: scale.default_seeds(),
        }
    }
}

/// One run of a study: which arm and group it belongs to, its seed, and the complete config (whose `seed`
/// the framework sets to `seed`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudyRun {
    pub arm: String,
    pub group: String,
    pub seed: u64,
    pub config: ExperimentConfig,
}

/// A finished run as the report sees it: the run, its final metrics (`summary.json`), and its recorded
/// series (`metrics.csv`, the non-NaN `(step, value)` points of each column).
#[derive(Clone, Debug, PartialEq)]
pub struct FinishedRun {
    pub run: StudyRun,
    pub final_metrics: BTreeMap<String, f64>,
    pub series: BTreeMap<String, Vec<(usize, f64)>>,
    pub diverged_at: Option<usize>,
}

/// How a claim of the source fared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimOutcome {
    /// The measured effect has the claimed sign and is larger than its standard error allows by chance.
    Reproduced,
    /// No effect distinguishable from noise.
    NotReproduced,
    /// The opposite effect, distinguishable from noise.
    Reversed,
    /// Too few seeds, or diverged runs, to say.
    Inconclusive,
}

impl ClaimOutcome {
    pub fn label(self) -> &'static str {
        match self {
            ClaimOutcome::Reproduced => "reproduced",
            ClaimOutcome::NotReproduced => "not reproduced",
            ClaimOutcome::Reversed => "reversed",
            ClaimOutcome::Inconclusive => "inconclusive",
        }
    }

    /// The outcome of the claim "`effect` > 0" for a measured effect with standard error `se` (of the
    /// difference): reproduced when `effect > z·se`, reversed when `effect < −z·se`, not reproduced in
    /// between; inconclusive when `se` is not finite (fewer than two seeds) or `effect` is not finite.
    pub fn of_effect(effect: f64, se: f64, z: f64) -> ClaimOutcome {
        if !(effect.is_finite() && se.is_finite()) {
            ClaimOutcome::Inconclusive
        } else if effect > z * se {
            ClaimOutcome::Reproduced
        } else if effect < -z * se {
            ClaimOutcome::Reversed
        } else {
            ClaimOutcome::NotReproduced
        }
    }
}

/// A claim of the source, its outcome, and the numbers behind it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub claim: String,
    pub outcome: ClaimOutcome,
    pub evidence: String,
}

/// A study's report on one dataset: Markdown (tables, figure links, verdicts), JSON, and the verdicts. The
/// study writes its figures (with their CSV series) into the dataset folder itself.
#[derive(Clone, Debug, PartialEq)]
pub struct StudyReport {
    pub markdown: String,
    pub json: serde_json::Value,
    pub verdicts: Vec<Verdict>,
}

/// An empirical study.
pub trait Study: Sync {
    /// Its name: `imreg study run NAME`.
    fn name(&self) -> &'static str;
    /// One paragraph: the source's claims this study tests.
    fn claims(&self) -> &'static str;
    /// The datasets it runs on (all of them when `--dataset` is not given); by default every dataset.
    fn datasets(&self) -> &'static [StudyDataset] {
        &StudyDataset::ALL
    }
    /// Every run of one instance.
    fn runs(&self, opts: &StudyOptions) -> Result<Vec<StudyRun>>;
    /// The report of one instance from its finished runs (in [`Study::runs`] order); figures go to `out`.
    fn report(&self, opts: &StudyOptions, runs: &[FinishedRun], out: &Path) -> Result<StudyReport>;
}

/// Every built-in study, in report order.
pub fn registry() -> Vec<Box<dyn Study>> {
    vec![
        Box::new(novack::Novack),
        Box::new(smith::Smith),
        Box::new(jastrzebski::Jastrzebski),
        Box::new(without_replacement::WithoutReplacement),
    ]
}

/// The study named `name` of `studies`.
pub fn find<'s>(studies: &'s [Box<dyn Study>], name: &str) -> Result<&'s dyn Study> {
    studies
        .iter()
        .find(|s| s.name() == name)
        .map(|s| s.as_ref())
        .ok_or_else(|| {
            let known: Vec<&str> = studies.iter().map(|s| s.name()).collect();
            CliError::arg("NAME", format!("unknown study {name:?} ({})", known.join(", ")))
        })
}

/// The datasets of `study` to run: `requested` (which it must support), or all of its own.
pub fn datasets(study: &dyn Study, requested: Option<StudyDataset>) -> Result<Vec<StudyDataset>> {
    match requested {
        None => Ok(study.datasets().to_vec()),
        Some(d) if study.datasets().contains(&d) => Ok(vec![d]),
        Some(d) => Err(CliError::arg(
            "--dataset",
            format!(
                "study {} does not run on {} (it runs on {})",
                study.name(),
                d.name(),
                study
                    .datasets()
                    .iter()
                    .map(|d| d.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// The sweep folder of one dataset of the study folder `out`.
pub fn dataset_dir(out: &Path, dataset: StudyDataset) -> PathBuf {
    out.join(dataset.name())
}

/// What a dataset folder records about its instance (`study.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Instance {
    study: String,
    #[serde(flatten)]
    options: StudyOptions,
}

const INSTANCE_FILE: &str = "study.json";

/// The manifest of one instance: the study's runs as sweep entries (`run-0000`, … in [`Study::runs`]
/// order, parameters `arm`, `group`, `seed`), each config with the run's seed, a default name, and
/// validated as `imreg run` validates it.
pub fn manifest(study: &dyn Study, opts: &StudyOptions) -> Result<Vec<ManifestEntry>> {
    if opts.seeds.is_empty() {
        return Err(CliError::arg("--seeds", "no seeds"));
    }
    let runs = study.runs(opts)?;
    let origin = PathBuf::from(format!("study {} on {}", study.name(), opts.dataset.name()));
    limits::at_most(
        &origin,
        "--seeds",
        "runs (arms × groups × seeds)",
        u64::try_from(runs.len()).unwrap_or(u64::MAX),
        limits::MAX_SWEEP_RUNS,
    )?;
    runs.into_iter()
        .enumerate()
        .map(|(index, run)| {
            let mut config = run.config;
            config.seed = run.seed;
            config.name.get_or_insert_with(|| {
                format!(
                    "{}-{}-{}-{}-s{}",
                    study.name(),
                    opts.dataset.name(),
                    run.group,
                    run.arm,
                    run.seed
                )
            });
            config.validate(&origin)?;
            let params = BTreeMap::from([
                ("arm".to_string(), serde_json::Value::from(run.arm)),
                ("group".to_string(), serde_json::Value::from(run.group)),
                ("seed".to_string(), serde_json::Value::from(run.seed)),
            ]);
            Ok(ManifestEntry {
                id: format!("run-{index:04}"),
                index,
                params,
                config,
            })
        })
        .collect()
}

/// Makes `DIR/<dataset>` the sweep folder of this instance (bound to its manifest; an instance with other
/// runs — another scale, other seeds — is refused) and records the instance. Returns the folder, its
/// manifest file and the entries.
pub fn prepare(
    study: &dyn Study,
    opts: &StudyOptions,
    out: &Path,
) -> Result<(PathBuf, PathBuf, Vec<ManifestEntry>)> {
    let entries = manifest(study, opts)?;
    output::claim(out, "study")?;
    let dir = dataset_dir(out, opts.dataset);
    let manifest_file = dir.join("manifest.jsonl");
    sweep::prepare_out(&dir, &entries, &manifest_file)?;
    let instance = Instance {
        study: study.name().to_string(),
        options: opts.clone(),
    };
    let json = serde_json::to_string_pretty(&instance).map_err(|e| CliError::Failed(e.to_string()))?;
    write_atomic(&dir.join(INSTANCE_FILE), json.as_bytes())?;
    Ok((dir, manifest_file, entries))
}

/// Runs shard `shard` of one instance into `DIR/<dataset>/`; finished runs are skipped, so an interrupted
/// study resumes. `tick` is called after each run.
pub fn run(
    study: &dyn Study,
    opts: &StudyOptions,
    out: &Path,
    shard: Shard,
    folder: &FolderOptions,
    tick: &(dyn Fn() + Sync),
) -> Result<ShardReport> {
    let (dir, manifest_file, entries) = prepare(study, opts, out)?;
    sweep::run_shard(&entries, shard, &dir, &manifest_file, folder, tick)
}

/// The non-NaN `(step, value)` points of every column of a run's `metrics.csv`.
pub fn read_series(path: &Path) -> Result<BTreeMap<String, Vec<(usize, f64)>>> {
    let text = std::fs::read_to_string(path).map_err(|e| CliError::io_while("reading", path, e))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let mut series: BTreeMap<String, Vec<(usize, f64)>> = BTreeMap::new();
    for (i, line) in lines.enumerate() {
        let bad = |why: String| CliError::input(path, format!("line {}", i + 2), why);
        let values = line
            .split(',')
            .map(|v| v.parse::<f64>().map_err(|e| bad(format!("{v:?}: {e}"))))
            .collect::<Result<Vec<f64>>>()?;
        if values.len() != header.len() {
            return Err(bad(format!(
                "{} values for {} columns",
                values.len(),
                header.len()
            )));
        }
        // Steps are non-negative integers written by the recorder; a row of NaN marks a divergence.
        let step = values[0];
        if !(step >= 0.0 && step.fract() == 0.0) {
            return Err(bad(format!("step {step} is not a step")));
        }
        for (name, &v) in header.iter().zip(&values).skip(1) {
            if !v.is_nan() {
                series
                    .entry((*name).to_string())
                    .or_default()
                    .push((step as usize, v));
            }
        }
    }
    Ok(series)
}

/// The finished runs of one dataset folder (refused, exit 1, unless every run is complete) and the
/// instance it holds, which must be one of `study`.
pub fn collect(study: &dyn Study, dir: &Path) -> Result<(StudyOptions, Vec<FinishedRun>)> {
    let ip = dir.join(INSTANCE_FILE);
    let text = std::fs::read_to_string(&ip).map_err(|e| {
        CliError::input(
            &ip,
            "--out",
            format!("not a study folder (run `imreg study run` first): {e}"),
        )
    })?;
    let instance: Instance =
        serde_json::from_str(&text).map_err(|e| CliError::input(&ip, "<file>", e.to_string()))?;
    if instance.study != study.name() {
        return Err(CliError::input(
            &ip,
            "study",
            format!("holds study {}, not {}", instance.study, study.name()),
        ));
    }
    let (finished, _) = sweep::finished_runs(dir, None, false)?;
    let runs = finished
        .into_iter()
        .map(|(e, s): (ManifestEntry, RunSummary)| {
            let text = |key: &str| {
                e.params
                    .get(key)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            Ok(FinishedRun {
                run: StudyRun {
                    arm: text("arm"),
                    group: text("group"),
                    seed: e.config.seed,
                    config: e.config.clone(),
                },
                final_metrics: s.final_metrics.into_iter().collect(),
                series: read_series(&dir.join(&e.id).join("metrics.csv"))?,
                diverged_at: s.diverged_at,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((instance.options, runs))
}

/// One dataset's report, as written to `DIR/<dataset>/report.{md,json}`.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetReport {
    pub options: StudyOptions,
    pub report: StudyReport,
}

/// Collects and reports every dataset folder of the study folder `out` (those `datasets` names, or all
/// that exist), writes each `report.md`/`report.json` and the combined `out/report.md`/`report.json`.
pub fn report(study: &dyn Study, out: &Path, datasets: &[StudyDataset]) -> Result<Vec<DatasetReport>> {
    if !output::is_owned(out) {
        return Err(CliError::input(
            out,
            "--out",
            format!(
                "is not a study folder imreg wrote (no {} marker)",
                output::OWNER_MARKER
            ),
        ));
    }
    let mut reports = Vec::new();
    for &d in datasets {
        let dir = dataset_dir(out, d);
        if !dir.join(INSTANCE_FILE).is_file() {
            continue;
        }
        let (options, runs) = collect(study, &dir)?;
        let report = study.report(&options, &runs, &dir)?;
        write_atomic(&dir.join("report.md"), report.markdown.as_bytes())?;
        write_json(&dir.join("report.json"), &dataset_json(study, &options, &report))?;
        reports.push(DatasetReport { options, report });
    }
    if reports.is_empty() {
        return Err(CliError::input(
            out,
            "--out",
            format!(
                "holds no dataset folder of study {} (run `imreg study run` first)",
                study.name()
            ),
        ));
    }
    write_atomic(&out.join("report.md"), markdown(study, &reports, 1).as_bytes())?;
    let json = serde_json::json!({
        "study": study.name(),
        "datasets": reports.iter().map(|r| dataset_json(study, &r.options, &r.report)).collect::<Vec<_>>(),
    });
    write_json(&out.join("report.json"), &json)?;
    Ok(reports)
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Failed(e.to_string()))?;
    write_atomic(path, text.as_bytes())?;
    Ok(())
}

fn dataset_json(study: &dyn Study, options: &StudyOptions, report: &StudyReport) -> serde_json::Value {
    serde_json::json!({
        "study": study.name(),
        "dataset": options.dataset,
        "scale": options.scale,
        "seeds": options.seeds,
        "verdicts": report.verdicts,
        "report": report.json,
    })
}

/// The verdicts of one dataset as a Markdown table.
pub fn verdict_table(verdicts: &[Verdict]) -> String {
    let mut t = Table::new(&["claim", "verdict", "evidence"]);
    for v in verdicts {
        t.row([v.claim.clone(), v.outcome.label().to_string(), v.evidence.clone()]);
    }
    t.markdown()
}

/// The combined Markdown of a study's dataset reports, headings starting at level `level`: the claims,
/// then per dataset its scale, seeds and verdict table, then the dataset's own report.
pub fn markdown(study: &dyn Study, reports: &[DatasetReport], level: usize) -> String {
    let h = "#".repeat(level);
    let mut s = format!("{h} Study `{}`\n\n{}\n", study.name(), study.claims());
    for r in reports {
        let o = &r.options;
        s.push_str(&format!(
            "\n{h}# {} ({} scale, seeds {:?})\n\n{}",
            o.dataset.name(),
            o.scale.name(),
            o.seeds,
            verdict_table(&r.report.verdicts)
        ));
        if o.scale == StudyScale::Smoke {
            s.push_str("\nSmoke scale: this exercises the machinery; it is not evidence.\n");
        }
        s.push('\n');
        s.push_str(&r.report.markdown);
    }
    s
}

/// Mean and standard error of the mean `s/√n` (sample standard deviation, `n − 1`); the standard error is
/// NaN for fewer than two values, and both are NaN for none.
pub fn mean_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, f64::NAN);
    }
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64;
    (mean, (var / n as f64).sqrt())
}

/// `mean ± se` with `digits` decimals (`± n/a` without a standard error).
pub fn fmt_mean_se((mean, se): (f64, f64), digits: usize) -> String {
    if se.is_finite() {
        format!("{mean:.digits$} ± {se:.digits$}")
    } else {
        format!("{mean:.digits$} ± n/a")
    }
}

/// A Markdown table.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|h| (*h).to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (missing cells are empty, extra cells dropped).
    pub fn row<I: IntoIterator<Item = String>>(&mut self, cells: I) -> &mut Self {
        let mut r: Vec<String> = cells.into_iter().take(self.header.len()).collect();
        r.resize(self.header.len(), String::new());
        self.rows.push(r);
        self
    }

    /// The table in GitHub Markdown (cells escaped).
    pub fn markdown(&self) -> String {
        let cell = |s: &String| s.replace('|', "\\|").replace('\n', " ");
        let line =
            |cells: &[String]| format!("| {} |\n", cells.iter().map(cell).collect::<Vec<_>>().join(" | "));
        let mut s = line(&self.header);
        s.push_str(&format!("|{}\n", "---|".repeat(self.header.len())));
        for r in &self.rows {
            s.push_str(&line(r));
        }
        s
    }
}

/// The values of the final metric `metric` of every non-diverged run of `(group, arm)`, and how many of the
/// group's runs diverged.
pub fn final_values(runs: &[FinishedRun], group: &str, arm: &str, metric: &str) -> (Vec<f64>, usize) {
    let mine = runs.iter().filter(|r| r.run.group == group && r.run.arm == arm);
    let (mut values, mut diverged) = (Vec::new(), 0);
    for r in mine {
        match (r.diverged_at, r.final_metrics.get(metric)) {
            (None, Some(v)) if v.is_finite() => values.push(*v),
            _ => diverged += 1,
        }
    }
    (values, diverged)
}

/// A table of the final `metric` per (group, arm), in the order the runs first appear: seeds, mean ± SE
/// over the seeds that did not diverge, and how many diverged.
pub fn arm_table(runs: &[FinishedRun], metric: &str, digits: usize) -> Table {
    let mut t = Table::new(&["group", "arm", "seeds", metric, "diverged"]);
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for r in runs {
        let key = (r.run.group.as_str(), r.run.arm.as_str());
        if !seen.contains(&key) {
            seen.push(key);
        }
    }
    for (group, arm) in seen {
        let (values, diverged) = final_values(runs, group, arm, metric);
        t.row([
            group.to_string(),
            arm.to_string(),
            (values.len() + diverged).to_string(),
            fmt_mean_se(mean_se(&values), digits),
            diverged.to_string(),
        ]);
    }
    t
}

/// Runs every study of `studies` on each of its datasets at Reduced scale (Smoke when `quick`) into
/// `out/studies/<name>/` and returns the section "Empirical studies (reported, not pass/fail)" of the
/// `reproduce` report and its JSON. A study's verdict never fails `reproduce`; a run that cannot complete
/// does (the error).
pub fn reproduce_section(
    studies: &[Box<dyn Study>],
    out: &Path,
    quick: bool,
    quiet: bool,
) -> Result<(String, serde_json::Value)> {
    let scale = if quick {
        StudyScale::Smoke
    } else {
        StudyScale::Reduced
    };
    let root = out.join("studies");
    output::claim(&root, "studies")?;
    let mut md = String::from(
        "\n## Empirical studies (reported, not pass/fail)\n\nEach study reruns a source's experiment on networks \
         and reports its outcome as measured: mean ± standard error over seeds and a verdict per claim. \
         The verdicts never change the exit code.\n",
    );
    let mut json = Vec::new();
    for study in studies {
        let dir = root.join(study.name());
        let ds = study.datasets().to_vec();
        for &d in &ds {
            let opts = StudyOptions::new(d, scale);
            let started = std::time::Instant::now();
            run(
                study.as_ref(),
                &opts,
                &dir,
                Shard::ALL,
                &FolderOptions {
                    force: true,
                    no_figures: true,
                },
                &|| {},
            )?;
            if !quiet {
                outln!(
                    "study {} on {} ({} scale): {:.1} s",
                    study.name(),
                    d.name(),
                    scale.name(),
                    started.elapsed().as_secs_f64()
                );
            }
        }
        let reports = report(study.as_ref(), &dir, &ds)?;
        md.push('\n');
        md.push_str(&markdown(study.as_ref(), &reports, 3));
        json.push(serde_json::json!({
            "study": study.name(),
            "folder": dir.strip_prefix(out).unwrap_or(&dir),
            "datasets": reports.iter().map(|r| dataset_json(study.as_ref(), &r.options, &r.report)).collect::<Vec<_>>(),
        }));
    }
    Ok((md, serde_json::Value::Array(json)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A study of SGD step sizes on linear regression: arms `small` and `large` learning rate.
    struct LinearStudy;

    impl Study for LinearStudy {
        fn name(&self) -> &'static str {
            "linear"
        }
        fn claims(&self) -> &'static str {
            "A larger step size reaches a lower training loss in a fixed number of steps."
        }
        fn datasets(&self) -> &'static [StudyDataset] {
            &[StudyDataset::Digits]
        }
        fn runs(&self, opts: &StudyOptions) -> Result<Vec<StudyRun>> {
            let mut out = Vec::new();
            for (arm, lr) in [("small", 0.01), ("large", 0.1)] {
                for &seed in &opts.seeds {
                    let text = format!(
                        "steps = 30\n[data]\nkind = \"gaussian_linear\"\nn = 16\ndim = 3\nnoise = 0.1\n\
                         [model]\nkind = \"linear_regression\"\n[optimizer]\nkind = \"sgd\"\nlr = {lr}\n\
                         batch_size = 4\n[track]\nevery = 10\n"
                    );
                    let config = ExperimentConfig::from_toml_str(&text, Path::new("linear"))?;
                    out.push(StudyRun {
                        arm: arm.into(),
                        group: "lr".into(),
                        seed,
                        config,
                    });
                }
            }
            Ok(out)
        }
        fn report(&self, _: &StudyOptions, runs: &[FinishedRun], _: &Path) -> Result<StudyReport> {
            let (small, _) = final_values(runs, "lr", "small", "loss");
            let (large, _) = final_values(runs, "lr", "large", "loss");
            let (ms, ss) = mean_se(&small);
            let (ml, sl) = mean_se(&large);
            let verdict = Verdict {
                claim: self.claims().into(),
                outcome: ClaimOutcome::of_effect(ms - ml, (ss * ss + sl * sl).sqrt(), 2.0),
                evidence: format!("{ms} vs {ml}"),
            };
            Ok(StudyReport {
                markdown: arm_table(runs, "loss", 6).markdown(),
                json: serde_json::json!({ "small": ms, "large": ml }),
                verdicts: vec![verdict],
            })
        }
    }

    #[test]
    fn mean_and_standard_error() {
        let (m, se) = mean_se(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m, 2.5);
        // s² = (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3, SE = √(5/12).
        assert!((se - (5.0f64 / 12.0).sqrt()).abs() < 1e-15);
        assert!(mean_se(&[7.0]).1.is_nan());
        assert_eq!(fmt_mean_se((0.5, f64::NAN), 2), "0.50 ± n/a");
        assert_eq!(fmt_mean_se((0.5, 0.0125), 3), "0.500 ± 0.013");
        assert_eq!(ClaimOutcome::of_effect(1.0, 0.1, 2.0), ClaimOutcome::Reproduced);
        assert_eq!(ClaimOutcome::of_effect(-1.0, 0.1, 2.0), ClaimOutcome::Reversed);
        assert_eq!(
            ClaimOutcome::of_effect(0.1, 0.1, 2.0),
            ClaimOutcome::NotReproduced
        );
        assert_eq!(
            ClaimOutcome::of_effect(1.0, f64::NAN, 2.0),
            ClaimOutcome::Inconclusive
        );
        let mut t = Table::new(&["a", "b"]);
        t.row(["x|y".to_string()]);
        assert_eq!(t.markdown(), "| a | b |\n|---|---|\n| x\\|y |  |\n");
    }

    /// The study runs as a sweep, its report's mean ± SE are those of the runs' final losses, an
    /// interrupted study (one shard done) is refused by `report` and resumes without redoing finished runs,
    /// and another scale in the same folder is refused.
    #[test]
    fn a_study_runs_reports_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("linear");
        let study = LinearStudy;
        let opts = StudyOptions {
            dataset: StudyDataset::Digits,
            scale: StudyScale::Reduced,
            seeds: vec![0, 1, 2],
        };
        let folder = FolderOptions {
            force: true,
            no_figures: true,
        };
        let half = run(&study, &opts, &out, Shard { index: 0, count: 2 }, &folder, &|| {}).unwrap();
        assert_eq!(half.ran.len(), 3);
        let e = report(&study, &out, &StudyDataset::ALL).unwrap_err().to_string();
        assert!(e.contains("3 of 6 runs are not complete"), "{e}");
        let rest = run(&study, &opts, &out, Shard::ALL, &folder, &|| {}).unwrap();
        assert_eq!((rest.ran.len(), rest.skipped.len()), (3, 3));
        let reports = report(&study, &out, &StudyDataset::ALL).unwrap();
        assert_eq!(reports.len(), 1);
        let (options, runs) = collect(&study, &dataset_dir(&out, StudyDataset::Digits)).unwrap();
        assert_eq!(options, opts);
        assert_eq!(runs.len(), 6);
        assert_eq!(runs[4].run.arm, "large");
        assert_eq!(runs[4].run.seed, 1);
        // The recorded series ends at the final loss.
        assert_eq!(
            runs[4].series["loss"].last().unwrap(),
            &(30, runs[4].final_metrics["loss"])
        );
        let small: Vec<f64> = runs[..3].iter().map(|r| r.final_metrics["loss"]).collect();
        let expected = fmt_mean_se(mean_se(&small), 6);
        let md = &reports[0].report.markdown;
        assert!(
            md.contains(&format!("| lr | small | 3 | {expected} | 0 |")),
            "{md}"
        );
        let combined = std::fs::read_to_string(out.join("report.md")).unwrap();
        assert!(
            combined.contains("## digits (reduced scale, seeds [0, 1, 2])"),
            "{combined}"
        );
        assert!(out.join("digits/report.json").is_file());
        // Other seeds are another manifest: refused in this folder.
        let other = StudyOptions {
            seeds: vec![5],
            ..opts
        };
        let e = run(&study, &other, &out, Shard::ALL, &folder, &|| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains("different manifest"), "{e}");
    }

    /// `reproduce`'s section runs each study at smoke scale with `quick` (one seed: inconclusive verdicts)
    /// into `OUT/studies/<name>/` and reports it under its heading.
    #[test]
    fn the_reproduce_section_reports_each_study() {
        let dir = tempfile::tempdir().unwrap();
        let studies: Vec<Box<dyn Study>> = vec![Box::new(LinearStudy)];
        let (md, json) = reproduce_section(&studies, dir.path(), true, true).unwrap();
        assert!(
            md.contains("## Empirical studies (reported, not pass/fail)"),
            "{md}"
        );
        assert!(md.contains("#### digits (smoke scale, seeds [0])"), "{md}");
        assert!(md.contains("| inconclusive |"), "{md}");
        assert_eq!(json[0]["datasets"][0]["verdicts"][0]["outcome"], "inconclusive");
        assert!(dir
            .path()
            .join("studies/linear/digits/run-0001/_COMPLETE")
            .is_file());
    }
}
