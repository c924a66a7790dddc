//! Bad input never loses a file, panics, hangs or allocates hugely: `--force` replaces only folders imreg
//! wrote, sizes are checked against stated limits before allocation, long configs start at once, sweeps
//! are bound to their manifests, and messages name the field or path at fault (docs/reliability.md).
mod common;
use common::*;
use imreg_cli::experiment::FolderOptions;
use imreg_cli::sweep::{expand, run_shard, Shard};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `imreg ARGS` in a child process (this test binary, re-entered through [`cli_in_child`]) with the
/// working directory `cwd` and `HOME` set to `home`; returns the exit code and stderr.
fn cli_at(cwd: &Path, home: &Path, args: &[&str]) -> (i32, String) {
    cli_with_umask(cwd, home, None, args)
}

/// [`cli_at`] with the child's umask set to `umask` (through `sh`) when given.
fn cli_with_umask(cwd: &Path, home: &Path, umask: Option<&str>, args: &[&str]) -> (i32, String) {
    let exe = std::env::current_exe().unwrap();
    let child_args = [
        "--exact",
        "cli_in_child",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ];
    let mut cmd = match umask {
        Some(m) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("umask {m} && exec \"$0\" \"$@\""))
                .arg(&exe)
                .args(child_args);
            c
        }
        None => {
            let mut c = Command::new(&exe);
            c.args(child_args);
            c
        }
    };
    let out = cmd
        .env("IMREG_CHILD_ARGS", args.join("\u{1f}"))
        .env("HOME", home)
        .current_dir(cwd)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The child side of [`cli_at`]: only runs when re-entered with `IMREG_CHILD_ARGS`.
#[test]
#[ignore = "entered by cli_at in a child process"]
fn cli_in_child() {
    let Ok(args) = std::env::var("IMREG_CHILD_ARGS") else {
        return;
    };
    let mut v = vec!["imreg".to_string(), "--quiet".to_string()];
    v.extend(args.split('\u{1f}').map(String::from));
    std::process::exit(imreg_cli::run_with_args(v));
}

/// A folder of files that are not imreg's, with their bytes.
fn foreign(dir: &Path) -> Vec<(String, Vec<u8>)> {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    std::fs::write(dir.join("sub").join("data.bin"), [1u8, 2, 3]).unwrap();
    tree(dir)
}

#[test]
fn force_refuses_the_working_folder_its_parent_home_and_foreign_folders() {
    let root = tempfile::tempdir().unwrap();
    let work = root.path().join("work");
    std::fs::create_dir(&work).unwrap();
    write(&work, "small.toml", SMALL);
    std::fs::write(root.path().join("sibling.txt"), "keep").unwrap();
    let before_root = tree(root.path());
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".bashrc"), "keep").unwrap();
    let home_before = tree(home.path());
    let h = home.path().to_str().unwrap();
    for out in [".", "..", h] {
        let (code, err) = cli_at(
            &work,
            home.path(),
            &["run", "small.toml", "--out", out, "--force"],
        );
        assert_eq!(code, 2, "--out {out}: {err}");
        assert!(
            err.contains("--out") && err.contains("never replaces"),
            "--out {out}: {err}"
        );
    }
    // The config's own folder, given by its full path.
    let (code, err) = cli_at(
        root.path(),
        home.path(),
        &[
            "run",
            "work/small.toml",
            "--out",
            work.to_str().unwrap(),
            "--force",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("config file"), "{err}");
    assert_eq!(tree(root.path()), before_root, "a file was touched");
    // The filesystem root is refused by the check itself (no run is attempted against it in a test).
    let e = imreg_cli::output::check_replaceable(Path::new("/"), None).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("filesystem root"), "{e}");
    assert_eq!(tree(home.path()), home_before);
    // `reproduce` writing into the working folder is refused as well.
    let (code, err) = cli_at(&work, home.path(), &["reproduce", "--quick", "--out", "."]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(tree(root.path()), before_root);
}

