//! Slurm job arrays for sweeps: the batch script `imreg sweep submit` writes. Array task `I` of an array of
//! `N` tasks runs shard `I/N` of the manifest (the entries with `index % N == I`); `N` is written into the
//! script, so resubmitting a single task (`sbatch --array=3 …`) still runs shard `3/N`. Runs are pure and
//! finish with a completion marker, so a requeued or resubmitted task skips the runs already complete and
//! redoes only the interrupted ones ([`crate::sweep::run_shard`]).
//!
//! [`batch_script`] is pure: it validates the request and returns the text; [`sbatch`] submits a written
//! script.
use crate::error::CliError;
use std::path::{Path, PathBuf};

/// Resource requests of every array task (`#SBATCH` lines).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resources {
    /// `--job-name` (letters, digits, `.`, `_`, `-`).
    pub job_name: String,
    /// `--time`: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM` or `D-HH:MM:SS`; `None`: the partition's default.
    pub time: Option<String>,
    /// `--cpus-per-task`: the runs of a task execute in parallel, one thread each, on this many CPUs.
    pub cpus_per_task: usize,
    /// `--mem` per node: a whole number with an optional unit `K`, `M`, `G`, `T`; `None`: the default.
    pub mem: Option<String>,
    /// `--partition` (a name or a comma-separated list); `None`: the default partition.
    pub partition: Option<String>,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            job_name: "imreg-sweep".into(),
            time: None,
            cpus_per_task: 1,
            mem: None,
            partition: None,
        }
    }
}

/// A sweep as a job array: what [`batch_script`] writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArrayJob {
    /// The `imreg` binary the tasks run (absolute; it must exist at this path on the compute nodes).
    pub imreg: PathBuf,
    /// The manifest (absolute).
    pub manifest: PathBuf,
    /// Number of runs in the manifest.
    pub runs: usize,
    /// The sweep's output folder (absolute).
    pub out: PathBuf,
    /// The folder of the tasks' stdout and stderr files (absolute; it must exist before the job starts).
    pub logs: PathBuf,
    /// Array tasks `N`: `1 ≤ N ≤ runs`.
    pub tasks: usize,
    /// At most this many tasks run at once (`--array=0-(N−1)%K`); `None`: no limit.
    pub max_parallel: Option<usize>,
    /// Skip the SVG/PNG figures of each run.
    pub no_figures: bool,
    pub resources: Resources,
}

/// Why a job array cannot be written; [`ScriptError::flag`] names the `sweep submit` flag at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScriptError {
    #[error("the manifest has no runs")]
    NoRuns,
    #[error("is 0: an array needs at least one task")]
    ZeroTasks,
    #[error(
        "{tasks} tasks for {runs} runs: at most one task per run (the extra tasks would have nothing to do)"
    )]
    MoreTasksThanRuns { tasks: usize, runs: usize },
    #[error("is 0: at least one task must be allowed to run")]
    ZeroMaxParallel,
    #[error("is 0: a task needs at least one CPU")]
    ZeroCpus,
    #[error("{value:?} is not a Slurm time limit (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)")]
    Time { value: String },
    #[error("{value:?} is not a memory size (a positive whole number with an optional unit K, M, G or T)")]
    Mem { value: String },
    #[error("{value:?} may only hold letters, digits, '.', '_', '-'{}", if *.list { " and ','" } else { "" })]
    Name {
        flag: &'static str,
        value: String,
        list: bool,
    },
    #[error("{path:?} {why}")]
    Path {
        flag: &'static str,
        path: PathBuf,
        why: &'static str,
    },
}

impl ScriptError {
    /// The `sweep submit` flag whose value is at fault.
    pub fn flag(&self) -> &'static str {
        match self {
            ScriptError::NoRuns => "--manifest",
            ScriptError::ZeroTasks | ScriptError::MoreTasksThanRuns { .. } => "--tasks",
            ScriptError::ZeroMaxParallel => "--max-parallel",
            ScriptError::ZeroCpus => "--cpus-per-task",
            ScriptError::Time { .. } => "--time",
            ScriptError::Mem { .. } => "--mem",
            ScriptError::Name { flag, .. } | ScriptError::Path { flag, .. } => flag,
        }
    }
}

