//! Resource limits: every size a config sets (examples, input width, classes, hidden widths, steps,
//! sweep grids) is multiplied out with checked arithmetic and compared with a stated limit before anything
//! of that size is allocated, so a huge value is a typed error (exit 2) naming the field, the value and the
//! limit — never an overflow, an abort on allocation or a hang. The limits are listed in
//! `docs/reliability.md`.
use crate::config::{DataConfig, ExperimentConfig, ModelConfig};
use crate::error::{CliError, Result};
use imreg_objective::models::{LayerSpec, NetworkSpec};
use std::path::Path;

/// Most parameters `p` of a model.
pub const MAX_PARAMS: u64 = 100_000_000;
/// Most `f64` values of a dataset (`N × (d + outputs)`, with generator parameters).
pub const MAX_DATA_VALUES: u64 = 250_000_000;
/// Most bytes a run may hold at once by our estimate ([`run_memory`]).
pub const MAX_MEMORY_BYTES: u64 = 4 << 30;
/// Most metric rows one run records: they are streamed to disk (`metrics.csv` and one `.npy` file per
/// metric, about 100 bytes a row in all), so this bounds the disk a run fills, about 10 GB.
pub const MAX_RECORDED_ROWS: u64 = 100_000_000;
/// Most classes of class-label data (`data.classes`).
pub const MAX_CLASSES: u64 = 1_000_000;
/// Most runs in one sweep manifest.
pub const MAX_SWEEP_RUNS: u64 = 100_000;
/// Most Monte Carlo batches per batch-sharpness / MiniBS evaluation (`track.max_batches`).
pub const MAX_BATCHES: u64 = 1_000_000;

/// A product or sum of sizes that overflowed `u64` counts as `u64::MAX` (above every limit).
fn mul(a: u64, b: u64) -> u64 {
    a.saturating_mul(b)
}

fn add(a: u64, b: u64) -> u64 {
    a.saturating_add(b)
}

fn u(v: usize) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// `value ≤ limit`, else an input error on `field` saying what `value` counts.
pub fn at_most(file: &Path, field: &str, what: &str, value: u64, limit: u64) -> Result<()> {
    if value <= limit {
        return Ok(());
    }
    let shown = if value == u64::MAX {
        "more than 2^64".to_string()
    } else {
        value.to_string()
    };
    Err(CliError::input(
        file,
        field,
        format!("{what} = {shown} exceeds the limit of {limit} (see docs/reliability.md)"),
    ))
}

/// The `f64` values a generated dataset holds, with the field that sets its size; `None` for data read
/// from files (checked after loading, see [`check_model`]).
fn generated_values(data: &DataConfig) -> Option<(u64, &'static str)> {
    let widest = |n: usize, d: usize| if d > n { "data.dim" } else { "data.n" };
    Some(match *data {
        DataConfig::GaussianLinear { n, dim, .. } | DataConfig::GaussianLogistic { n, dim, .. } => {
            (mul(u(n), add(u(dim), 1)), widest(n, dim))
        }
        DataConfig::TeacherStudent { n, ref widths, .. } => {
            let io = add(
                u(widths.first().copied().unwrap_or(0)),
                u(widths.last().copied().unwrap_or(0)),
            );
            let teacher = widths
                .windows(2)
                .fold(0, |s, w| add(s, mul(add(u(w[0]), 1), u(w[1]))));
            let field = if widths.iter().any(|&w| w > n) {
                "data.widths"
            } else {
                "data.n"
            };
            (add(mul(u(n), io), teacher), field)
        }
        DataConfig::TeacherStudentClassification { n, dim, classes } => {
            let field = if classes > n && classes > dim {
                "data.classes"
            } else {
                widest(n, dim)
            };
            (add(mul(u(n), add(u(dim), 1)), mul(u(classes), u(dim))), field)
        }
        DataConfig::SparseSupport { n, d, .. } => (mul(mul(2, u(n)), add(u(d), 1)), widest(n, d)),
        DataConfig::ScalarNetData { n, .. } => (mul(2, u(n)), "data.n"),
        DataConfig::Digits {}
        | DataConfig::Mnist(_)
        | DataConfig::FashionMnist(_)
        | DataConfig::Npy { .. }
        | DataConfig::MnistIdx { .. }
        | DataConfig::Cifar10 { .. } => return None,
    })
}