#[test]
fn force_replaces_only_folders_imreg_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "small.toml", SMALL);
    let c = cfg.to_str().unwrap();
    let theirs = dir.path().join("theirs");
    let before = foreign(&theirs);
    let t = theirs.to_str().unwrap();
    assert_eq!(cli(&["run", c, "--out", t]), 2);
    assert_eq!(cli(&["run", c, "--out", t, "--force"]), 2);
    assert_eq!(
        tree(&theirs),
        before,
        "--force touched a folder imreg did not write"
    );
    // A file in the way is not replaced either.
    let file = write(dir.path(), "file.txt", "keep");
    assert_eq!(cli(&["run", c, "--out", file.to_str().unwrap(), "--force"]), 2);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep");
    // imreg's own run folder is replaced, and carries the marker.
    let ours = dir.path().join("ours");
    let o = ours.to_str().unwrap();
    assert_eq!(cli(&["run", c, "--out", o]), 0);
    assert!(ours.join(imreg_cli::output::OWNER_MARKER).is_file());
    std::fs::write(ours.join("stale.txt"), "old").unwrap();
    assert_eq!(cli(&["run", c, "--out", o, "--force"]), 0);
    assert!(!ours.join("stale.txt").exists() && ours.join("_COMPLETE").is_file());
    // `reproduce --out` does not write into a non-empty folder that is not imreg's.
    assert_eq!(
        cli(&["reproduce", "--quick", "--out", t, "--only", "no-such-check"]),
        2
    );
    assert_eq!(tree(&theirs), before);
    // No temporary folder is left beside the outputs.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with(".tmp-")), "{names:?}");
}

fn rejected_within_a_second(dir: &Path, name: &str, text: &str, extra: &[&str]) -> String {
    let cfg = write(dir, name, text);
    let t0 = Instant::now();
    let r = imreg_cli::experiment::prepare(imreg_cli::config::ExperimentConfig::load(&cfg).unwrap(), &cfg);
    let field = match r {
        Err(imreg_cli::CliError::Input { field, reason, .. }) => format!("{field}: {reason}"),
        Err(e) => panic!("{name}: expected bad input, got {e}"),
        Ok(_) => panic!("{name}: accepted"),
    };
    let mut args = vec!["run", cfg.to_str().unwrap(), "--no-figures"];
    let out = dir.join(format!("out-{name}"));
    args.extend(["--out", out.to_str().unwrap()]);
    args.extend(extra);
    assert_eq!(cli(&args), 2, "{name}");
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "{name}: {:?}",
        t0.elapsed()
    );
    assert!(!out.exists());
    field
}

#[test]
fn huge_sizes_are_typed_errors_before_any_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases = [
        ("dim", SMALL.replace("dim = 4", "dim = 1000000000000000000"), "data.dim"),
        ("n", SMALL.replace("n = 24", "n = 9223372036854775807"), "data.n"),
        (
            "hidden",
            SMALL.replace("kind = \"linear_regression\"", "kind = \"mlp\"\nhidden = [4611686018427387904, 4611686018427387904]\nactivation = \"tanh\"\nloss = \"half_mse\""),
            "model.hidden",
        ),
        (
            "wide",
            SMALL.replace("kind = \"linear_regression\"", "kind = \"mlp\"\nhidden = [2000000000]\nactivation = \"tanh\"\nloss = \"half_mse\""),
            "model.hidden",
        ),
        (
            "classes",
            SMALL.replace("kind = \"gaussian_linear\"\nn = 24\ndim = 4\nnoise = 0.1", "kind = \"teacher_student_classification\"\nn = 24\ndim = 4\nclasses = 9000000000000000000")
                .replace("kind = \"linear_regression\"", "kind = \"mlp\"\nhidden = [3]\nactivation = \"tanh\"\nloss = \"cross_entropy\""),
            "data.classes",
        ),
        ("steps", SMALL.replace("steps = 40", "steps = 1000000000000000"), "steps"),
        (
            "max_batches",
            SMALL.replace("sharpness = true", "sharpness = true\nmax_batches = 1000000000000"),
            "track.max_batches",
        ),
    ];
    for (name, text, field) in cases {
        let got = rejected_within_a_second(d, &format!("{name}.toml"), &text, &[]);
        assert!(got.starts_with(field), "{name}: {got}");
        assert!(got.contains("exceeds the limit"), "{name}: {got}");
    }
    let scalar = "steps = 5\n[model]\nkind = \"scalar_net\"\nk = 9223372036854775807\nphi = 1.0\n[optimizer]\nkind = \"gd\"\nlr = 0.1\n";
    assert!(rejected_within_a_second(d, "k.toml", scalar, &[]).starts_with("model.k"));
    let quad = "steps = 5\n[model]\nkind = \"quadratic\"\np = 1000\nn = 100000\n[optimizer]\nkind = \"gd\"\nlr = 0.1\n";
    assert!(rejected_within_a_second(d, "q.toml", quad, &[]).starts_with("model.n"));
    let wide = quad.replace("p = 1000\nn = 100000", "p = 100000\nn = 1");
    assert!(rejected_within_a_second(d, "qp.toml", &wide, &[]).starts_with("model.p"));
}

