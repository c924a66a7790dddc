//! Layer norm and batch norm as [`Primitive`]s, in PyTorch's conventions (biased variance, `eps` inside the
//! square root, an affine map `γ ⊙ x̂ + β` after normalizing).
//!
//! Both normalize `x` over a set of entries `S` (layer norm: the features of one example; batch norm: one
//! channel over every row of the batch and every pixel), with `E_S` the mean over the set broadcast back:
//!
//! `μ = E_S x`, `σ² = E_S (x − μ)²`, `r = (σ² + ε)^{−1/2}`, `x̂ = (x − μ) r`, `y = γ ⊙ x̂ + β`
//!
//! * JVP: `ẋ̂ = r (ẋ − E_S ẋ − x̂ E_S(x̂ ẋ))`, `ẏ = γ ⊙ ẋ̂ + γ̇ ⊙ x̂ + β̇`.
//! * VJP: with `ĝ = γ ⊙ ȳ`, `x̄ = r (ĝ − E_S ĝ − x̂ E_S(x̂ ĝ))`, `γ̄ = Σ ȳ ⊙ x̂`, `β̄ = Σ ȳ` (sums over the
//!   entries that share the parameter).
//!
//! Batch norm in evaluation mode uses given running statistics `μ, σ²` (constants): `x̂ = (x − μ) r` is affine
//! in `x`, so `ẋ̂ = r ẋ` and `x̄ = r ĝ`.
//!
//! **Training-mode batch norm couples the examples**: the statistics are functions of every row, so the loss
//! of a batch is not a sum of per-example functions and evaluating it in chunks of rows would compute another
//! function. A training-mode batch norm is therefore told the batch size and refuses any other number of rows
//! (the program must be evaluated on the whole batch as one chunk). See `docs/autodiff.md` for what per-example
//! gradients and batch Hessians mean then.
use crate::error::{AdError, Result};
use crate::graph::{Graph, Var};
use crate::layout::{checked_mul, Image};
use crate::primitive::{expect_inputs, expect_shape, Primitive};
use crate::tensor::{Mat, Tensor};
use ndarray::{ArrayView1, ArrayViewMut1, ArrayViewMut2};

/// Over which entries a normalization takes its statistics, and how its parameters are shared.
#[derive(Clone, Debug)]
enum Axes {
    /// Layer norm: per row over its `features`; one `γ, β` entry per feature.
    Features { features: usize },
    /// Batch norm: per channel over all rows and the `plane = H·W` pixels; one `γ, β` entry per channel.
    Channels { channels: usize, plane: usize },
}

impl Axes {
    /// The mean over each statistics set (`n × 1` for layer norm, `1 × C` for batch norm).
    fn mean<T: Tensor>(&self, x: &T) -> T {
        let (n, f) = x.shape();
        match *self {
            Axes::Features { .. } => x.sum_cols().affine(1.0 / f as f64, 0.0),
            Axes::Channels { channels, plane } => x
                .linear_map(&|m| channel_sums(m, channels, plane))
                .affine(1.0 / (n * plane) as f64, 0.0),
        }
    }

    /// A statistic broadcast back to `n × F`.
    fn spread_stat<T: Tensor>(&self, s: &T, n: usize, f: usize) -> T {
        match *self {
            Axes::Features { .. } => s.broadcast_to(n, f),
            Axes::Channels { plane, .. } => s.linear_map(&|m| channel_spread(m, n, plane)),
        }
    }

    /// A parameter row (`γ` or `β`) broadcast to `n × F`.
    fn spread_param<T: Tensor>(&self, p: &T, n: usize, f: usize) -> T {
        match *self {
            Axes::Features { .. } => p.broadcast_to(n, f),
            Axes::Channels { plane, .. } => p.linear_map(&|m| channel_spread(m, n, plane)),
        }
    }

    /// The adjoint of [`Axes::spread_param`]: the sum over the entries sharing each parameter.
    fn sum_param<T: Tensor>(&self, g: &T) -> T {
        match *self {
            Axes::Features { .. } => g.sum_rows(),
            Axes::Channels { channels, plane } => g.linear_map(&|m| channel_sums(m, channels, plane)),
        }
    }

    fn params(&self) -> usize {
        match *self {
            Axes::Features { features } => features,
            Axes::Channels { channels, .. } => channels,
        }
    }
}

/// `1 × C`: the sum of each channel over all rows and pixels.
fn channel_sums(m: &Mat, channels: usize, plane: usize) -> Mat {
    let mut out = Mat::zeros((1, channels));
    for row in m.rows() {
        add_channel_sums(row, channels, plane, out.row_mut(0));
    }
    out
}

/// `out_c += Σ_s row[c·plane + s]` for every channel `c` of one row.
fn add_channel_sums(
    row: ArrayView1<'_, f64>,
    channels: usize,
    plane: usize,
    mut out: ArrayViewMut1<'_, f64>,
) {
    for c in 0..channels {
        out[c] += (0..plane).map(|s| row[c * plane + s]).sum::<f64>();
    }
}