/// Size checks that need only the config: generated data, data-free models, hidden widths, batches.
pub fn check_config(cfg: &ExperimentConfig, file: &Path) -> Result<()> {
    if let Some((values, field)) = cfg.data.as_ref().and_then(generated_values) {
        at_most(file, field, "the dataset's values", values, MAX_DATA_VALUES)?;
    }
    if let Some(
        DataConfig::Npy {
            classes: Some(classes),
            ..
        }
        | DataConfig::TeacherStudentClassification { classes, .. },
    ) = &cfg.data
    {
        at_most(file, "data.classes", "classes", u(*classes), MAX_CLASSES)?;
    }
    match cfg.model {
        ModelConfig::ScalarNet { k, .. } => {
            at_most(file, "model.k", "parameters 2k", mul(2, u(k)), MAX_PARAMS)?
        }
        ModelConfig::Quadratic {
            p: Some(p),
            n: Some(n),
            ..
        } => {
            at_most(file, "model.p", "parameters p", u(p), MAX_PARAMS)?;
            // n examples, each A_i (p × p) and b_i (p).
            let per_example = add(mul(u(p), u(p)), u(p));
            let field = if per_example > MAX_DATA_VALUES {
                "model.p"
            } else {
                "model.n"
            };
            let values = mul(u(n), per_example);
            at_most(
                file,
                field,
                "values n·(p² + p) of the random quadratic",
                values,
                MAX_DATA_VALUES,
            )?;
        }
        ModelConfig::Mlp { ref hidden, .. } | ModelConfig::DeepLinear { ref hidden, .. } => {
            let pairs = hidden.windows(2).fold(0, |s, w| add(s, mul(u(w[0]), u(w[1]))));
            at_most(
                file,
                "model.hidden",
                "parameters between hidden layers",
                pairs,
                MAX_PARAMS,
            )?;
        }
        _ => {}
    }
    at_most(
        file,
        "track.max_batches",
        "batches per evaluation",
        u(cfg.track.max_batches),
        MAX_BATCHES,
    )
}

/// The parameter count of `model` on data with `d_in` inputs and `d_out` outputs (checked; saturating).
pub fn param_count(model: &ModelConfig, d_in: usize, d_out: usize) -> u64 {
    let bias = |b: bool| u64::from(b);
    let layers = |widths: &[u64], b: bool| {
        widths
            .windows(2)
            .fold(0, |s, w| add(s, add(mul(w[0], w[1]), mul(bias(b), w[1]))))
    };
    let chain = |hidden: &[usize]| {
        let mut w = vec![u(d_in)];
        w.extend(hidden.iter().map(|&h| u(h)));
        w.push(u(d_out));
        w
    };
    match model {
        ModelConfig::LinearRegression { bias: b } | ModelConfig::LogisticRegression { bias: b } => {
            add(u(d_in), bias(*b))
        }
        ModelConfig::Mlp { hidden, bias: b, .. } | ModelConfig::DeepLinear { hidden, bias: b } => {
            layers(&chain(hidden), *b)
        }
        ModelConfig::ScalarNet { k, .. } => mul(2, u(*k)),
        ModelConfig::Quadratic { h: Some(h), .. } => u(h.len()),
        ModelConfig::Quadratic { p, .. } => u(p.unwrap_or(0)),
        // Counted from the compiled description (`crate::network`), after `spec_widths` bounded it.
        ModelConfig::Network { .. } => 0,
    }
}

/// Checks the built dataset (`n × d_in` inputs, `d_out` outputs) and the parameter count of the model
/// before the model is built.
pub fn check_model(model: &ModelConfig, n: usize, d_in: usize, d_out: usize, file: &Path) -> Result<()> {
    at_most(
        file,
        "data",
        "the dataset's values N·(d + outputs)",
        mul(u(n), add(u(d_in), u(d_out))),
        MAX_DATA_VALUES,
    )?;
    let field = match model {
        ModelConfig::Mlp { .. } | ModelConfig::DeepLinear { .. } => "model.hidden",
        ModelConfig::ScalarNet { .. } => "model.k",
        _ => "model",
    };
    at_most(
        file,
        field,
        "parameters p",
        param_count(model, d_in, d_out),
        MAX_PARAMS,
    )
}

/// The widths a network description sets, summed before it is compiled: every layer's `out_channels` /
/// `out_features` / adaptive pool size and the input's features. Compiling allocates per-channel buffers (batch
/// norm's running statistics) no larger than this sum, and every parameter tensor has at least its layer's width.
pub fn spec_widths(spec: &NetworkSpec) -> u64 {
    fn layers(ls: &[LayerSpec]) -> u64 {
        ls.iter().fold(0, |s, l| add(s, layer(l)))
    }
    fn layer(l: &LayerSpec) -> u64 {
        match l {
            LayerSpec::Conv2d { out_channels, .. } => u(*out_channels),
            LayerSpec::Linear { out_features, .. } => u(*out_features),
            LayerSpec::AdaptiveAvgPool { output_size, .. } => {
                let (h, w) = output_size.pair();
                mul(u(h), u(w))
            }
            LayerSpec::Sequential { layers: ls, .. } => layers(ls),
            LayerSpec::Residual { body, shortcut, .. } => add(layers(body), layers(shortcut)),
            LayerSpec::Concat { branches, .. } => branches.iter().fold(0, |s, b| add(s, layers(b))),
            _ => 0,
        }
    }
    let input = spec.input.iter().fold(1, |s, &d| mul(s, u(d)));
    add(input, layers(&spec.layers))
}