impl From<ScriptError> for CliError {
    fn from(e: ScriptError) -> Self {
        CliError::arg(e.flag(), e.to_string())
    }
}

/// The batch script of `job`, after checking every value that goes into it.
pub fn batch_script(job: &ArrayJob) -> Result<String, ScriptError> {
    let r = &job.resources;
    if job.runs == 0 {
        return Err(ScriptError::NoRuns);
    }
    if job.tasks == 0 {
        return Err(ScriptError::ZeroTasks);
    }
    if job.tasks > job.runs {
        return Err(ScriptError::MoreTasksThanRuns {
            tasks: job.tasks,
            runs: job.runs,
        });
    }
    if job.max_parallel == Some(0) {
        return Err(ScriptError::ZeroMaxParallel);
    }
    if r.cpus_per_task == 0 {
        return Err(ScriptError::ZeroCpus);
    }
    check_name("--job-name", &r.job_name, false)?;
    if let Some(p) = &r.partition {
        check_name("--partition", p, true)?;
    }
    if let Some(t) = &r.time {
        if !is_time(t) {
            return Err(ScriptError::Time { value: t.clone() });
        }
    }
    if let Some(m) = &r.mem {
        if !is_mem(m) {
            return Err(ScriptError::Mem { value: m.clone() });
        }
    }
    let imreg = path_text("--imreg", &job.imreg)?;
    let manifest = path_text("--manifest", &job.manifest)?;
    let out = path_text("--out", &job.out)?;
    let logs = path_text("--logs", &job.logs)?;
    if logs.contains('"') {
        return Err(ScriptError::Path {
            flag: "--logs",
            path: job.logs.clone(),
            why: "contains '\"', which an #SBATCH line cannot quote",
        });
    }
    let n = job.tasks;
    let mut s = String::from("#!/bin/bash\n");
    s.push_str(&format!(
        "# imreg sweep: the {runs} runs of {manifest}\n# as a Slurm job array of {n} tasks; task I runs \
         shard I/{n} (the runs with index % {n} == I) into {out}.\n# Written by `imreg sweep submit`. A \
         requeued or resubmitted task skips the runs already complete\n# (their _COMPLETE markers) and redoes \
         the interrupted ones.\n",
        runs = job.runs
    ));
    let limit = job.max_parallel.map(|k| format!("%{k}")).unwrap_or_default();
    // %x job name, %A array job id, %a task id; a literal '%' of the folder is written '%%'.
    let logs = logs.replace('%', "%%");
    let options = [
        Some(format!("--job-name={}", r.job_name)),
        Some(format!("--array=0-{}{limit}", n - 1)),
        Some(format!("--cpus-per-task={}", r.cpus_per_task)),
        r.time.as_ref().map(|t| format!("--time={t}")),
        r.mem.as_ref().map(|m| format!("--mem={m}")),
        r.partition.as_ref().map(|p| format!("--partition={p}")),
        Some(format!("--output=\"{logs}/%x-%A_%a.out\"")),
        Some(format!("--error=\"{logs}/%x-%A_%a.err\"")),
        // A requeued task appends to its logs instead of truncating them.
        Some("--open-mode=append".into()),
        Some("--requeue".into()),
    ];
    for opt in options.iter().flatten() {
        s.push_str(&format!("#SBATCH {opt}\n"));
    }
    s.push_str("set -euo pipefail\n");
    s.push_str("# The runs of a task execute in parallel, one thread each, on the task's CPUs.\n");
    s.push_str("export RAYON_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-1}\"\n");
    s.push_str(&format!(
        "exec {} sweep run --manifest {} --shard \"${{SLURM_ARRAY_TASK_ID}}/{n}\" --out {}{}\n",
        shell_quote(imreg),
        shell_quote(manifest),
        shell_quote(out),
        if job.no_figures { " --no-figures" } else { "" }
    ));
    Ok(s)
}

