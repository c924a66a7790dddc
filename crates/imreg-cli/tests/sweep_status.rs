//! `sweep status` reads done, running, failed and missing runs from an output folder; `sweep collect`
//! refuses an incomplete sweep unless `--allow-incomplete`; `sweep submit` writes the job-array script and
//! refuses nonsense with exit 2 before touching anything. (The script under a real Slurm: scripts/ci.)
mod common;
use common::*;
use imreg_cli::experiment::FolderOptions;
use imreg_cli::sweep::{self, expand, run_shard, RunState, Shard};
use std::path::{Path, PathBuf};

fn sweep_config() -> String {
    format!(
        "{}\n[sweep]\nseeds = [1, 2]\n\n[sweep.grid]\n\"optimizer.lr\" = [0.02, 0.05]\n\"optimizer.batch_size\" = [4, 8]\n",
        SMALL.replace("steps = 40", "steps = 20")
    )
}

/// An 8-run manifest in `dir`.
fn manifest(dir: &Path) -> (Vec<sweep::ManifestEntry>, PathBuf) {
    let cfg = write(dir, "sweep.toml", &sweep_config());
    let entries = expand(&cfg).unwrap();
    assert_eq!(entries.len(), 8);
    let m = write(dir, "manifest.jsonl", &sweep::to_jsonl(&entries).unwrap());
    (entries, m)
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

fn summary_rows(out: &Path) -> usize {
    std::fs::read_to_string(out.join("summary.csv"))
        .unwrap()
        .lines()
        .count()
        - 1
}

#[test]
fn status_reports_every_state_and_collect_refuses_until_complete() {
    let dir = tempfile::tempdir().unwrap();
    let (entries, m) = manifest(dir.path());
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    let opts = FolderOptions {
        no_figures: true,
        ..Default::default()
    };
    let half = run_shard(&entries, Shard::parse("0/2").unwrap(), &out, &m, &opts, &|| {}).unwrap();
    assert_eq!(half.ran, ["run-0000", "run-0002", "run-0004", "run-0006"]);
    // run-0001: killed mid-run (its lock names a process that has exited, its temporary folder is left);
    // run-0003: a live process (this one) holds its lock; run-0005: its process recorded an error;
    // run-0007: never begun, though a process that is gone had locked it.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let lock = |id: &str, pid: u32| {
        std::fs::write(
            out.join(format!(".lock-{id}")),
            format!("host={}\npid={pid}\n", host()),
        )
        .unwrap()
    };
    lock("run-0001", dead);
    std::fs::create_dir(out.join(".tmp-run-0001-abc123")).unwrap();
    imreg_cli::output::mark(&out.join(".tmp-run-0001-abc123"), "run").unwrap();
    // run-0003's lock says when it was taken (a lock written by imreg does, see below): 1 h 02 min 5 s ago.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    std::fs::write(
        out.join(".lock-run-0003"),
        format!(
            "host={}\npid={}\nstarted={}\n",
            host(),
            std::process::id(),
            now - 3725
        ),
    )
    .unwrap();
    std::fs::write(
        sweep::error_marker(&out, "run-0005"),
        "the loss is NaN at step 3\n",
    )
    .unwrap();
    lock("run-0007", dead);
    // run-0000: done, but its process was killed before it released the lock.
    lock("run-0000", dead);

    let status = sweep::status(&out, None).unwrap();
    let states: Vec<&str> = status.runs.iter().map(|(_, s)| s.label()).collect();
    assert_eq!(
        states,
        ["done", "failed", "done", "running", "done", "failed", "done", "missing"]
    );
    match &status.runs[3].1 {
        RunState::Running(l) => {
            assert_eq!(l.holder.pid, std::process::id());
            assert!(!l.stale);
        }
        other => panic!("{other:?}"),
    }
    let text = status.to_string();
    assert!(
        text.starts_with("8 runs: 4 done, 1 running, 2 failed, 1 missing\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "failed   run-0001  interrupted: its lock was left by pid {dead}"
        )),
        "{text}"
    );
    assert!(
        text.contains("failed   run-0005  error: the loss is NaN at step 3\n"),
        "{text}"
    );
    assert!(text.contains("missing  run-0007\n"), "{text}");
    assert!(
        text.contains(&format!(
            "running  run-0003  pid {} on {} for 1 h 02 min, heartbeat ",
            std::process::id(),
            host()
        )),
        "{text}"
    );
    assert!(!status.is_complete());
    assert_eq!(cli(&["sweep", "status", "--out", o]), 1);

    // Incomplete: refused, nothing written; allowed, the finished runs only.
    assert_eq!(cli(&["sweep", "collect", "--out", o]), 1);
    assert!(!out.join("summary.csv").exists());
    assert_eq!(cli(&["sweep", "collect", "--out", o, "--allow-incomplete"]), 0);
    assert_eq!(summary_rows(&out), 4);

    // The live process finishes (drops its lock); the other shard takes over the stale locks, redoes the
    // failed runs and clears their markers.
    std::fs::remove_file(out.join(".lock-run-0003")).unwrap();
    let rest = run_shard(&entries, Shard::parse("1/2").unwrap(), &out, &m, &opts, &|| {}).unwrap();
    assert_eq!(rest.ran, ["run-0001", "run-0003", "run-0005", "run-0007"]);
    assert!(!sweep::error_marker(&out, "run-0005").exists());
    assert!(!out.join(".tmp-run-0001-abc123").exists());
    let status = sweep::status(&out, Some(&m)).unwrap();
    assert!(status.is_complete(), "{status}");
    // Rerunning the first shard redoes nothing and clears the finished run's stale lock.
    let again = run_shard(&entries, Shard::parse("0/2").unwrap(), &out, &m, &opts, &|| {}).unwrap();
    assert!(again.ran.is_empty());
    let left: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".lock-") || n.starts_with(".tmp-") || n.starts_with(".error-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(cli(&["sweep", "status", "--out", o]), 0);
    assert_eq!(cli(&["sweep", "collect", "--out", o]), 0);
    assert_eq!(summary_rows(&out), 8);
    // Not a sweep folder: bad input.
    assert_eq!(
        cli(&["sweep", "status", "--out", dir.path().to_str().unwrap()]),
        2
    );
}