/// `n × (C·plane)`: each channel's entry of the `1 × C` row `m` repeated over its pixels and over the rows.
fn channel_spread(m: &Mat, n: usize, plane: usize) -> Mat {
    Mat::from_shape_fn((n, m.ncols() * plane), |(_, f)| m[(0, f / plane)])
}

/// Where the statistics come from.
#[derive(Clone, Debug)]
enum Stats {
    /// From the input itself (layer norm; batch norm in training mode, on exactly `rows` rows if given).
    Input { rows: Option<usize> },
    /// Given running statistics `μ`, `r = (σ² + ε)^{−1/2}` as `1 × C` rows (batch norm in evaluation mode).
    Running { mean: Mat, rstd: Mat },
}

#[derive(Clone, Debug)]
struct NormOp {
    name: &'static str,
    axes: Axes,
    stats: Stats,
    eps: f64,
}

impl NormOp {
    /// `(x̂, r)` with `r` broadcast to the shape of `x`.
    fn normalize<T: Tensor>(&self, x: &T) -> (T, T) {
        let (n, f) = x.shape();
        match &self.stats {
            Stats::Input { .. } => {
                let mu = self.axes.mean(x);
                let xc = x.sub(&self.axes.spread_stat(&mu, n, f));
                let var = self.axes.mean(&xc.mul(&xc));
                // r = (σ² + ε)^{−1/2} = exp(−½ ln(σ² + ε))
                let r = var.affine(1.0, self.eps).ln().affine(-0.5, 0.0).exp();
                let r = self.axes.spread_stat(&r, n, f);
                (xc.mul(&r), r)
            }
            Stats::Running { mean, rstd } => {
                let mu = self.axes.spread_stat(mean, n, f);
                let r = self.axes.spread_stat(rstd, n, f);
                (x.add_constant(&-mu).mul_constant(&r), T::constant(r))
            }
        }
    }

    /// `E_S`-projection `v − E_S v − x̂ E_S(x̂ v)` times `r` (the derivative of `x̂`, and its own adjoint).
    fn project<T: Tensor>(&self, v: &T, xhat: &T, r: &T) -> T {
        match self.stats {
            Stats::Running { .. } => v.mul(r),
            Stats::Input { .. } => {
                let (n, f) = v.shape();
                let mean_v = self.axes.spread_stat(&self.axes.mean(v), n, f);
                let mean_xv = self.axes.spread_stat(&self.axes.mean(&xhat.mul(v)), n, f);
                v.sub(&mean_v).sub(&xhat.mul(&mean_xv)).mul(r)
            }
        }
    }
}

impl Primitive for NormOp {
    fn name(&self) -> &'static str {
        self.name
    }
    fn output_shape(&self, inputs: &[(usize, usize)]) -> Result<(usize, usize)> {
        expect_inputs(self.name, inputs, 3)?;
        let (n, f) = inputs[0];
        let (k, width) = match self.axes {
            Axes::Features { features } => (features, features),
            Axes::Channels { channels, plane } => (channels, checked_mul(channels, plane, "batch_norm")?),
        };
        expect_shape(self.name, "input", inputs[0], (n, width))?;
        expect_shape(self.name, "weight γ", inputs[1], (1, k))?;
        expect_shape(self.name, "bias β", inputs[2], (1, k))?;
        if let Stats::Input { rows: Some(rows) } = self.stats {
            if n != rows {
                return Err(AdError::Shape {
                    op: self.name,
                    detail: format!(
                        "training-mode batch statistics need the whole batch of {rows} rows as one chunk, found \
                         {n}×{f}"
                    ),
                });
            }
        }
        if n == 0 || f == 0 {
            return Err(AdError::Shape {
                op: self.name,
                detail: format!("cannot normalize an empty input {n}×{f}"),
            });
        }
        Ok((n, f))
    }
    fn forward<T: Tensor>(&self, x: &[&T]) -> T {
        let (n, f) = x[0].shape();
        let (xhat, _) = self.normalize(x[0]);
        xhat.mul(&self.axes.spread_param(x[1], n, f))
            .add(&self.axes.spread_param(x[2], n, f))
    }
    fn jvp<T: Tensor>(&self, x: &[&T], _y: &T, dx: &[Option<&T>]) -> Option<T> {
        let (n, f) = x[0].shape();
        let (xhat, r) = self.normalize(x[0]);
        let from_x = dx[0].map(|d| {
            self.project(d, &xhat, &r)
                .mul(&self.axes.spread_param(x[1], n, f))
        });
        let from_gamma = dx[1].map(|d| xhat.mul(&self.axes.spread_param(d, n, f)));
        let from_beta = dx[2].map(|d| self.axes.spread_param(d, n, f));
        crate::dual::add_opt(crate::dual::add_opt(from_x, from_gamma), from_beta)
    }
    fn vjp<T: Tensor>(&self, x: &[&T], _y: &T, g: &T, wants: &[bool]) -> Vec<Option<T>> {
        let (n, f) = x[0].shape();
        let (xhat, r) = self.normalize(x[0]);
        vec![
            wants[0].then(|| self.project(&g.mul(&self.axes.spread_param(x[1], n, f)), &xhat, &r)),
            wants[1].then(|| self.axes.sum_param(&g.mul(&xhat))),
            wants[2].then(|| self.axes.sum_param(g)),
        ]
    }
    /// `γ` and `β` are per example unless the statistics are the batch's (training-mode batch norm couples
    /// the examples: see the module doc).
    fn has_vjp_per_example(&self, input: usize) -> bool {
        (input == 1 || input == 2) && !matches!(self.stats, Stats::Input { rows: Some(_) })
    }
    /// `γ̄_i = Σ_S (ȳ ⊙ x̂)_i` and `β̄_i = Σ_S ȳ_i` over the entries of example `i` sharing each parameter.
    fn vjp_per_example(
        &self,
        x: &[&Mat],
        _y: &Mat,
        g: &Mat,
        input: usize,
        mut acc: ArrayViewMut2<'_, f64>,
    ) -> Result<()> {
        let prod;
        let per_entry = match input {
            1 => {
                prod = g.mul(&self.normalize(x[0]).0);
                &prod
            }
            2 => g,
            _ => {
                return Err(AdError::Invalid {
                    what: self.name,
                    reason: format!("no per-example rule for input {input}"),
                })
            }
        };
        for (src, mut dst) in per_entry.rows().into_iter().zip(acc.rows_mut()) {
            match self.axes {
                Axes::Features { .. } => dst += &src,
                Axes::Channels { channels, plane } => add_channel_sums(src, channels, plane, dst),
            }
        }
        Ok(())
    }
}

