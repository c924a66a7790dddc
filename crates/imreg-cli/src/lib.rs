//! The `imreg` command line: `reproduce`, `verify`, `run`, `analyze`, `sweep` (expand, run, status,
//! collect, and `submit` to Slurm), `study` (the empirical studies of [`study::registry`]: list, run,
//! report, submit).
//!
//! [`run_with_args`] is the whole program as a function (tests call it without the binary); [`main`] runs it
//! on the process arguments. A crate with its own theorem checks runs them next to the built-in ones with
//! [`main_with`] (or [`run_with_checks`]): the same `verify` / `reproduce` tables, `--json` report, figures
//! and exit codes. Exit codes: [`EXIT_OK`] 0, [`EXIT_FAILED`] 1 (a failed check or a computation
//! that could not complete), [`EXIT_BAD_INPUT`] 2 (bad file, field or argument; the message names them).
//!
//! ```
//! let code = imreg_cli::run_with_args(["imreg", "verify", "--only", "no-such-check"]);
//! assert_eq!(code, imreg_cli::EXIT_BAD_INPUT);
//! ```

/// `print!` for a command's output: a write that fails (standard output sent to a full disk, or to a pipe
/// whose reader left, in a host process that keeps `SIGPIPE` ignored) ends the command with an error naming
/// standard output (exit 1) instead of a panic. Only inside functions returning [`error::Result`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!($($arg)*))?
    };
}

/// `println!` for a command's output; see [`out!`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!("{}\n", format_args!($($arg)*)))?
    };
}

pub mod analyze;
pub mod config;
pub mod data;
pub mod density;
pub mod eigenvectors;
pub mod error;
pub mod experiment;
pub mod layers;
pub mod limits;
pub mod lock;
pub mod model;
pub mod network;
pub mod output;
pub mod params;
pub mod progress;
pub mod quantities;
pub mod record;
pub mod registry;
pub mod regularize;
pub mod report;
pub mod schedule;
pub mod slurm;
pub mod spectrum;
pub mod study;
pub mod sweep;
pub mod train;

pub use error::{CliError, Result, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK};

use clap::{Args, Parser, Subcommand};
use config::{DataConfig, ExperimentConfig, ModelConfig};
use imreg_check::{Check, CheckContext};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

#[derive(Parser, Debug)]
#[command(
    name = "imreg",
    version,
    about = "Theory-first numerical solvers for the implicit regularization of SGD"
)]
struct Cli {
    /// No progress bars and no informational output.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run every registered check with figures, then every empirical study; write report.md and report.json.
    Reproduce {
        /// Smaller problem sizes (every claim is still asserted).
        #[arg(long)]
        quick: bool,
        /// Output folder.
        #[arg(long, default_value = "imreg-out")]
        out: PathBuf,
        /// Only these checks (exact id or crate prefix such as `flow`); repeatable. Without it the
        /// empirical studies run too (Reduced scale; Smoke with --quick), reported, never pass/fail.
        #[arg(long, num_args = 1..)]
        only: Vec<String>,
    },
    /// Run checks without figures.
    Verify {
        #[arg(long, num_args = 1..)]
        only: Vec<String>,
        /// Print a JSON array of {id, claim, expected, measured, passed}.
        #[arg(long)]
        json: bool,
        /// Full problem sizes (default: quick).
        #[arg(long)]
        full: bool,
    },
    /// Run one experiment from a TOML config.
    Run {
        config: PathBuf,
        /// Output folder (default: runs/<config stem>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace an existing output folder.
        #[arg(long)]
        force: bool,
        /// Skip SVG/PNG figures.
        #[arg(long)]
        no_figures: bool,
        /// Run at most this many steps (a quick look at a long config; the resolved config records it).
        #[arg(long)]
        max_steps: Option<usize>,
    },
    /// Loss, gradient norm and curvature of given weights on given data.
    Analyze(Box<AnalyzeArgs>),
    /// Expand, run and collect sweeps.
    #[command(subcommand)]
    Sweep(SweepCommand),
    /// Empirical studies: a source's experiment run as a sweep, reported with mean ± SE and verdicts.
    #[command(subcommand)]
    Study(StudyCommand),
}

#[derive(Subcommand, Debug)]
enum StudyCommand {
    /// The built-in studies, their datasets and claims.
    List,
    /// Run a study (every dataset, or --dataset) into OUT/<dataset>/; finished runs are skipped.
    Run {
        name: String,
        #[command(flatten)]
        instance: InstanceArgs,
        #[arg(long, default_value = "0/1")]
        shard: String,
        /// Also draw each run's own figures (the report draws the study's).
        #[arg(long)]
        figures: bool,
    },
    /// Collect the finished runs of OUT and write the reports (OUT/report.md, OUT/report.json and one per
    /// dataset); an incomplete study is refused (exit 1).
    Report {
        name: String,
        #[arg(long)]
        out: PathBuf,
        /// Report this dataset only (default: every dataset folder in OUT), so that one finished dataset
        /// can be reported while another is still running.
        #[arg(long)]
        dataset: Option<String>,
    },
    /// Write (or submit with --sbatch) one Slurm job-array script per dataset, OUT/<dataset>/sweep.sbatch,
    /// whose tasks run the study's shards; then `imreg study report`.
    Submit(Box<StudySubmitArgs>),
}