/// `s` as one POSIX shell word: single-quoted, each `'` written `'\''`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Submits the batch script at `script` with `sbatch --parsable` and returns the job id. A missing
/// `sbatch`, a refusal by Slurm (its message included) or an output without a job id is a failure.
pub fn sbatch(script: &Path) -> Result<String, CliError> {
    let submitted = std::process::Command::new("sbatch")
        .arg("--parsable")
        .arg(script)
        .output()
        .map_err(|e| {
            CliError::Failed(format!(
                "cannot run sbatch ({e}); {} is ready to submit",
                script.display()
            ))
        })?;
    let stdout = String::from_utf8_lossy(&submitted.stdout);
    if !submitted.status.success() {
        return Err(CliError::Failed(format!(
            "sbatch {} failed ({}): {}",
            script.display(),
            submitted.status,
            String::from_utf8_lossy(&submitted.stderr).trim()
        )));
    }
    parse_job_id(&stdout)
        .map(String::from)
        .ok_or_else(|| CliError::Failed(format!("sbatch printed no job id: {:?}", stdout.trim())))
}

/// The job id in the output of `sbatch --parsable` (`ID` or `ID;CLUSTER`).
pub fn parse_job_id(stdout: &str) -> Option<&str> {
    let id = stdout.trim().split(';').next()?.trim();
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then_some(id)
}

fn check_name(flag: &'static str, value: &str, list: bool) -> Result<(), ScriptError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') || (list && c == ',');
    if value.is_empty() || !value.chars().all(ok) {
        return Err(ScriptError::Name {
            flag,
            value: value.to_string(),
            list,
        });
    }
    Ok(())
}

fn path_text<'p>(flag: &'static str, path: &'p Path) -> Result<&'p str, ScriptError> {
    let bad = |why| ScriptError::Path {
        flag,
        path: path.to_path_buf(),
        why,
    };
    let text = path.to_str().ok_or_else(|| bad("is not valid UTF-8"))?;
    if !path.is_absolute() {
        return Err(bad("is not absolute (array tasks may start in another folder)"));
    }
    if text.chars().any(char::is_control) {
        return Err(bad("contains a control character (a newline, say)"));
    }
    Ok(text)
}

