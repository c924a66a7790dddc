//! Experiment-config inputs: the example configs of the repository (and a minimal one), mutated line by
//! line: keys deleted or duplicated, values replaced by other types or by huge, negative, NaN or infinite
//! numbers, known keys inserted with such values, `kind` switched, unknown keys and tables added, lines
//! swapped or spliced from another config, and the text truncated or byte-flipped. Each input goes through
//! [`ExperimentConfig::from_toml_str`] and [`ExperimentConfig::validate`], the public parser and validator.
use crate::mutate;
use crate::target::{Target, TargetVerdict};
use imreg_cli::config::ExperimentConfig;
use imreg_cli::EXIT_BAD_INPUT;
use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// The config target.
pub struct Config;

const SEEDS: &[&str] = &[
    include_str!("../../../examples/configs/cohen_eos_digits.toml"),
    include_str!("../../../examples/configs/deep_linear_momentum.toml"),
    include_str!("../../../examples/configs/eoss_sgd_batch_sharpness.toml"),
    include_str!("../../../examples/configs/linreg_sgd.toml"),
    include_str!("../../../examples/configs/logreg_sgd_replacement.toml"),
    include_str!("../../../examples/configs/noisy_gd_quadratic.toml"),
    include_str!("../../../examples/configs/regularized_sgd_digits.toml"),
    include_str!("../../../examples/configs/scalar_net_eta_sweep.toml"),
    include_str!("../../../examples/configs/scalar_net_gd.toml"),
    include_str!("../../../examples/configs/smith_csgd_check.toml"),
    include_str!("../../../examples/configs/sweep_linreg_lr.toml"),
    "steps = 10\n[model]\nkind = \"scalar_net\"\nk = 2\nphi = 1.0\n[optimizer]\nkind = \"gd\"\nlr = 0.1\n",
];

/// Keys of the config's tables, for insertions.
const KEYS: &[&str] = &[
    "steps",
    "seed",
    "n",
    "dim",
    "d",
    "r",
    "k",
    "p",
    "h",
    "hidden",
    "widths",
    "classes",
    "n_train",
    "lr",
    "batch_size",
    "beta",
    "sigma",
    "every",
    "accuracy",
    "sharpness",
    "max_batches",
    "micro_batch",
    "mini_bs",
    "trace_k",
    "scale",
    "noise",
    "phi",
    "coefficient",
    "lambda",
    "clip_grad_norm",
    "x",
    "y",
    "images",
    "labels",
    "files",
    "from",
    "name",
    "kind",
    "bias",
    "loss",
    "activation",
    "scheme",
    "nesterov",
];

const KINDS: &[&str] = &[
    "gaussian_linear",
    "gaussian_logistic",
    "digits",
    "teacher_student",
    "teacher_student_classification",
    "sparse_support",
    "scalar_net_data",
    "npy",
    "mnist_idx",
    "cifar10",
    "linear_regression",
    "logistic_regression",
    "mlp",
    "deep_linear",
    "scalar_net",
    "quadratic",
    "gd",
    "sgd",
    "momentum",
    "noisy_gd",
    "weight_decay",
    "smith_stochastic",
    "nope",
    "",
];

/// Values of other types and of extreme sizes.
const VALUES: &[&str] = &[
    "0",
    "-1",
    "1",
    "1e308",
    "-1e308",
    "1e-320",
    "nan",
    "-nan",
    "inf",
    "-inf",
    "18446744073709551615",
    "9223372036854775807",
    "-9223372036854775808",
    "1000000000000000",
    "4294967296",
    "1e15",
    "0.0",
    "\"\"",
    "\"x\"",
    "true",
    "[]",
    "[0]",
    "[1e308, -1]",
    "[9223372036854775807, 9223372036854775807]",
    "[[1]]",
    "{}",
    "{ a = 1 }",
    "1979-05-27",
    "\"/nonexistent/file.npy\"",
];