#[derive(Args, Debug)]
struct StudySubmitArgs {
    name: String,
    #[command(flatten)]
    instance: InstanceArgs,
    #[command(flatten)]
    slurm: SlurmArgs,
}

#[derive(Args, Debug)]
struct InstanceArgs {
    /// digits | mnist | fashion_mnist (default: every dataset of the study).
    #[arg(long)]
    dataset: Option<String>,
    /// smoke | reduced | full.
    #[arg(long, default_value = "reduced")]
    scale: String,
    /// Seeds, comma separated (default: 1 smoke, 2 reduced, 3 full).
    #[arg(long, value_delimiter = ',')]
    seeds: Vec<u64>,
    /// The study folder (default: studies/<name>-<scale>).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct AnalyzeArgs {
    /// Take model and data from an experiment config instead of --model/--data.
    #[arg(long, conflicts_with_all = ["model", "data"])]
    config: Option<PathBuf>,
    /// linear_regression | logistic_regression | mlp | deep_linear | scalar_net | network
    #[arg(long)]
    model: Option<String>,
    /// Preset of network: cnn-relu, cnn-tanh, cnn-elu, fc-tanh, fc-relu, resnet20, resnet20-nobn, vgg-small, ….
    #[arg(long, conflicts_with = "spec")]
    preset: Option<String>,
    /// Description of network: a .toml or .json NetworkSpec file.
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Input shape of network, C,H,W (rows of the data hold C·H·W features, NCHW flattened).
    #[arg(long, value_delimiter = ',')]
    input_shape: Vec<usize>,
    /// Batch norm of network: train (batch statistics) | eval (running statistics from --params).
    #[arg(long)]
    batch_norm: Option<String>,
    /// Sum the Hessian's diagonal over all p unit vectors (exact trace) up to this many parameters; above,
    /// Hutch++ (an estimate with its standard error).
    #[arg(long, default_value_t = spectrum::DENSE_MAX_P)]
    exact_trace_max_p: usize,
    /// Hidden widths of mlp / deep_linear, comma separated.
    #[arg(long, value_delimiter = ',')]
    hidden: Vec<usize>,
    /// Layers have biases (linear/logistic/mlp: default on; deep_linear: default off).
    #[arg(long)]
    bias: Option<bool>,
    /// Hidden activation of mlp: tanh | relu | gelu | softplus | sigmoid | identity.
    #[arg(long)]
    activation: Option<String>,
    /// Loss of mlp: half_mse | full_mse | cross_entropy; of network: half_mse | squared_error | mse |
    /// cross_entropy | logistic, or PyTorch's names: MSELoss() (= mse, the mean over examples and outputs),
    /// CrossEntropyLoss(), CrossEntropyLoss(label_smoothing=0.1), BCEWithLogitsLoss().
    #[arg(long)]
    loss: Option<String>,
    /// The targets are integer class labels in 0..CLASSES.
    #[arg(long)]
    classes: Option<usize>,
    /// Width of scalar_net.
    #[arg(long)]
    k: Option<usize>,
    /// Weights: .safetensors (PyTorch state dict names) or a flat .npy.
    #[arg(long)]
    params: PathBuf,
    /// Inputs, N × d .npy.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Targets, N or N × C .npy (labels 0/1 for logistic regression).
    #[arg(long)]
    targets: Option<PathBuf>,
    /// What to compute, comma separated: lambda_max, top-k, bottom-k, trace, density, k-spectrum, fisher,
    /// batch-sharpness, diagonal, ggn-diagonal, blocks, eigenvectors, or all (default: top-k, bottom-k, trace,
    /// k-spectrum, fisher, and batch-sharpness with --batch-size).
    #[arg(long, value_delimiter = ',')]
    quantities: Vec<String>,
    /// Folder for eigenvectors.npy + eigenvectors.json (names), diagonal.npy and the density figure
    /// (density.svg/.png/.csv).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, default_value_t = 3)]
    top_k: usize,
    #[arg(long, default_value_t = 3)]
    bottom_k: usize,
    /// Form H densely and diagonalize it exactly up to this many parameters (per block for blocks).
    #[arg(long, default_value_t = quantities::SolverOptions::default().dense_max_p)]
    dense_max_p: usize,
    /// Most Lanczos steps (capped at p).
    #[arg(long, default_value_t = quantities::SolverOptions::default().lanczos_max_iter)]
    lanczos_max_iter: usize,
    /// Lanczos stops once every wanted pair has ‖Hv − λv‖ ≤ tol · max|λ| (0: all steps).
    #[arg(long, allow_hyphen_values = true, default_value_t = quantities::SolverOptions::default().lanczos_tol)]
    lanczos_tol: f64,
    /// What --lanczos-tol bounds: the residual bound, or the eigenvalue bound min(r, r²/δ̂) (gap estimated).
    #[arg(long, value_enum, default_value_t = config::LanczosStop::Residual)]
    lanczos_stop: config::LanczosStop,
    /// Hessian-vector products of Hutch++ (Tr H above --exact-trace-max-p).
    #[arg(long, default_value_t = quantities::SolverOptions::default().trace_matvecs)]
    trace_matvecs: usize,
    /// SLQ probe vectors of the density.
    #[arg(long, default_value_t = quantities::SolverOptions::default().slq_probes)]
    slq_probes: usize,
    /// Lanczos steps per SLQ probe (capped at p; ≥ p gives each probe's exact spectral measure).
    #[arg(long, default_value_t = quantities::SolverOptions::default().slq_steps)]
    slq_steps: usize,
    /// Grid points of the density.
    #[arg(long, default_value_t = quantities::SolverOptions::default().density_points)]
    density_points: usize,
    /// Gaussian kernel width of the density, relative to the width of the spectrum's nodes.
    #[arg(long, allow_hyphen_values = true, default_value_t = quantities::SolverOptions::default().density_sigma)]
    density_sigma: f64,
    /// Rademacher probes of the diagonal estimate (above --exact-trace-max-p).
    #[arg(long, default_value_t = quantities::SolverOptions::default().diagonal_probes)]
    diagonal_probes: usize,
    /// Also compute batch sharpness (both variants) at this batch size.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Batch sharpness is exact over all C(N, b) batches when there are at most this many (≤ 10⁷).
    #[arg(long, allow_hyphen_values = true, default_value_t = analyze::BatchEstimation::default().max_exact)]
    max_exact_batches: u64,
    /// Above that, Monte Carlo over at most this many seeded batches (2 ..= 10⁷).
    #[arg(long, allow_hyphen_values = true, default_value_t = analyze::BatchEstimation::default().mc_batches)]
    mc_batches: usize,
    /// Monte Carlo stops once its relative standard error is at most this (0: all --mc-batches).
    #[arg(long, allow_hyphen_values = true, default_value_t = analyze::BatchEstimation::default().mc_rel_se)]
    mc_rel_se: f64,
    /// Seed of every random choice of the estimators: Lanczos start vectors, Hutch++ probes, Monte Carlo
    /// batches (synthetic data from --config keep the config's seed).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum SweepCommand {
    /// Print the manifest (JSON lines) of a config with a [sweep] table.
    Expand { config: PathBuf },
    /// Run shard I/N of a manifest; finished runs are skipped.
    Run {
        #[arg(long)]
        manifest: PathBuf,
        #[arg(long, default_value = "0/1")]
        shard: String,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        no_figures: bool,
    },
    /// Merge finished runs into OUT/summary.csv and OUT/summary.jsonl; an incomplete sweep is refused (exit 1).
    Collect {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Collect the finished runs of an incomplete sweep (warning with the unfinished ones).
        #[arg(long)]
        allow_incomplete: bool,
    },
    /// Done, running, failed and missing runs of an output folder (exit 0 when every run is done, else 1).
    Status {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
    /// Write the Slurm job-array script of a manifest to OUT/sweep.sbatch (task I runs shard I/N) and print
    /// it, or submit it with --sbatch and print the job id.
    Submit(Box<SubmitArgs>),
}

#[derive(Args, Debug)]
struct SubmitArgs {
    #[arg(long)]
    manifest: PathBuf,
    /// The sweep's output folder (prepared and bound to the manifest now; the logs go to OUT/slurm).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    slurm: SlurmArgs,
}

#[derive(Args, Debug)]
struct SlurmArgs {
    /// Array tasks N, 1 ≤ N ≤ runs (default: one per run).
    #[arg(long)]
    tasks: Option<usize>,
    /// At most this many tasks at once (--array=0-(N-1)%K).
    #[arg(long)]
    max_parallel: Option<usize>,
    #[arg(long, default_value = "imreg-sweep")]
    job_name: String,
    /// Time limit per task: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS.
    #[arg(long)]
    time: Option<String>,
    /// CPUs per task (its runs execute in parallel, one thread each).
    #[arg(long, default_value_t = 1)]
    cpus_per_task: usize,
    /// Memory per task, e.g. 2G.
    #[arg(long)]
    mem: Option<String>,
    #[arg(long)]
    partition: Option<String>,
    /// The imreg binary the tasks run (default: this one).
    #[arg(long)]
    imreg: Option<PathBuf>,
    #[arg(long)]
    no_figures: bool,
    /// Submit with `sbatch --parsable` and print the job id.
    #[arg(long)]
    sbatch: bool,
}

/// Runs the program on the process arguments and returns the exit code.
pub fn main() -> i32 {
    start_program();
    run_with_args(std::env::args_os())
}

/// What the program's entry points ([`main`], [`main_with`]) set up before anything runs; a host process
/// that calls [`run_with_args`] (the Python module, tests) decides both for itself (the Python module tunes
/// the allocator and keeps Python's signal handling).
///
/// * The tape's large, short-lived buffers stay in the heap instead of being page-faulted in on every
///   evaluation (see `imreg_ad::alloc`; it changes no result).
/// * A reader that stops reading (`imreg sweep status | head -1`) ends the program quietly, as it ends `cat`
///   or `git log`: the default action of `SIGPIPE`. Rust's runtime ignores that signal, so the next
///   `println!` would panic on the broken pipe instead.
fn start_program() {
    imreg_objective::reuse_large_buffers();
    #[cfg(unix)]
    // SAFETY: restores the default action of one signal at the start of `main`, before imreg starts a thread
    // or installs a handler; it touches no Rust state.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Writes `args` to standard output and flushes it, so that a failed write is reported by the command that
/// made it (see `out!`).
fn write_stdout(args: std::fmt::Arguments) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_fmt(args)
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::io("<standard output>", e))
}