/// Slurm's time formats: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`.
fn is_time(t: &str) -> bool {
    let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (days, rest) = match t.split_once('-') {
        Some((d, rest)) => (Some(d), rest),
        None => (None, t),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    days.is_none_or(number) && parts.iter().all(|p| number(p)) && parts.len() <= 3
}

fn is_mem(m: &str) -> bool {
    let digits = m.strip_suffix(['K', 'M', 'G', 'T']).unwrap_or(m);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && digits.bytes().any(|b| b != b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> ArrayJob {
        ArrayJob {
            imreg: "/opt/imreg/bin/imreg".into(),
            manifest: "/data/sweep/manifest.jsonl".into(),
            runs: 12,
            out: "/data/sweep/out".into(),
            logs: "/data/sweep/out/slurm".into(),
            tasks: 4,
            max_parallel: None,
            no_figures: false,
            resources: Resources::default(),
        }
    }

    #[test]
    fn golden_script_of_a_small_manifest() {
        let mut j = job();
        j.max_parallel = Some(2);
        j.no_figures = true;
        j.resources = Resources {
            job_name: "lr-sweep".into(),
            time: Some("00:10:00".into()),
            cpus_per_task: 2,
            mem: Some("1G".into()),
            partition: Some("debug".into()),
        };
        let expected = r#"#!/bin/bash
# imreg sweep: the 12 runs of /data/sweep/manifest.jsonl
# as a Slurm job array of 4 tasks; task I runs shard I/4 (the runs with index % 4 == I) into /data/sweep/out.
# Written by `imreg sweep submit`. A requeued or resubmitted task skips the runs already complete
# (their _COMPLETE markers) and redoes the interrupted ones.
#SBATCH --job-name=lr-sweep
#SBATCH --array=0-3%2
#SBATCH --cpus-per-task=2
#SBATCH --time=00:10:00
#SBATCH --mem=1G
#SBATCH --partition=debug
#SBATCH --output="/data/sweep/out/slurm/%x-%A_%a.out"
#SBATCH --error="/data/sweep/out/slurm/%x-%A_%a.err"
#SBATCH --open-mode=append
#SBATCH --requeue
set -euo pipefail
# The runs of a task execute in parallel, one thread each, on the task's CPUs.
export RAYON_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"
exec '/opt/imreg/bin/imreg' sweep run --manifest '/data/sweep/manifest.jsonl' --shard "${SLURM_ARRAY_TASK_ID}/4" --out '/data/sweep/out' --no-figures
"#;
        assert_eq!(batch_script(&j).unwrap(), expected);
        // Without the optional requests their lines are absent.
        let plain = batch_script(&job()).unwrap();
        for opt in ["--time", "--mem", "--partition", "%2"] {
            assert!(!plain.contains(opt), "{opt} in\n{plain}");
        }
        assert!(plain.contains("#SBATCH --array=0-3\n"));
        assert!(plain.ends_with("--out '/data/sweep/out'\n"));
    }

    #[test]
    fn paths_with_spaces_quotes_and_percent_signs_are_quoted() {
        let mut j = job();
        j.imreg = "/home/a b/imreg".into();
        j.manifest = "/home/a b/it's.jsonl".into();
        j.out = "/home/a b/out $HOME".into();
        j.logs = "/home/a b/logs 100%".into();
        let s = batch_script(&j).unwrap();
        assert!(s.contains(
            r#"exec '/home/a b/imreg' sweep run --manifest '/home/a b/it'\''s.jsonl' --shard "${SLURM_ARRAY_TASK_ID}/4" --out '/home/a b/out $HOME'"#
        ));
        assert!(s.contains("#SBATCH --output=\"/home/a b/logs 100%%/%x-%A_%a.out\"\n"));
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn nonsense_requests_are_refused_naming_the_flag() {
        let refused = |edit: &dyn Fn(&mut ArrayJob)| {
            let mut j = job();
            edit(&mut j);
            batch_script(&j).unwrap_err()
        };
        assert_eq!(refused(&|j| j.tasks = 0), ScriptError::ZeroTasks);
        assert_eq!(
            refused(&|j| j.tasks = 13),
            ScriptError::MoreTasksThanRuns { tasks: 13, runs: 12 }
        );
        assert_eq!(refused(&|j| j.runs = 0), ScriptError::NoRuns);
        assert_eq!(refused(&|j| j.max_parallel = Some(0)).flag(), "--max-parallel");
        assert_eq!(
            refused(&|j| j.resources.cpus_per_task = 0).flag(),
            "--cpus-per-task"
        );
        for t in ["", "1:2:3:4", "ten", "1-", "-1", "1:-2", "1h"] {
            assert_eq!(
                refused(&|j| j.resources.time = Some(t.into())).flag(),
                "--time",
                "{t:?}"
            );
        }
        for m in ["", "0", "1.5G", "G", "-1G", "1GB"] {
            assert_eq!(
                refused(&|j| j.resources.mem = Some(m.into())).flag(),
                "--mem",
                "{m:?}"
            );
        }
        assert_eq!(
            refused(&|j| j.resources.job_name = "a b".into()).flag(),
            "--job-name"
        );
        assert_eq!(
            refused(&|j| j.resources.job_name = "a,b".into()).flag(),
            "--job-name"
        );
        assert_eq!(
            refused(&|j| j.resources.partition = Some("a\nb".into())).flag(),
            "--partition"
        );
        assert_eq!(refused(&|j| j.out = "relative/out".into()).flag(), "--out");
        assert_eq!(refused(&|j| j.imreg = "/a\nb".into()).flag(), "--imreg");
        assert_eq!(refused(&|j| j.logs = "/a\"b".into()).flag(), "--logs");
        let e = CliError::from(refused(&|j| j.tasks = 13));
        assert_eq!(e.exit_code(), crate::EXIT_BAD_INPUT);
        assert!(e.to_string().contains("--tasks: 13 tasks for 12 runs"), "{e}");
        // Accepted forms.
        for t in ["30", "30:00", "1:00:00", "2-0", "2-12:30", "2-12:30:00"] {
            assert!(is_time(t), "{t}");
        }
        for m in ["512", "512M", "4G", "1T"] {
            assert!(is_mem(m), "{m}");
        }
        let mut j = job();
        j.tasks = 12;
        j.resources.partition = Some("short,long".into());
        assert!(batch_script(&j).unwrap().contains("#SBATCH --array=0-11\n"));
    }

    #[test]
    fn job_ids_of_sbatch_parsable() {
        assert_eq!(parse_job_id("1234\n"), Some("1234"));
        assert_eq!(parse_job_id("1234;cluster\n"), Some("1234"));
        assert_eq!(parse_job_id(""), None);
        assert_eq!(parse_job_id("Submitted batch job 12"), None);
    }
}
