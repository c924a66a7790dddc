//! The experiment config schema of `imreg run` and `imreg sweep` (one place, so it grows with the theory
//! crates). Every table denies unknown keys; `kind` selects the variant of `[data]`, `[model]` and
//! `[optimizer]`.
//!
//! ```toml
//! name = "linreg-sgd"
//! seed = 0
//! steps = 200
//!
//! [data]
//! kind = "gaussian_linear"   # | "gaussian_logistic" | "npy"
//! n = 64
//! dim = 5
//! noise = 0.1
//!
//! [model]
//! kind = "linear_regression" # | "logistic_regression"
//!
//! [init]
//! scale = 0.1                # θ₀ ~ N(0, scale²); or `from = "theta.npy"`
//!
//! [optimizer]
//! kind = "sgd"               # | "gd" | "momentum"
//! lr = 0.05
//! batch_size = 8
//! replacement = false
//!
//! [track]
//! every = 10
//! sharpness = true
//! ```
use crate::error::{CliError, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

fn default_true() -> bool {
    true
}
fn default_one() -> usize {
    1
}
fn default_steps() -> usize {
    100
}

/// One experiment: a pure function of this config (the seed included).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// A label for reports (defaults to the config file's stem).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Master seed: data generation, initialization and batch sampling use separate ChaCha streams of it.
    #[serde(default)]
    pub seed: u64,
    /// Number of optimizer steps.
    #[serde(default = "default_steps")]
    pub steps: usize,
    /// Required by every model except `scalar_net` with `phi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataConfig>,
    pub model: ModelConfig,
    #[serde(default)]
    pub init: InitConfig,
    pub optimizer: OptimizerConfig,
    #[serde(default)]
    pub track: TrackConfig,
}

/// Where the examples come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataConfig {
    /// `x_i ~ N(0, I_dim)`, `y_i = x_iᵀ w* + noise · ε_i` with `w* ~ N(0, I/dim)`.
    GaussianLinear {
        n: usize,
        dim: usize,
        #[serde(default)]
        noise: f64,
    },
    /// `x_i ~ N(0, I_dim)`, `y_i = 1[x_iᵀ w* + noise · ε_i > 0]`.
    GaussianLogistic {
        n: usize,
        dim: usize,
        #[serde(default)]
        noise: f64,
    },
    /// Inputs `x` (`N × d`, or `N × …`, flattened per example) and targets `y` (`N` or `N × 1`) from `.npy`
    /// files; relative paths are resolved against the config file's folder.
    Npy { x: PathBuf, y: PathBuf },
}

/// The model and its loss.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelConfig {
    /// `f(x) = wᵀx + b`, per-example loss `½ (f(x) − y)²` (½ MSE). PyTorch layout `0.weight [1, d]`,
    /// `0.bias [1]`.
    LinearRegression {
        #[serde(default = "default_true")]
        bias: bool,
    },
    /// `f(x) = wᵀx + b`, per-example loss `log(1 + e^f) − y f` with labels `y ∈ {0, 1}`.
    LogisticRegression {
        #[serde(default = "default_true")]
        bias: bool,
    },
    /// Deep linear network `f(x) = W_L ⋯ W_1 x (+ biases)` with hidden widths `hidden`, ½ MSE on all target
    /// columns. PyTorch `nn.Sequential(nn.Linear, …)` layout (`0.weight`, `0.bias`, `1.weight`, …).
    DeepLinear {
        hidden: Vec<usize>,
        #[serde(default)]
        bias: bool,
    },
    /// The depth-2 scalar network `f(x) = (aᵀb) x` of width `k`, `θ = (a, b)`, ½ MSE. With `phi` and no
    /// `[data]`: the one-example loss `½(aᵀb − Φ)²`; otherwise `data` must have one input and one target
    /// column.
    ScalarNet {
        k: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phi: Option<f64>,
    },
}