/// The `imreg` program with `extra` checks registered after the built-in ones, on the process arguments:
/// a user crate's `fn main() -> ExitCode { imreg_cli::main_with(my_checks()) }` gets `verify`, `reproduce`
/// (tables, `--json`, figures, `--only`) and the exit codes for its own checks. A duplicate or unusable
/// check id exits with [`EXIT_BAD_INPUT`] and a message naming it.
pub fn main_with(extra: Vec<Check>) -> std::process::ExitCode {
    start_program();
    let code = run_with_checks(std::env::args_os(), extra);
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Runs the program on `args` (the first is the program name) and returns the exit code. Output goes to
/// stdout/stderr as for the binary.
pub fn run_with_args<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    run_with_checks(args, Vec::new())
}

/// [`run_with_args`] with `extra` checks registered after the built-in ones (see [`main_with`]).
///
/// ```
/// use imreg_check::{Check, CheckContext, CheckError, Outcome};
/// fn sum(_: &CheckContext) -> Result<Outcome, CheckError> {
///     Ok(Outcome::within("2 + 2", 4.0, 2.0 + 2.0, 0.0))
/// }
/// let mine = Check { id: "demo.sum", claim: "2 + 2 = 4", run: sum };
/// let code = imreg_cli::run_with_checks(["imreg", "-q", "verify", "--only", "demo"], vec![mine]);
/// assert_eq!(code, imreg_cli::EXIT_OK);
/// // an id that is already registered is bad input
/// let twice = Check { id: "ad.hvp-vs-dense", ..mine };
/// let code = imreg_cli::run_with_checks(["imreg", "verify", "--only", "demo"], vec![twice]);
/// assert_eq!(code, imreg_cli::EXIT_BAD_INPUT);
/// ```
pub fn run_with_checks<I, T>(args: I, extra: Vec<Check>) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => EXIT_OK,
                _ => EXIT_BAD_INPUT,
            };
        }
    };
    match registry::with_extra(extra).and_then(|checks| dispatch(cli, checks)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

fn dispatch(cli: Cli, checks: Vec<Check>) -> Result<i32> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Reproduce { quick, out, only } => reproduce(checks, quick, &out, &only, quiet),
        Command::Verify { only, json, full } => verify(checks, &only, json, !full, quiet),
        Command::Run {
            config,
            out,
            force,
            no_figures,
            max_steps,
        } => run(&config, out, force, no_figures, max_steps, quiet),
        Command::Analyze(a) => analyze_cmd(*a),
        Command::Sweep(s) => sweep_cmd(s, quiet),
        Command::Study(s) => study_cmd(s, quiet),
    }
}