fn check_eps(eps: f64) -> Result<()> {
    if !(eps.is_finite() && eps > 0.0) {
        return Err(AdError::Invalid {
            what: "eps",
            reason: format!("{eps} must be positive and finite"),
        });
    }
    Ok(())
}

/// How a batch norm gets its statistics.
#[derive(Clone, Debug)]
pub enum BatchNormMode {
    /// Training mode: the statistics of the batch, which must arrive whole as one chunk of `batch_rows` rows.
    Training { batch_rows: usize },
    /// Evaluation mode: the running mean and (biased) variance, one entry per channel.
    Eval { mean: Vec<f64>, var: Vec<f64> },
}

impl<T: Tensor> Graph<T> {
    /// PyTorch's `nn.LayerNorm(features)` with affine parameters over each row: `x` is `n × F`, `γ` and `β` are
    /// `1 × F` (PyTorch's `LayerNorm([C, H, W])` on NCHW rows). See [`crate::norm`].
    pub fn layer_norm(&mut self, x: Var, gamma: Var, beta: Var, eps: f64) -> Result<Var> {
        check_eps(eps)?;
        let op = NormOp {
            name: "layer_norm",
            axes: Axes::Features {
                features: self.shape(x).1,
            },
            stats: Stats::Input { rows: None },
            eps,
        };
        self.apply(op, &[x, gamma, beta])
    }

    /// PyTorch's `nn.BatchNorm2d(C)` (`BatchNorm1d` with `H = W = 1`) on NCHW rows of shape `input`: `γ`, `β`
    /// are `1 × C`. See [`crate::norm`] and [`BatchNormMode`].
    pub fn batch_norm(
        &mut self,
        x: Var,
        gamma: Var,
        beta: Var,
        input: Image,
        mode: &BatchNormMode,
        eps: f64,
    ) -> Result<Var> {
        check_eps(eps)?;
        let axes = Axes::Channels {
            channels: input.channels,
            plane: input.plane()?,
        };
        let stats = match mode {
            BatchNormMode::Training { batch_rows } => Stats::Input {
                rows: Some(*batch_rows),
            },
            BatchNormMode::Eval { mean, var } => {
                let c = axes.params();
                for (what, v) in [("running mean", mean), ("running variance", var)] {
                    if v.len() != c {
                        return Err(AdError::Length {
                            what,
                            expected: c,
                            got: v.len(),
                        });
                    }
                }
                if let Some(k) = var.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
                    return Err(AdError::Invalid {
                        what: "running variance",
                        reason: format!("entry {k} is {}", var[k]),
                    });
                }
                if let Some(k) = mean.iter().position(|v| !v.is_finite()) {
                    return Err(AdError::NonFinite {
                        what: "running mean",
                        index: k,
                        value: mean[k],
                    });
                }
                Stats::Running {
                    mean: Mat::from_shape_vec((1, c), mean.clone()).expect("length checked"),
                    rstd: Mat::from_shape_fn((1, c), |(_, k)| 1.0 / (var[k] + eps).sqrt()),
                }
            }
        };
        let op = NormOp {
            name: "batch_norm",
            axes,
            stats,
            eps,
        };
        self.apply(op, &[x, gamma, beta])
    }
}