impl ModelConfig {
    /// The `kind` string of the model.
    pub fn kind(&self) -> &'static str {
        match self {
            ModelConfig::LinearRegression { .. } => "linear_regression",
            ModelConfig::LogisticRegression { .. } => "logistic_regression",
            ModelConfig::DeepLinear { .. } => "deep_linear",
            ModelConfig::ScalarNet { .. } => "scalar_net",
        }
    }
}

/// The initial parameters `θ₀`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitConfig {
    /// `θ₀ ~ N(0, scale² I)` (0: all zeros).
    #[serde(default)]
    pub scale: f64,
    /// Load `θ₀` from a `.npy` (flat, length p) or `.safetensors` (PyTorch names) file instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<PathBuf>,
}

/// The optimizer. Step sizes are `lr` (η in the papers).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// Full-batch gradient descent `θ ← θ − η ∇C(θ)`.
    Gd { lr: f64 },
    /// Minibatch SGD `θ ← θ − η ∇C_B(θ)`: batches of `batch_size` drawn with replacement (i.i.d. uniform
    /// indices) or without (random reshuffling each epoch; the last batch of an epoch may be smaller).
    Sgd {
        lr: f64,
        batch_size: usize,
        #[serde(default)]
        replacement: bool,
    },
    /// Heavy-ball momentum (PyTorch convention) `v ← β v + ∇C_B(θ)`, `θ ← θ − η v`; full batch unless
    /// `batch_size` is given.
    Momentum {
        lr: f64,
        beta: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        batch_size: Option<usize>,
        #[serde(default)]
        replacement: bool,
    },
}

impl OptimizerConfig {
    /// The step size η.
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::Gd { lr }
            | OptimizerConfig::Sgd { lr, .. }
            | OptimizerConfig::Momentum { lr, .. } => *lr,
        }
    }
    /// The minibatch size, `None` for full batch.
    pub fn batch_size(&self) -> Option<usize> {
        match self {
            OptimizerConfig::Gd { .. } => None,
            OptimizerConfig::Sgd { batch_size, .. } => Some(*batch_size),
            OptimizerConfig::Momentum { batch_size, .. } => *batch_size,
        }
    }
    /// Whether minibatches are drawn with replacement.
    pub fn replacement(&self) -> bool {
        match self {
            OptimizerConfig::Gd { .. } => false,
            OptimizerConfig::Sgd { replacement, .. } | OptimizerConfig::Momentum { replacement, .. } => {
                *replacement
            }
        }
    }
}

/// What to record, every `every` steps (and at the last step), always on the full batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackConfig {
    #[serde(default = "default_one")]
    pub every: usize,
    /// `C(θ)`.
    #[serde(default = "default_true")]
    pub loss: bool,
    /// `‖∇C(θ)‖`.
    #[serde(default = "default_true")]
    pub grad_norm: bool,
    /// `λ_max(∇²C(θ))` (Lanczos via imreg-spectra; dense for small p); plotted against `2/η`.
    #[serde(default)]
    pub sharpness: bool,
    /// Classification accuracy (logistic regression only).
    #[serde(default)]
    pub accuracy: bool,
}

impl Default for TrackConfig {
    fn default() -> Self {
        TrackConfig {
            every: 1,
            loss: true,
            grad_norm: true,
            sharpness: false,
            accuracy: false,
        }
    }
}

impl ExperimentConfig {
    /// Parses a config from TOML text; `file` is used in error messages.
    pub fn from_toml_str(text: &str, file: &Path) -> Result<Self> {
        toml::from_str(text).map_err(|e| toml_error(&e, text, file))
    }