fn run_checks(
    checks: Vec<Check>,
    only: &[String],
    ctx: &CheckContext,
    quiet: bool,
) -> Result<Vec<imreg_check::Record>> {
    let checks = registry::select(checks, only)?;
    let pb = progress::bar(checks.len() as u64, "checks", quiet);
    let records = registry::run_all(&checks, ctx, &|r| {
        pb.set_message(r.id.clone());
        pb.inc(1);
    });
    pb.finish_and_clear();
    Ok(records)
}

fn reproduce(checks: Vec<Check>, quick: bool, out: &Path, only: &[String], quiet: bool) -> Result<i32> {
    output::claim(out, "reproduce")?;
    let ctx = CheckContext {
        out_dir: Some(out.to_path_buf()),
        quick,
    };
    let records = run_checks(checks, only, &ctx, quiet)?;
    let mut md = report::markdown(&records, out, quick);
    let mut json = report::json(&records, quick);
    // The empirical studies run with the whole reproduction (not with --only); their verdicts are reported,
    // never counted as passed or failed.
    if only.is_empty() {
        let (section, studies) = study::reproduce_section(&study::registry(), out, quick, quiet)?;
        md.push_str(&section);
        json["studies"] = studies;
    }
    let json = serde_json::to_string_pretty(&json).map_err(|e| CliError::Failed(e.to_string()))?;
    imreg_plot::write_atomic(&out.join("report.md"), md.as_bytes())?;
    imreg_plot::write_atomic(&out.join("report.json"), json.as_bytes())?;
    if !quiet {
        out!("{}", report::terminal_table(&records));
        outln!(
            "report: {} and {}",
            out.join("report.md").display(),
            out.join("report.json").display()
        );
    }
    Ok(if records.iter().all(|r| r.passed) {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

fn verify(checks: Vec<Check>, only: &[String], json: bool, quick: bool, quiet: bool) -> Result<i32> {
    let ctx = CheckContext { out_dir: None, quick };
    let records = run_checks(checks, only, &ctx, quiet || json)?;
    if json {
        outln!("{}", verify_json(&records)?);
    } else if !quiet {
        out!("{}", report::terminal_table(&records));
    }
    Ok(if records.iter().all(|r| r.passed) {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

/// The `verify --json` output: a JSON array of `{id, claim, expected, measured, passed}` in registry order.
pub fn verify_json(records: &[imreg_check::Record]) -> Result<String> {
    let arr: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": r.id, "claim": r.claim, "expected": r.expected, "measured": r.measured, "passed": r.passed
            })
        })
        .collect();
    serde_json::to_string_pretty(&arr).map_err(|e| CliError::Failed(e.to_string()))
}

fn run(
    config: &Path,
    out: Option<PathBuf>,
    force: bool,
    no_figures: bool,
    max_steps: Option<usize>,
    quiet: bool,
) -> Result<i32> {
    let mut cfg = ExperimentConfig::load(config)?;
    if let Some(m) = max_steps {
        cfg.steps = cfg.steps.min(m);
    }
    let out = out.unwrap_or_else(|| {
        PathBuf::from("runs").join(
            config
                .file_stem()
                .map(|s| s.to_os_string())
                .unwrap_or_else(|| "run".into()),
        )
    });
    let prepared = experiment::prepare(cfg, config)?;
    experiment::check_out(&prepared, &out, force)?;
    // One writer per output folder; a killed run's marked temporary folders are removed under the lock.
    let (parent, leaf) = output::parent_and_leaf(&out);
    std::fs::create_dir_all(&parent).map_err(|e| CliError::io(&parent, e))?;
    let held = lock::Held::default();
    let _lock = held.acquire(&parent, &leaf)?.map_err(|h| {
        CliError::input(
            &out,
            "--out",
            format!(
                "another imreg process (pid {} on {}) is writing it; if that process is gone, remove {}",
                h.pid,
                h.host,
                lock::lock_path(&parent, &leaf).display()
            ),
        )
    })?;
    output::remove_stale_temps(&parent, &leaf)?;
    let pb = progress::bar(train::expected_rows(&prepared.config), "records", quiet);
    let summary = lock::with_heartbeat(&held, || {
        experiment::run_to_folder(
            &prepared,
            &out,
            &experiment::FolderOptions { force, no_figures },
            &|| pb.inc(1),
        )
    })?;
    pb.finish_and_clear();
    if !quiet {
        outln!(
            "{}: {} steps, p = {}, N = {}",
            summary.name,
            summary.steps_run,
            summary.p,
            summary.n
        );
        for (k, v) in &summary.final_metrics {
            outln!("  final {k} = {v:.6e}");
        }
        if let Some(s) = summary.diverged_at {
            outln!("  diverged at step {s}");
        }
        outln!("wrote {}", out.display());
    }
    Ok(EXIT_OK)
}

fn analyze_cmd(a: AnalyzeArgs) -> Result<i32> {
    let json = a.json;
    let result = analyze::analyze(&analyze_request(a)?)?;
    out!("{}", analyze::render(&result, json)?);
    Ok(EXIT_OK)
}

/// Parses `imreg analyze …` (the first argument is the program name) and runs the analysis exactly as the
/// command does before it prints [`analyze::render`].
pub fn analyze_from_args<I, T>(args: I) -> Result<analyze::Analysis>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::try_parse_from(args).map_err(|e| CliError::arg("<args>", e.to_string()))?;
    match cli.command {
        Command::Analyze(a) => analyze::analyze(&analyze_request(*a)?),
        _ => Err(CliError::arg("<command>", "expected `analyze`")),
    }
}

fn analyze_request(a: AnalyzeArgs) -> Result<analyze::AnalyzeRequest> {
    let (model, data, split, data_seed) = match &a.config {
        Some(path) => {
            let c = ExperimentConfig::load(path)?;
            (c.model, c.data, c.split, c.seed)
        }
        None => {
            let kind = a
                .model
                .as_deref()
                .ok_or_else(|| CliError::arg("--model", "required (or give --config)"))?;
            let model = match kind {
                "linear_regression" => ModelConfig::LinearRegression { bias: a.bias.unwrap_or(true) },
                "logistic_regression" => ModelConfig::LogisticRegression { bias: a.bias.unwrap_or(true) },
                "mlp" => {
                    let parse = |flag: &str, v: Option<&String>, what: &str| -> Result<String> {
                        v.cloned().ok_or_else(|| CliError::arg(flag, format!("required for mlp ({what})")))
                    };
                    let act = parse("--activation", a.activation.as_ref(), "tanh, relu, gelu, softplus, sigmoid, identity")?;
                    let loss = parse("--loss", a.loss.as_ref(), "half_mse, full_mse, cross_entropy")?;
                    ModelConfig::Mlp {
                        hidden: a.hidden.clone(),
                        activation: serde_json::from_value(serde_json::Value::String(act.clone()))
                            .map_err(|_| CliError::arg("--activation", format!("unknown activation {act:?} (tanh, relu, gelu, softplus, sigmoid, identity)")))?,
                        bias: a.bias.unwrap_or(true),
                        loss: serde_json::from_value(serde_json::Value::String(loss.clone()))
                            .map_err(|_| CliError::arg("--loss", format!("unknown loss {loss:?} (half_mse, full_mse, cross_entropy)")))?,
                    }
                }
                "network" => network_config(&a)?,
                "deep_linear" => ModelConfig::DeepLinear { hidden: a.hidden.clone(), bias: a.bias.unwrap_or(false) },
                "scalar_net" => ModelConfig::ScalarNet {
                    k: a.k.ok_or_else(|| CliError::arg("--k", "required for scalar_net"))?,
                    phi: None,
                },
                other => {
                    return Err(CliError::arg(
                        "--model",
                        format!("unknown model {other:?} (linear_regression, logistic_regression, mlp, deep_linear, scalar_net, network)"),
                    ))
                }
            };
            let x = a
                .data
                .clone()
                .ok_or_else(|| CliError::arg("--data", "required (inputs .npy)"))?;
            let y = a
                .targets
                .clone()
                .ok_or_else(|| CliError::arg("--targets", "required (targets .npy)"))?;
            (
                model,
                Some(DataConfig::Npy {
                    x,
                    y,
                    classes: a.classes,
                }),
                None,
                a.seed,
            )
        }
    };
    Ok(analyze::AnalyzeRequest {
        model,
        params: a.params,
        data,
        split,
        top_k: a.top_k,
        bottom_k: a.bottom_k,
        batch_size: a.batch_size,
        estimation: analyze::BatchEstimation {
            max_exact: a.max_exact_batches,
            mc_batches: a.mc_batches,
            mc_rel_se: a.mc_rel_se,
        },
        exact_trace_max_p: a.exact_trace_max_p,
        seed: a.seed,
        data_seed,
        quantities: (!a.quantities.is_empty())
            .then(|| quantities::Quantities::parse(&a.quantities))
            .transpose()?,
        solver: quantities::SolverOptions {
            dense_max_p: a.dense_max_p,
            lanczos_max_iter: a.lanczos_max_iter,
            lanczos_tol: a.lanczos_tol,
            lanczos_stop: a.lanczos_stop,
            trace_matvecs: a.trace_matvecs,
            slq_probes: a.slq_probes,
            slq_steps: a.slq_steps,
            density_points: a.density_points,
            density_sigma: a.density_sigma,
            diagonal_probes: a.diagonal_probes,
        },
        out: a.out,
    })
}

/// The `network` model of `analyze`'s flags.
fn network_config(a: &AnalyzeArgs) -> Result<ModelConfig> {
    fn parse<T: serde::de::DeserializeOwned>(flag: &str, value: &str, known: &str) -> Result<T> {
        serde_json::from_value(serde_json::Value::String(value.to_string()))
            .map_err(|_| CliError::arg(flag, format!("unknown value {value:?} ({known})")))
    }
    let loss = a.loss.as_deref().ok_or_else(|| {
        CliError::arg(
            "--loss",
            format!("required for network ({})", imreg_objective::models::LOSS_NAMES),
        )
    })?;
    let spec = match (&a.preset, &a.spec) {
        (None, None) => {
            return Err(CliError::arg(
                "--preset",
                "network needs --preset NAME or --spec FILE",
            ))
        }
        (_, s) => s.clone().map(config::SpecSource::File),
    };
    Ok(ModelConfig::Network {
        preset: a.preset.clone(),
        spec,
        input_shape: (!a.input_shape.is_empty()).then(|| a.input_shape.clone()),
        batch_norm: a
            .batch_norm
            .as_deref()
            .map(|b| parse("--batch-norm", b, "train, eval"))
            .transpose()?,
        loss: imreg_objective::models::StandardLoss::from_name(loss)
            .map_err(|e| CliError::arg("--loss", e))?,
    })
}

fn sweep_cmd(s: SweepCommand, quiet: bool) -> Result<i32> {
    match s {
        SweepCommand::Expand { config } => {
            let entries = sweep::expand(&config)?;
            out!("{}", sweep::to_jsonl(&entries)?);
            Ok(EXIT_OK)
        }
        SweepCommand::Run {
            manifest,
            shard,
            out,
            no_figures,
        } => {
            let shard = sweep::Shard::parse(&shard)?;
            let entries = sweep::read_manifest(&manifest)?;
            let n_mine = entries.iter().filter(|e| shard.contains(e.index)).count();
            let pb = progress::bar(n_mine as u64, "runs", quiet);
            let opts = experiment::FolderOptions {
                force: true,
                no_figures,
            };
            let report = sweep::run_shard(&entries, shard, &out, &manifest, &opts, &|| pb.inc(1))?;
            pb.finish_and_clear();
            if !quiet {
                outln!(
                    "shard {}/{}: ran {}, skipped {} finished",
                    shard.index,
                    shard.count,
                    report.ran.len(),
                    report.skipped.len()
                );
            }
            report_busy(&out, &report);
            Ok(if report.busy.is_empty() {
                EXIT_OK
            } else {
                EXIT_FAILED
            })
        }
        SweepCommand::Collect {
            out,
            manifest,
            allow_incomplete,
        } => {
            let c = sweep::collect(&out, manifest.as_deref(), allow_incomplete)?;
            if !quiet {
                outln!("{} runs collected into {}", c.complete, c.summary_csv.display());
            }
            if !c.missing.is_empty() {
                eprintln!(
                    "warning: incomplete sweep, {} runs not collected: {}",
                    c.missing.len(),
                    sweep::list_ids(&c.missing)
                );
            }
            Ok(EXIT_OK)
        }
        SweepCommand::Status { out, manifest } => {
            let status = sweep::status(&out, manifest.as_deref())?;
            out!("{status}");
            Ok(if status.is_complete() {
                EXIT_OK
            } else {
                EXIT_FAILED
            })
        }
        SweepCommand::Submit(a) => submit(*a, quiet),
    }
}

/// Names on stderr each run of `report` that another live process held (left alone), with its lock file.
fn report_busy(out: &Path, report: &sweep::ShardReport) {
    for (id, holder) in &report.busy {
        eprintln!(
            "{id}: locked by process {} on {} (left alone; if that process is gone, remove {})",
            holder.pid,
            holder.host,
            lock::lock_path(out, id).display()
        );
    }
}

/// `sweep submit`: checks the request, prepares the output folder, writes OUT/sweep.sbatch, and prints it
/// or submits it.
fn submit(a: SubmitArgs, quiet: bool) -> Result<i32> {
    let entries = sweep::read_manifest(&a.manifest)?;
    submit_manifest(&entries, &a.manifest, &a.out, &a.slurm, quiet)
}

/// Writes OUT/sweep.sbatch for the manifest `entries` (read from `manifest`) after preparing `out`, and
/// prints it or submits it.
fn submit_manifest(
    entries: &[sweep::ManifestEntry],
    manifest: &Path,
    out: &Path,
    a: &SlurmArgs,
    quiet: bool,
) -> Result<i32> {
    let absolute = |flag: &str, p: &Path| {
        std::path::absolute(p).map_err(|e| CliError::arg(flag, format!("{}: {e}", p.display())))
    };
    let out = absolute("--out", out)?;
    let imreg = match &a.imreg {
        Some(p) => absolute("--imreg", p)?,
        None => std::env::current_exe().map_err(|e| {
            CliError::arg(
                "--imreg",
                format!("cannot find this executable ({e}); give --imreg"),
            )
        })?,
    };
    if !imreg.is_file() {
        return Err(CliError::arg(
            "--imreg",
            format!("{}: no such file (the tasks run this binary)", imreg.display()),
        ));
    }
    let job = slurm::ArrayJob {
        imreg,
        manifest: absolute("--manifest", manifest)?,
        runs: entries.len(),
        logs: out.join("slurm"),
        out,
        tasks: a.tasks.unwrap_or(entries.len()),
        max_parallel: a.max_parallel,
        no_figures: a.no_figures,
        resources: slurm::Resources {
            job_name: a.job_name.clone(),
            time: a.time.clone(),
            cpus_per_task: a.cpus_per_task,
            mem: a.mem.clone(),
            partition: a.partition.clone(),
        },
    };
    let script = slurm::batch_script(&job)?;
    sweep::prepare_out(&job.out, entries, manifest)?;
    std::fs::create_dir_all(&job.logs).map_err(|e| CliError::io(&job.logs, e))?;
    let path = job.out.join("sweep.sbatch");
    imreg_plot::write_atomic(&path, script.as_bytes())?;
    if !a.sbatch {
        out!("{script}");
        if !quiet {
            eprintln!(
                "wrote {}; submit it with: sbatch {}",
                path.display(),
                slurm::shell_quote(&path.to_string_lossy())
            );
        }
        return Ok(EXIT_OK);
    }
    let id = slurm::sbatch(&path)?;
    outln!("{id}");
    Ok(EXIT_OK)
}

/// The study, its instances and its folder of `imreg study run|submit`.
fn study_instances(
    studies: &[Box<dyn study::Study>],
    name: &str,
    a: &InstanceArgs,
) -> Result<(usize, Vec<study::StudyOptions>, PathBuf)> {
    let s = study::find(studies, name)?;
    let index = studies.iter().position(|t| t.name() == s.name()).unwrap_or(0);
    let scale = study::StudyScale::parse(&a.scale)?;
    let requested = a.dataset.as_deref().map(study::StudyDataset::parse).transpose()?;
    let seeds = if a.seeds.is_empty() {
        scale.default_seeds()
    } else {
        a.seeds.clone()
    };
    let instances = study::datasets(s, requested)?
        .into_iter()
        .map(|dataset| study::StudyOptions {
            dataset,
            scale,
            seeds: seeds.clone(),
        })
        .collect();
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("studies").join(format!("{}-{}", s.name(), scale.name())));
    Ok((index, instances, out))
}

