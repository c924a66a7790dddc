#![allow(dead_code)]
use std::path::{Path, PathBuf};

/// A small SGD-on-linear-regression config (p = 5, N = 24).
pub const SMALL: &str = r#"
name = "small"
seed = 7
steps = 40

[data]
kind = "gaussian_linear"
n = 24
dim = 4
noise = 0.1

[model]
kind = "linear_regression"

[init]
scale = 0.1

[optimizer]
kind = "sgd"
lr = 0.05
batch_size = 6

[track]
every = 5
sharpness = true
"#;

/// A cross-entropy ReLU MLP on 300 of the embedded digits (`[split]`) trained by SGD, tracking accuracy.
pub const DIGITS_MLP: &str = r#"
seed = 4
steps = 6
[data]
kind = "digits"
[split]
n_train = 300
[model]
kind = "mlp"
hidden = [8]
activation = "relu"
loss = "cross_entropy"
[init]
scheme = "pytorch"
[optimizer]
kind = "sgd"
lr = 0.5
batch_size = 32
[track]
every = 3
accuracy = true
"#;

/// [`SMALL`] with full-batch GD in place of SGD.
pub fn small_gd() -> String {
    SMALL
        .replace("kind = \"sgd\"", "kind = \"gd\"")
        .replace("batch_size = 6\n", "")
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

pub fn cli(args: &[&str]) -> i32 {
    let mut v = vec!["imreg", "--quiet"];
    v.extend_from_slice(args);
    imreg_cli::run_with_args(v)
}

/// Every file under `dir` (relative path → bytes), sorted.
pub fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Parses a metrics CSV into (header, rows).
pub fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    (header, rows)
}

/// `imreg --quiet run CONFIG --out OUT EXTRA…`.
pub fn run_cli(cfg: &Path, out: &Path, extra: &[&str]) -> i32 {
    let mut args = vec!["run", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    cli(&args)
}

/// Writes `text` to `dir/name.toml`, runs it into `dir/name` without figures and returns the config's path and
/// the metrics table (header, rows).
pub fn run_metrics(dir: &Path, name: &str, text: &str) -> (PathBuf, Vec<String>, Vec<Vec<f64>>) {
    let cfg = write(dir, &format!("{name}.toml"), text);
    let out = dir.join(name);
    assert_eq!(run_cli(&cfg, &out, &["--no-figures"]), 0, "{name}");
    let (h, rows) = read_csv(&out.join("metrics.csv"));
    (cfg, h, rows)
}

/// The column `name` of a metrics table.
pub fn column(h: &[String], rows: &[Vec<f64>], name: &str) -> Vec<f64> {
    let j = h
        .iter()
        .position(|c| c == name)
        .unwrap_or_else(|| panic!("{name} not in {h:?}"));
    rows.iter().map(|r| r[j]).collect()
}

/// Class labels as an int64 `.npy` vector (as `np.save(f, labels.astype(np.int64))` writes it).
pub fn write_int_labels(path: &Path, labels: &[i64]) {
    let mut bytes = imreg_objective::data::npy::npy_header(&[labels.len()]).unwrap();
    let at = bytes.windows(3).position(|w| w == b"<f8").unwrap();
    bytes[at + 1] = b'i';
    bytes.extend(labels.iter().flat_map(|l| l.to_le_bytes()));
    std::fs::write(path, bytes).unwrap();
}

/// Each `(config text, field)` is refused before the run, naming `: field:` in its error, and `imreg run`
/// exits 2 on it.
pub fn assert_refused(dir: &Path, cases: &[(String, &str)]) {
    for (i, (text, field)) in cases.iter().enumerate() {
        let cfg = write(dir, &format!("bad{i}.toml"), text);
        let e = imreg_cli::config::ExperimentConfig::load(&cfg)
            .and_then(|c| imreg_cli::experiment::prepare(c, &cfg).map(|_| ()))
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!(": {field}:")), "case {i}: {e}");
        assert_eq!(run_cli(&cfg, &dir.join(format!("out{i}")), &[]), 2, "case {i}");
    }
}