#[test]
fn a_long_config_starts_at_once_and_max_steps_bounds_it() {
    let dir = tempfile::tempdir().unwrap();
    // 10^15 steps recording only a few rows: accepted, and counted without visiting the steps.
    let text = SMALL
        .replace("steps = 40", "steps = 1000000000000000")
        .replace("every = 5", "every = 100000000000000");
    let cfg = write(dir.path(), "long.toml", &text);
    let c = imreg_cli::config::ExperimentConfig::load(&cfg).unwrap();
    let t0 = Instant::now();
    assert_eq!(imreg_cli::train::expected_rows(&c), 11);
    let out = dir.path().join("out");
    assert_eq!(run_cli(&cfg, &out, &["--max-steps", "30", "--no-figures"]), 0);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let (_, rows) = read_csv(&out.join("metrics.csv"));
    assert_eq!(rows.last().unwrap()[0], 30.0);
}

#[test]
fn data_files_with_a_zero_length_axis_or_nan_name_the_right_field() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let npy = |name: &str, shape: &[usize], data: &[f64]| {
        std::fs::write(
            d.join(name),
            imreg_objective::data::npy::npy_bytes(shape, data).unwrap(),
        )
        .unwrap();
    };
    npy("x_empty.npy", &[4, 0], &[]);
    npy("y4.npy", &[4], &[0.0, 1.0, 0.0, 1.0]);
    npy(
        "x_nan.npy",
        &[4, 2],
        &[0.0, 1.0, f64::NAN, 1.0, 0.0, 1.0, 0.0, 1.0],
    );
    npy("y_empty.npy", &[4, 0], &[]);
    let cfg = |x: &str, y: &str, classes: &str| {
        format!(
            "steps = 2\n[data]\nkind = \"npy\"\nx = \"{x}\"\ny = \"{y}\"\n{classes}\n[model]\nkind = \"mlp\"\nhidden = [3]\nactivation = \"tanh\"\nloss = \"cross_entropy\"\n[optimizer]\nkind = \"gd\"\nlr = 0.1\n"
        )
    };
    for (name, text, field) in [
        (
            "many",
            cfg("x_nan.npy", "y4.npy", "classes = 1000000000000000000"),
            "data.classes",
        ),
        ("a", cfg("x_empty.npy", "y4.npy", "classes = 2"), "data.x"),
        ("b", cfg("x_nan.npy", "y4.npy", "classes = 2"), "data.x"),
        ("c", cfg("x_nan.npy", "y4.npy", ""), "data.x"),
        ("d", cfg("x_nan.npy", "y_empty.npy", ""), "data.y"),
    ] {
        let p = write(d, &format!("{name}.toml"), &text);
        let r = imreg_cli::experiment::prepare(imreg_cli::config::ExperimentConfig::load(&p).unwrap(), &p);
        match r {
            Err(imreg_cli::CliError::Input { field: f, reason, .. }) => {
                assert_eq!(f, field, "{name}: {reason}")
            }
            Err(e) => panic!("{name}: {e}"),
            Ok(_) => panic!("{name}: accepted"),
        }
        assert_eq!(run_cli(&p, &d.join(name), &[]), 2);
    }
}

fn sweep_text(lrs: &str) -> String {
    format!(
        "{}\n[sweep]\nseeds = [1]\n\n[sweep.grid]\n\"optimizer.lr\" = {lrs}\n",
        SMALL.replace("steps = 40", "steps = 10")
    )
}

fn manifest(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let cfg = write(dir, &format!("{name}.toml"), text);
    let entries = expand(&cfg).unwrap();
    write(
        dir,
        &format!("{name}.jsonl"),
        &imreg_cli::sweep::to_jsonl(&entries).unwrap(),
    )
}