fn study_cmd(c: StudyCommand, quiet: bool) -> Result<i32> {
    let studies = study::registry();
    match c {
        StudyCommand::List => {
            for s in &studies {
                let ds: Vec<&str> = s.datasets().iter().map(|d| d.name()).collect();
                outln!(
                    "{} ({})
  {}
",
                    s.name(),
                    ds.join(", "),
                    s.claims()
                );
            }
            Ok(EXIT_OK)
        }
        StudyCommand::Run {
            name,
            instance,
            shard,
            figures,
        } => {
            let shard = sweep::Shard::parse(&shard)?;
            let (index, instances, out) = study_instances(&studies, &name, &instance)?;
            let s = studies[index].as_ref();
            let folder = experiment::FolderOptions {
                force: true,
                no_figures: !figures,
            };
            let mut busy = 0;
            for opts in &instances {
                let n = study::manifest(s, opts)?
                    .iter()
                    .filter(|e| shard.contains(e.index))
                    .count();
                let pb = progress::bar(n as u64, opts.dataset.name(), quiet);
                let report = study::run(s, opts, &out, shard, &folder, &|| pb.inc(1))?;
                pb.finish_and_clear();
                if !quiet {
                    outln!(
                        "{} on {}: ran {}, skipped {} finished",
                        s.name(),
                        opts.dataset.name(),
                        report.ran.len(),
                        report.skipped.len()
                    );
                }
                report_busy(&study::dataset_dir(&out, opts.dataset), &report);
                busy += report.busy.len();
            }
            if !quiet && busy == 0 && shard == sweep::Shard::ALL {
                outln!("then: imreg study report {} --out {}", s.name(), out.display());
            }
            Ok(if busy == 0 { EXIT_OK } else { EXIT_FAILED })
        }
        StudyCommand::Report { name, out, dataset } => {
            let s = study::find(&studies, &name)?;
            let requested = dataset.as_deref().map(study::StudyDataset::parse).transpose()?;
            let reports = study::report(s, &out, &study::datasets(s, requested)?)?;
            if !quiet {
                for r in &reports {
                    outln!("{} on {}:", s.name(), r.options.dataset.name());
                    for v in &r.report.verdicts {
                        outln!("  {:<15} {}", v.outcome.label(), v.claim);
                    }
                }
                outln!("report: {}", out.join("report.md").display());
            }
            Ok(EXIT_OK)
        }
        StudyCommand::Submit(a) => {
            let (index, instances, out) = study_instances(&studies, &a.name, &a.instance)?;
            let s = studies[index].as_ref();
            for opts in &instances {
                let (dir, manifest, entries) = study::prepare(s, opts, &out)?;
                submit_manifest(&entries, &manifest, &dir, &a.slurm, quiet)?;
            }
            Ok(EXIT_OK)
        }
    }
}