fn key_of(line: &str) -> Option<&str> {
    let (k, _) = line.split_once('=')?;
    let k = k.trim();
    (!k.is_empty() && !k.starts_with('[') && !k.starts_with('#')).then_some(k)
}

fn mutate_lines(rng: &mut ChaCha8Rng, lines: &mut Vec<String>) {
    let n = lines.len().max(1);
    let i = rng.random_range(0..n).min(lines.len().saturating_sub(1));
    match rng.random_range(0..10) {
        0 if !lines.is_empty() => {
            lines.remove(i);
        }
        1 if !lines.is_empty() => lines.insert(i, lines[i].clone()),
        2 | 3 => {
            // replace the value of a key line
            if let Some(k) = lines.get(i).and_then(|l| key_of(l)).map(str::to_owned) {
                let v = if rng.random_bool(0.5) {
                    (*VALUES.choose(rng).unwrap_or(&"0")).to_owned()
                } else {
                    mutate::edge_text(rng)
                };
                lines[i] = format!("{k} = {v}");
            }
        }
        4 | 5 => {
            let k = KEYS.choose(rng).unwrap_or(&"n");
            let v = VALUES.choose(rng).unwrap_or(&"0");
            lines.insert(i, format!("{k} = {v}"));
        }
        6 => {
            let kind = KINDS.choose(rng).unwrap_or(&"");
            match lines.iter().position(|l| l.trim_start().starts_with("kind")) {
                Some(at) if rng.random_bool(0.8) => lines[at] = format!("kind = \"{kind}\""),
                _ => lines.insert(i, format!("kind = \"{kind}\"")),
            }
        }
        7 => {
            let t = [
                "[bogus]",
                "[model.extra]",
                "[[regularizer]]",
                "[sweep]",
                "[data]",
                "[track]",
            ]
            .choose(rng)
            .unwrap_or(&"[bogus]");
            lines.insert(i, (*t).to_owned());
            if rng.random_bool(0.5) {
                lines.insert(i + 1, "bogus = 1".to_owned());
            }
        }
        8 if lines.len() > 1 => {
            let j = rng.random_range(0..lines.len());
            lines.swap(i, j);
        }
        _ => {
            let other = SEEDS.choose(rng).unwrap_or(&"");
            let other: Vec<&str> = other.lines().collect();
            let from = rng.random_range(0..=other.len());
            let to = rng.random_range(from..=other.len());
            let at = rng.random_range(0..=lines.len());
            lines.splice(at..at, other[from..to].iter().map(|l| (*l).to_owned()));
        }
    }
}

impl Target for Config {
    fn name(&self) -> &'static str {
        "config"
    }

    fn generate(&self, rng: &mut ChaCha8Rng) -> Vec<u8> {
        let seed = SEEDS.choose(rng).unwrap_or(&"");
        let mut lines: Vec<String> = seed.lines().map(str::to_owned).collect();
        for _ in 0..rng.random_range(1..=4) {
            mutate_lines(rng, &mut lines);
        }
        let mut bytes = lines.join("\n").into_bytes();
        if rng.random_bool(0.15) {
            let other = SEEDS.choose(rng).unwrap_or(&"").as_bytes();
            mutate::bytes(rng, &mut bytes, other);
        }
        bytes
    }

    fn check(&self, input: &[u8]) -> TargetVerdict {
        let text = String::from_utf8_lossy(input);
        let file = Path::new("fuzz.toml");
        let result = ExperimentConfig::from_toml_str(&text, file).and_then(|c| c.validate(file));
        match result {
            Ok(()) => TargetVerdict::Accepted,
            Err(e) if e.exit_code() == EXIT_BAD_INPUT => TargetVerdict::Rejected(e.to_string()),
            Err(e) => TargetVerdict::Untyped(format!("exit {}: {e}", e.exit_code())),
        }
    }

    fn is_config(&self) -> bool {
        true
    }
}