#[test]
fn a_changed_grid_is_refused_and_collect_labels_runs_from_their_own_config() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let old = manifest(d, "old", &sweep_text("[0.05, 0.02]"));
    let new = manifest(d, "new", &sweep_text("[0.3, 0.02]"));
    let out = d.join("out");
    let o = out.to_str().unwrap();
    let run = |m: &Path| {
        cli(&[
            "sweep",
            "run",
            "--manifest",
            m.to_str().unwrap(),
            "--out",
            o,
            "--no-figures",
        ])
    };
    assert_eq!(run(&old), 0);
    let before = tree(&out);
    assert_eq!(run(&new), 2, "a changed grid must be refused");
    assert_eq!(tree(&out), before, "the refused manifest changed the folder");
    assert_eq!(run(&old), 0, "the same manifest resumes");
    // collect with the other manifest is refused; with the folder's own it labels from each run's config.
    assert_eq!(
        cli(&[
            "sweep",
            "collect",
            "--out",
            o,
            "--manifest",
            new.to_str().unwrap()
        ]),
        2
    );
    assert_eq!(cli(&["sweep", "collect", "--out", o]), 0);
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[1].starts_with("run-0000,0.05,1,"), "{csv}");
    assert!(lines[2].starts_with("run-0001,0.02,1,"), "{csv}");
    // A run folder whose config is not the manifest's is refused, not mislabelled.
    let cp = out.join("run-0000").join("config.toml");
    let text = std::fs::read_to_string(&cp).unwrap();
    std::fs::write(&cp, text.replace("lr = 0.05", "lr = 0.3")).unwrap();
    assert_eq!(cli(&["sweep", "collect", "--out", o]), 2);
}

#[test]
fn expand_rejects_what_run_rejects_and_overflowing_grids() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let field = |text: &str, name: &str| -> String {
        let p = write(d, name, text);
        assert_eq!(cli(&["sweep", "expand", p.to_str().unwrap()]), 2, "{name}");
        match expand(&p) {
            Err(imreg_cli::CliError::Input { field, .. }) => field,
            other => panic!("{name}: {other:?}"),
        }
    };
    let negative = SMALL.replace("seed = 7", "seed = -1");
    let p = write(d, "neg-run.toml", &negative);
    assert_eq!(run_cli(&p, &d.join("x"), &[]), 2);
    assert_eq!(
        field(
            &format!("{negative}\n[sweep.grid]\n\"optimizer.lr\" = [0.1]\n"),
            "neg.toml"
        ),
        "seed"
    );
    assert_eq!(
        field(&format!("{SMALL}\n[sweep]\nseeds = [-3]\n"), "negs.toml"),
        "sweep.seeds"
    );
    // 10^4 values per key, five keys: 10^20 runs overflows usize.
    let values = format!("[{}]", vec!["0.1"; 10_000].join(", "));
    let mut grid = format!("{SMALL}\n[sweep.grid]\n");
    for k in [
        "optimizer.lr",
        "init.scale",
        "data.noise",
        "track.every",
        "optimizer.batch_size",
    ] {
        grid.push_str(&format!("\"{k}\" = {values}\n"));
    }
    let t0 = Instant::now();
    assert_eq!(field(&grid, "huge.toml"), "sweep.grid");
    assert!(t0.elapsed() < Duration::from_secs(2));
}

#[test]
fn a_locked_run_is_left_alone_and_a_stale_lock_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = manifest(d, "m", &sweep_text("[0.05, 0.02]"));
    let entries = imreg_cli::sweep::read_manifest(&m).unwrap();
    let out = d.join("out");
    std::fs::create_dir(&out).unwrap();
    imreg_cli::output::mark(&out, "sweep").unwrap();
    let opts = FolderOptions {
        no_figures: true,
        ..Default::default()
    };
    // A live process (this one) holds run-0000 and is writing its temporary folder.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let lock = imreg_cli::lock::lock_path(&out, "run-0000");
    std::fs::write(&lock, format!("host={host}\npid={}\n", std::process::id())).unwrap();
    let tmp = out.join(".tmp-run-0000-live");
    std::fs::create_dir(&tmp).unwrap();
    imreg_cli::output::mark(&tmp, "run").unwrap();
    std::fs::write(tmp.join("metrics.csv"), "in progress").unwrap();
    let r = run_shard(&entries, Shard::ALL, &out, &m, &opts, &|| {}).unwrap();
    assert_eq!(r.ran, ["run-0001"]);
    assert_eq!(r.busy.len(), 1);
    assert_eq!(r.busy[0].0, "run-0000");
    assert!(
        tmp.join("metrics.csv").is_file(),
        "the other process's work was deleted"
    );
    assert!(lock.is_file());
    // The holder dies: its lock is stale and its marked temporary folder is cleaned; an unmarked folder
    // of the same name pattern is not imreg's and stays.
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    std::fs::write(&lock, format!("host={host}\npid={dead}\n")).unwrap();
    let unmarked = out.join(".tmp-run-0000-theirs");
    std::fs::create_dir(&unmarked).unwrap();
    let r = run_shard(&entries, Shard::ALL, &out, &m, &opts, &|| {}).unwrap();
    assert_eq!(r.ran, ["run-0000"]);
    assert!(r.busy.is_empty());
    assert!(!tmp.exists() && !lock.exists());
    assert!(unmarked.is_dir());
    // A lock from another host (a cluster node) is live while its heartbeat is recent, stale after
    // `STALE_AFTER` without one.
    std::fs::remove_dir_all(out.join("run-0001")).unwrap();
    let remote = imreg_cli::lock::lock_path(&out, "run-0001");
    std::fs::write(&remote, "host=some-other-node\npid=1\n").unwrap();
    let r = run_shard(&entries, Shard::ALL, &out, &m, &opts, &|| {}).unwrap();
    assert_eq!(r.busy.len(), 1, "{r:?}");
    let old = std::time::SystemTime::now() - imreg_cli::lock::STALE_AFTER - Duration::from_secs(60);
    std::fs::File::options()
        .append(true)
        .open(&remote)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let r = run_shard(&entries, Shard::ALL, &out, &m, &opts, &|| {}).unwrap();
    assert_eq!(r.ran, ["run-0001"]);
    assert!(!remote.exists());
}