#[test]
fn submit_writes_the_array_script_and_refuses_nonsense_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let (_, m) = manifest(dir.path());
    let m = m.to_str().unwrap();
    let out = dir.path().join("sweep out");
    let o = out.to_str().unwrap();
    let bin = write(dir.path(), "imreg", "");
    let bin = bin.to_str().unwrap();
    let submit = |extra: &[&str]| {
        let mut args = vec!["sweep", "submit", "--manifest", m, "--out", o, "--imreg", bin];
        args.extend_from_slice(extra);
        cli(&args)
    };
    for bad in [
        &["--tasks", "0"][..],
        &["--tasks", "9"],
        &["--time", "1h"],
        &["--mem", "1.5G"],
        &["--job-name", "a b"],
        &["--cpus-per-task", "0"],
        &["--max-parallel", "0"],
    ] {
        assert_eq!(submit(bad), 2, "{bad:?}");
        assert!(!out.exists(), "{bad:?} created the output folder");
    }
    let missing_binary = [
        "sweep",
        "submit",
        "--manifest",
        m,
        "--out",
        o,
        "--imreg",
        "/no/such/imreg",
    ];
    assert_eq!(cli(&missing_binary), 2);
    assert!(!out.exists());
    assert_eq!(submit(&["--tasks", "3", "--time", "30:00", "--mem", "2G"]), 0);
    let script = std::fs::read_to_string(out.join("sweep.sbatch")).unwrap();
    let expected_exec = format!(
        "exec '{bin}' sweep run --manifest '{m}' --shard \"${{SLURM_ARRAY_TASK_ID}}/3\" --out '{o}'\n"
    );
    assert!(script.ends_with(&expected_exec), "{script}");
    for line in [
        "#SBATCH --array=0-2\n",
        "#SBATCH --time=30:00\n",
        "#SBATCH --mem=2G\n",
        &format!("#SBATCH --output=\"{o}/slurm/%x-%A_%a.out\"\n"),
    ] {
        assert!(script.contains(line), "{line} not in\n{script}");
    }
    // The folder is prepared for the tasks: marked, bound to the manifest, with its log folder.
    assert!(out.join("slurm").is_dir());
    assert!(out.join(sweep::MANIFEST_HASH).is_file());
    assert!(imreg_cli::output::is_owned(&out));
    // Default: one task per run; a second submit to the same folder is fine.
    assert_eq!(submit(&[]), 0);
    let script = std::fs::read_to_string(out.join("sweep.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=0-7\n"), "{script}");
    // A folder bound to another manifest is refused.
    let other = write(
        dir.path(),
        "other.jsonl",
        &std::fs::read_to_string(m).unwrap().replace("0.05", "0.06"),
    );
    let args = [
        "sweep",
        "submit",
        "--manifest",
        other.to_str().unwrap(),
        "--out",
        o,
    ];
    assert_eq!(cli(&args), 2);
}

/// A swept value that the shortest decimal of an f64 needs 17 digits for reads back from the manifest as the
/// same bits the run config holds (serde_json's default float parser is off by one ulp on some of them).
#[test]
fn manifest_values_read_back_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[sweep]\n[sweep.grid]\n\"optimizer.lr\" = [0.009777284685083069, 0.1]\n",
        SMALL.replace("steps = 40", "steps = 2")
    );
    let cfg = write(dir.path(), "sweep.toml", &text);
    let entries = expand(&cfg).unwrap();
    let m = write(dir.path(), "manifest.jsonl", &sweep::to_jsonl(&entries).unwrap());
    let back = sweep::read_manifest(&m).unwrap();
    assert_eq!(back, entries);
    assert_eq!(
        back[0].config.optimizer.lr().to_bits(),
        0.009777284685083069f64.to_bits()
    );
}

#[test]
fn a_lock_records_its_start_and_status_shows_how_long_the_run_has_run() {
    let dir = tempfile::tempdir().unwrap();
    let held = imreg_cli::lock::acquire(dir.path(), "run-0000").unwrap().unwrap();
    let text = std::fs::read_to_string(dir.path().join(".lock-run-0000")).unwrap();
    assert!(
        text.starts_with(&format!("host={}\npid={}\nstarted=", host(), std::process::id())),
        "{text}"
    );
    let state = imreg_cli::lock::inspect(dir.path(), "run-0000").unwrap();
    assert!(
        state.running_for.unwrap() < std::time::Duration::from_secs(60),
        "{state:?}"
    );
    drop(held);
    // A lock without the line (written by an older imreg) is read as before, with no duration.
    std::fs::write(
        dir.path().join(".lock-run-0001"),
        format!("host={}\npid={}\n", host(), std::process::id()),
    )
    .unwrap();
    let state = imreg_cli::lock::inspect(dir.path(), "run-0001").unwrap();
    assert_eq!(state.running_for, None);
    assert_eq!(state.holder.pid, std::process::id());
}