/// Bytes the tape of one chunk of `rows` examples holds by our estimate: each activation's value, adjoint and
/// the two tangents of an HVP (`4 × 8` bytes per float).
pub fn network_tape_bytes(tape_floats_per_example: usize, rows: usize) -> u64 {
    mul(mul(u(tape_floats_per_example), u(rows)), 32)
}

/// The number of rows a run of `steps` steps records when metrics are due at step 0, at the last step and
/// at every multiple of any of `periods` — counted in O(2^|periods|) by inclusion–exclusion over the
/// least common multiples, not by visiting the steps.
pub fn recorded_rows(steps: usize, periods: &[usize]) -> u64 {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let steps = u(steps);
    let periods: Vec<u64> = periods.iter().map(|&p| u(p.max(1))).collect();
    // Multiples of any period in 1..=steps.
    let mut multiples: i128 = 0;
    for mask in 1u32..(1 << periods.len()) {
        let mut lcm = 1u64;
        for (j, &p) in periods.iter().enumerate() {
            if mask & (1 << j) != 0 {
                lcm = (lcm / gcd(lcm, p)).saturating_mul(p);
            }
        }
        let count = i128::from(steps / lcm);
        multiples += if mask.count_ones() % 2 == 1 { count } else { -count };
    }
    let last_is_multiple = steps > 0 && periods.iter().any(|&p| steps.is_multiple_of(p));
    let extra_last = u64::from(steps > 0 && !last_is_multiple);
    1 + u64::try_from(multiples).unwrap_or(0) + extra_last
}

/// Length-`p` vectors a run holds at once by our count: `θ_0`, the trajectory's `θ`, next `θ`, gradient
/// and momentum buffer, and the gradient of the row being recorded. Iterates are not kept (each row is
/// computed at its step), so this does not grow with the steps.
pub const RUN_VECTORS: u64 = 6;

/// Our estimate of the bytes a run holds at once, by part (data is limited on its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunMemory {
    /// [`RUN_VECTORS`] vectors of `p` values.
    pub vectors: u64,
    /// Per-example gradients (`N × p`) when a covariance or Fisher metric is tracked.
    pub per_example: u64,
}

impl RunMemory {
    /// The sum of the parts (saturating).
    pub fn total(&self) -> u64 {
        add(self.vectors, self.per_example)
    }
}

/// Bytes a run with `p` parameters and `n` examples holds at once by our estimate (see [`RunMemory`]); the
/// metric rows are streamed to disk, so the number of rows does not enter.
pub fn run_memory(p: usize, n: usize, per_example: bool) -> RunMemory {
    RunMemory {
        vectors: mul(RUN_VECTORS, mul(u(p), 8)),
        per_example: if per_example { mul(mul(u(n), u(p)), 8) } else { 0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_rows_counts_by_inclusion_exclusion() {
        for steps in [0usize, 1, 7, 30, 97, 120] {
            for periods in [vec![1], vec![5], vec![4, 6], vec![3, 5, 7], vec![200], vec![2, 4]] {
                let brute = (0..=steps)
                    .filter(|&s| s == 0 || s == steps || periods.iter().any(|p| s % p == 0))
                    .count() as u64;
                assert_eq!(recorded_rows(steps, &periods), brute, "{steps} {periods:?}");
            }
        }
        // 10^15 steps: counted, not visited.
        assert_eq!(recorded_rows(1_000_000_000_000_000, &[1]), 1_000_000_000_000_001);
        // 2^64 − 1 is a multiple of 3: steps 0, the multiples of 3 (the last among them).
        assert_eq!(recorded_rows(usize::MAX, &[usize::MAX, 3]), 1 + u64::MAX / 3);
    }

    #[test]
    fn sizes_saturate_instead_of_wrapping() {
        let m = ModelConfig::Mlp {
            hidden: vec![usize::MAX, usize::MAX],
            activation: imreg_objective::models::Activation::Tanh,
            bias: true,
            loss: crate::config::LossConfig::HalfMse,
        };
        assert_eq!(param_count(&m, 3, 1), u64::MAX);
        let e = check_model(&m, 10, 3, 1, Path::new("c.toml")).unwrap_err();
        assert!(e.to_string().contains("model.hidden"), "{e}");
        assert!(e.to_string().contains("more than 2^64"), "{e}");
    }
}