#[test]
fn messages_name_the_field_and_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = |name: &str, text: &str| -> (String, String) {
        let p = write(d, name, text);
        match imreg_cli::config::ExperimentConfig::load(&p) {
            Err(imreg_cli::CliError::Input { field, reason, .. }) => (field, reason),
            other => panic!("{name}: {other:?}"),
        }
    };
    let no_model = SMALL.replace("[model]\nkind = \"linear_regression\"\n", "");
    assert_eq!(input("nomodel.toml", &no_model).0, "model");
    // Also when the file starts with a top-level key (the span then starts on `name = …`).
    assert_eq!(input("nomodel2.toml", no_model.trim_start()).0, "model");
    let (field, reason) = input(
        "type.toml",
        &SMALL.replace("batch_size = 6", "batch_size = \"six\""),
    );
    assert_eq!(field, "optimizer.batch_size", "{reason}");
    let (field, reason) = input("type2.toml", &SMALL.replace("n = 24", "n = 2.5"));
    assert_eq!(field, "data.n", "{reason}");
    // An output path under a file cannot be written: exit 2 and the message names it, not "figure:".
    let cfg = write(d, "small.toml", SMALL);
    let blocker = write(d, "blocker", "a file");
    let out = blocker.join("out");
    let child = cli_at(
        d,
        d,
        &["run", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()],
    );
    assert_eq!(child.0, 2, "{}", child.1);
    assert!(
        child.1.contains("blocker") && !child.1.contains("figure:"),
        "{}",
        child.1
    );
}

#[cfg(unix)]
#[test]
fn result_files_get_the_usual_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "small.toml", SMALL);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    // Under umask 022 and 027 (not a private 0600 / 0700 whatever the umask).
    for (umask, file_mode, dir_mode) in [("022", 0o644, 0o755), ("027", 0o640, 0o750)] {
        let out = dir.path().join(format!("out-{umask}"));
        let (code, err) = cli_with_umask(
            dir.path(),
            dir.path(),
            Some(umask),
            &["run", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()],
        );
        assert_eq!(code, 0, "{err}");
        assert_eq!(mode(&out), dir_mode, "umask {umask}");
        for f in [
            "metrics.csv",
            "summary.json",
            "loss.npy",
            "fig_loss.png",
            "theta_final.safetensors",
        ] {
            assert_eq!(mode(&out.join(f)), file_mode, "umask {umask}: {f}");
        }
    }
}

#[test]
fn a_single_run_cleans_its_killed_predecessor_and_refuses_a_live_writer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = write(d, "small.toml", SMALL);
    let c = cfg.to_str().unwrap();
    let out = d.join("out");
    let o = out.to_str().unwrap();
    // A killed run left its marked temporary folder; a folder of the same pattern without the marker is
    // someone else's.
    let killed = d.join(".tmp-out-killed");
    std::fs::create_dir(&killed).unwrap();
    imreg_cli::output::mark(&killed, "run").unwrap();
    let theirs = d.join(".tmp-out-theirs");
    std::fs::create_dir(&theirs).unwrap();
    assert_eq!(cli(&["run", c, "--out", o]), 0);
    assert!(!killed.exists() && theirs.is_dir());
    assert!(!imreg_cli::lock::lock_path(d, "out").exists());
    // While another live process holds the folder's lock, a second writer is refused and changes nothing.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let lock = imreg_cli::lock::lock_path(d, "out");
    std::fs::write(&lock, format!("host={host}\npid={}\n", std::process::id())).unwrap();
    let before = tree(&out);
    assert_eq!(cli(&["run", c, "--out", o, "--force"]), 2);
    assert_eq!(tree(&out), before);
    assert!(lock.is_file());
}