    /// Reads and parses a config file, resolving relative data/init paths against its folder.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::input(path, "<file>", format!("cannot read config: {e}")))?;
        let mut cfg = Self::from_toml_str(&text, path)?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        cfg.resolve_paths(&base);
        Ok(cfg)
    }

    /// Makes relative file paths relative to `base` (the config's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(DataConfig::Npy { x, y }) = &mut self.data {
            fix(x);
            fix(y);
        }
        if let Some(f) = &mut self.init.from {
            fix(f);
        }
    }

    /// The resolved config as TOML (defaults filled in).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| CliError::Failed(format!("serializing the config: {e}")))
    }

    /// Checks value ranges that do not need the data (`file` for error messages). Data-dependent checks
    /// (batch size vs N, shapes) happen when the data is built.
    pub fn validate(&self, file: &Path) -> Result<()> {
        let bad = |field: &str, reason: String| Err(CliError::input(file, field, reason));
        let lr = self.optimizer.lr();
        if !(lr.is_finite() && lr > 0.0) {
            return bad(
                "optimizer.lr",
                format!("must be a positive finite number, got {lr}"),
            );
        }
        if let Some(b) = self.optimizer.batch_size() {
            if b == 0 {
                return bad("optimizer.batch_size", "must be at least 1".into());
            }
        }
        if let OptimizerConfig::Momentum { beta, .. } = self.optimizer {
            if !(0.0..1.0).contains(&beta) {
                return bad("optimizer.beta", format!("must lie in [0, 1), got {beta}"));
            }
        }
        if self.track.every == 0 {
            return bad("track.every", "must be at least 1".into());
        }
        if !(self.init.scale.is_finite() && self.init.scale >= 0.0) {
            return bad(
                "init.scale",
                format!("must be a non-negative finite number, got {}", self.init.scale),
            );
        }
        match &self.data {
            Some(
                DataConfig::GaussianLinear { n, dim, noise } | DataConfig::GaussianLogistic { n, dim, noise },
            ) => {
                if *n == 0 {
                    return bad("data.n", "must be at least 1".into());
                }
                if *dim == 0 {
                    return bad("data.dim", "must be at least 1".into());
                }
                if !(noise.is_finite() && *noise >= 0.0) {
                    return bad(
                        "data.noise",
                        format!("must be a non-negative finite number, got {noise}"),
                    );
                }
            }
            Some(DataConfig::Npy { .. }) => {}
            None => match self.model {
                ModelConfig::ScalarNet { phi: Some(_), .. } => {}
                _ => {
                    return bad(
                        "data",
                        format!("missing [data] table (model {} needs data)", self.model.kind()),
                    )
                }
            },
        }
        match &self.model {
            ModelConfig::ScalarNet { k: 0, .. } => {
                return bad("model.k", "the width must be at least 1".into())
            }
            ModelConfig::ScalarNet { phi: Some(_), .. } if self.data.is_some() => {
                return bad("model.phi", "give either phi or a [data] table, not both".into())
            }
            ModelConfig::DeepLinear { hidden, .. } if hidden.contains(&0) => {
                return bad("model.hidden", "every hidden width must be at least 1".into())
            }
            _ => {}
        }
        if self.track.accuracy && !matches!(self.model, ModelConfig::LogisticRegression { .. }) {
            return bad(
                "track.accuracy",
                "accuracy needs a classification model (logistic_regression)".into(),
            );
        }
        Ok(())
    }
}

/// Turns a TOML/serde error into a bad-input error naming the field: toml's message (which names unknown
/// keys and expected types) plus the dotted path of the key at the error's position.
pub fn toml_error(e: &toml::de::Error, text: &str, file: &Path) -> CliError {
    let field = e
        .span()
        .map(|s| key_path_at(text, s.start))
        .unwrap_or_else(|| "<document>".to_string());
    let msg = e.message().trim().to_string();
    // Missing fields and unknown keys inside buffered (tagged) tables are reported at the table: name the
    // key from the message when it carries one.
    let field = match backticked(&msg) {
        Some(key) if msg.starts_with("unknown field") || msg.starts_with("missing field") => {
            if field.is_empty() || field == "<document>" {
                key.to_string()
            } else if field.ends_with(&format!(".{key}")) || field == key {
                field
            } else {
                format!("{field}.{key}")
            }
        }
        _ => field,
    };
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let reason = match line {
        Some(l) => format!("{msg} (line {l})"),
        None => msg,
    };
    CliError::input(file, field, reason)
}

fn backticked(msg: &str) -> Option<&str> {
    let start = msg.find('`')? + 1;
    let len = msg[start..].find('`')?;
    Some(&msg[start..start + len])
}

/// The dotted key path (`optimizer.lr`) of the line containing byte `pos`: the nearest `[table]` header
/// above it plus the key on that line (or just the table, for a header line).
pub fn key_path_at(text: &str, pos: usize) -> String {
    let pos = pos.min(text.len());
    let line_start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    let header = |l: &str| -> Option<String> {
        let l = l.trim();
        l.strip_prefix('[')
            .and_then(|r| r.split(']').next())
            .map(|t| t.trim_matches('[').trim().to_string())
    };
    if let Some(h) = header(line) {
        return h;
    }
    let table = text[..line_start].lines().rev().find_map(header);
    let key = line
        .split('=')
        .next()
        .unwrap_or("")
        .trim()
        .trim_matches('"')
        .to_string();
    match (table, key.is_empty()) {
        (Some(t), false) => format!("{t}.{key}"),
        (Some(t), true) => t,
        (None, false) => key,
        (None, true) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
seed = 3
steps = 10
[data]
kind = "gaussian_linear"
n = 16
dim = 3
[model]
kind = "linear_regression"
[optimizer]
kind = "sgd"
lr = 0.1
batch_size = 4
"#;

    fn err(text: &str) -> (String, String) {
        match ExperimentConfig::from_toml_str(text, Path::new("c.toml")) {
            Err(CliError::Input { field, reason, .. }) => (field, reason),
            other => panic!("expected an input error, got {other:?}"),
        }
    }

    #[test]
    fn good_config_parses_with_defaults() {
        let c = ExperimentConfig::from_toml_str(GOOD, Path::new("c.toml")).unwrap();
        assert_eq!(c.seed, 3);
        assert_eq!(
            c.optimizer,
            OptimizerConfig::Sgd {
                lr: 0.1,
                batch_size: 4,
                replacement: false
            }
        );
        assert_eq!(c.track, TrackConfig::default());
        // The resolved config round-trips through TOML.
        let again = ExperimentConfig::from_toml_str(&c.to_toml().unwrap(), Path::new("r.toml")).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn unknown_key_is_named() {
        let (field, reason) = err(&GOOD.replace("batch_size = 4", "batch_size = 4\nbatchsize = 4"));
        assert!(field.ends_with("batchsize"), "{field}: {reason}");
        assert!(reason.contains("unknown field"), "{reason}");
        let (field, _) = err(&GOOD.replace("seed = 3", "seed = 3\nsede = 1"));
        assert_eq!(field, "sede");
        let (field, _) = err(&GOOD.replace("[model]", "[track]\neverry = 2\n[model]"));
        assert!(field.ends_with("everry"), "{field}");
    }

    #[test]
    fn wrong_type_is_named() {
        let (field, reason) = err(&GOOD.replace("lr = 0.1", "lr = \"fast\""));
        assert!(field.contains("lr") || field == "optimizer", "{field}: {reason}");
        assert!(reason.contains("invalid type"), "{reason}");
        let (field, reason) = err(&GOOD.replace("steps = 10", "steps = -1"));
        assert_eq!(field, "steps", "{reason}");
    }

    #[test]
    fn missing_field_and_bad_kind_are_named() {
        let (field, reason) = err(&GOOD.replace("lr = 0.1\n", ""));
        assert!(field.ends_with("lr"), "{field}: {reason}");
        let (field, reason) = err(&GOOD.replace("kind = \"sgd\"", "kind = \"adam\""));
        assert!(field.starts_with("optimizer"), "{field}: {reason}");
        assert!(reason.contains("adam"), "{reason}");
    }

    #[test]
    fn key_paths() {
        let t = "a = 1\n[x]\nb = 2\n[[y.z]]\nc = 3\n";
        assert_eq!(key_path_at(t, 0), "a");
        assert_eq!(key_path_at(t, t.find("b =").unwrap()), "x.b");
        assert_eq!(key_path_at(t, t.find("c =").unwrap()), "y.z.c");
        assert_eq!(key_path_at(t, t.find("[x]").unwrap()), "x");
    }
}
