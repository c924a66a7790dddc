//! Multi-layer perceptrons through `imreg-ad`: any widths and activations, MSE (with or without the ½) or
//! softmax cross-entropy, PyTorch `nn.Linear` parameter layout.
//!
//! The parameter vector is, layer by layer, the weight `W_ℓ` (`[out, in]`, row-major) then the bias `b_ℓ`
//! (`[out]`, if `bias`), exactly as `torch.nn.Sequential(Linear, act, Linear, …).state_dict()` flattens, with
//! names `0.weight`, `0.bias`, `2.weight`, … (see [`Mlp::param_names`]).
//!
//! Every derivative is the tape's: gradient by reverse mode, HVP by forward-over-reverse, third-order by
//! `Dual<Dual<_>>`. Batches are cut into fixed chunks (see [`super::common`]) evaluated in parallel and added
//! in chunk order, so results are bitwise identical at any thread count.
use super::common::{
    axpy, check_dir, check_theta_batch, chunk_len, chunked_sum, chunked_sum_into, gather_rows,
    per_example_driver,
};
use crate::batch::Batch;
use crate::error::{ObjectiveError, Result};
use crate::objective::{check_finite, streamed_hessian, HessianAt, Objective};
use crate::supervised::{LossKind, Supervised, Targets};
use imreg_ad::{Dense, Dual, Graph, Linearized, Mat, Program, Tensor, Unary, Var};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rayon::prelude::*;
use std::sync::Mutex;

/// The hidden-layer nonlinearity (the output layer is linear).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Tanh,
    Relu,
    /// The exact (erf) GELU, `x Φ(x)`.
    Gelu,
    Softplus,
    Sigmoid,
    /// No nonlinearity: the MLP is a deep linear network.
    Identity,
}

impl Activation {
    fn unary(self) -> Unary {
        match self {
            Activation::Tanh => Unary::Tanh,
            Activation::Relu => Unary::Relu,
            Activation::Gelu => Unary::Gelu,
            Activation::Softplus => Unary::Softplus,
            Activation::Sigmoid => Unary::Sigmoid,
            Activation::Identity => Unary::Identity,
        }
    }
}

/// Architecture and loss of an [`Mlp`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MlpSpec {
    /// `[d_in, h_1, …, h_{L−1}, C]`.
    pub widths: Vec<usize>,
    pub activation: Activation,
    pub bias: bool,
    pub loss: LossKind,
}

impl MlpSpec {
    /// `(out, in)` of each layer's weight.
    pub fn layer_shapes(&self) -> Vec<(usize, usize)> {
        self.widths.windows(2).map(|w| (w[1], w[0])).collect()
    }

    /// The network as an `imreg-ad` layer builder.
    pub fn net(&self) -> Dense {
        Dense {
            widths: self.widths.clone(),
            activation: self.activation.unary(),
            bias: self.bias,
        }
    }

    /// The shapes of the autodiff leaves: weight `[out, in]`, then bias `[1, out]` if any, per layer.
    fn leaf_shapes(&self) -> Vec<(usize, usize)> {
        Dense::leaf_shapes_of(&self.widths, self.bias)
    }

    /// Number of parameters.
    pub fn n_params(&self) -> usize {
        let bias = usize::from(self.bias);
        self.widths.windows(2).map(|w| (w[0] + bias) * w[1]).sum()
    }
}

#[derive(Clone, Debug)]
enum Labels {
    Values(Array2<f64>),
    Classes(Vec<usize>),
}

/// An MLP on a fixed dataset: `ℓ_i(θ) = loss(f(x_i; θ), y_i)`, `C_B = mean over B`.
#[derive(Clone, Debug)]
pub struct Mlp {
    spec: MlpSpec,
    x: Array2<f64>,
    labels: Labels,
}

/// What the scalar output of one chunk's tape is.
enum Head<'a> {
    /// `Σ_{i ∈ chunk} ℓ_i` with these targets.
    Values(Mat),
    Classes(&'a [usize]),
    /// `Σ_i ⟨f(x_i), u_i⟩` (for output VJPs).
    OutputDot(Mat),
}

/// The tape program of one chunk of examples: the rows `rows` of the inputs `data`, gathered when the tape is
/// recorded (one copy, straight into the graph).
struct Chunk<'a> {
    spec: &'a MlpSpec,
    data: &'a Array2<f64>,
    rows: &'a [usize],
    head: Head<'a>,
}

impl Chunk<'_> {
    fn forward<T: Tensor>(
        &self,
        g: &mut Graph<T>,
        leaves: &[Var],
        probes: &[Var],
    ) -> imreg_ad::Result<(Var, Vec<Var>)> {
        let x = g.constant(gather_rows(self.data, self.rows));
        self.spec.net().forward(g, leaves, x, probes)
    }

    fn head<T: Tensor>(&self, g: &mut Graph<T>, out: Var) -> imreg_ad::Result<Var> {
        let n = self.rows.len() as f64;
        match &self.head {
            Head::Values(y) => {
                let half = matches!(self.spec.loss, LossKind::Mse { half: true });
                let m = g.mse(out, y, half)?;
                Ok(g.scale(m, n))
            }
            Head::Classes(labels) => {
                let m = g.softmax_cross_entropy(out, labels)?;
                Ok(g.scale(m, n))
            }
            Head::OutputDot(u) => {
                let uc = g.constant(u.clone());
                let prod = g.mul(out, uc)?;
                Ok(g.sum(prod))
            }
        }
    }
}

impl Program for Chunk<'_> {
    fn leaf_shapes(&self) -> Vec<(usize, usize)> {
        self.spec.leaf_shapes()
    }
    fn build<T: Tensor>(&self, g: &mut Graph<T>, leaves: &[Var]) -> imreg_ad::Result<Var> {
        let (out, _) = self.forward(g, leaves, &[])?;
        self.head(g, out)
    }
}

fn ad_err(e: imreg_ad::AdError) -> ObjectiveError {
    ObjectiveError::Ad(e.to_string())
}

impl Mlp {
    fn validate_spec(spec: &MlpSpec, x: &Array2<f64>) -> Result<()> {
        if spec.widths.len() < 2 || spec.widths.contains(&0) {
            return Err(ObjectiveError::invalid(
                "widths",
                format!("{:?}: need ≥ 2 positive widths [d_in, …, C]", spec.widths),
            ));
        }
        if x.ncols() != spec.widths[0] {
            return Err(ObjectiveError::Shape {
                what: "x".into(),
                expected: format!("N × {}", spec.widths[0]),
                got: format!("{} × {}", x.nrows(), x.ncols()),
            });
        }
        if x.nrows() == 0 {
            return Err(ObjectiveError::invalid("x", "no examples"));
        }
        check_finite(
            "x",
            x.as_slice().unwrap_or(&x.iter().copied().collect::<Vec<_>>()),
        )
    }

    /// A regression MLP (`spec.loss` must be `Mse`), targets `y` of shape `N × C`.
    pub fn regression(spec: MlpSpec, x: Array2<f64>, y: Array2<f64>) -> Result<Self> {
        Self::validate_spec(&spec, &x)?;
        if !matches!(spec.loss, LossKind::Mse { .. }) {
            return Err(ObjectiveError::invalid(
                "loss",
                "regression targets need an MSE loss",
            ));
        }
        let c = *spec.widths.last().unwrap_or(&0);
        if y.dim() != (x.nrows(), c) {
            return Err(ObjectiveError::Shape {
                what: "y".into(),
                expected: format!("{} × {c}", x.nrows()),
                got: format!("{} × {}", y.nrows(), y.ncols()),
            });
        }
        check_finite("y", &y.iter().copied().collect::<Vec<_>>())?;
        Ok(Mlp {
            spec,
            x,
            labels: Labels::Values(y),
        })
    }

    /// A classifier. With `LossKind::CrossEntropy` the outputs are logits; with `LossKind::Mse` the targets are
    /// the one-hot vectors of the labels (as in Cohen et al.'s MSE experiments).
    pub fn classification(spec: MlpSpec, x: Array2<f64>, labels: Vec<usize>) -> Result<Self> {
        Self::validate_spec(&spec, &x)?;
        let c = *spec.widths.last().unwrap_or(&0);
        if labels.len() != x.nrows() {
            return Err(ObjectiveError::Length {
                name: "labels",
                expected: x.nrows(),
                got: labels.len(),
            });
        }
        if let Some((index, &label)) = labels.iter().enumerate().find(|(_, &l)| l >= c) {
            return Err(ObjectiveError::LabelOutOfRange {
                index,
                label: label as i64,
                classes: c,
            });
        }
        match spec.loss {
            LossKind::CrossEntropy => {
                if c < 2 {
                    return Err(ObjectiveError::invalid(
                        "widths",
                        "cross-entropy needs ≥ 2 outputs",
                    ));
                }
                Ok(Mlp {
                    spec,
                    x,
                    labels: Labels::Classes(labels),
                })
            }
            LossKind::Mse { .. } => {
                let mut y = Array2::zeros((x.nrows(), c));
                labels.iter().enumerate().for_each(|(i, &l)| y[(i, l)] = 1.0);
                Ok(Mlp {
                    spec,
                    x,
                    labels: Labels::Values(y),
                })
            }
        }
    }

    pub fn spec(&self) -> &MlpSpec {
        &self.spec
    }

    /// The regression targets `N × C` (`None` for a classifier, whose labels the caller keeps).
    pub fn regression_targets(&self) -> Option<&Array2<f64>> {
        match &self.labels {
            Labels::Values(y) => Some(y),
            Labels::Classes(_) => None,
        }
    }

    /// The inputs, `N × d_in`.
    pub fn inputs(&self) -> &Array2<f64> {
        &self.x
    }

    /// `(out, in)` of each layer's weight.
    pub fn layer_shapes(&self) -> Vec<(usize, usize)> {
        self.spec.layer_shapes()
    }

    /// PyTorch `nn.Sequential` names of the parameters in order: `0.weight`, `0.bias`, `2.weight`, … (linear
    /// layers sit at even indices, activations between them).
    pub fn param_names(&self) -> Vec<String> {
        (0..self.spec.widths.len() - 1)
            .flat_map(|k| {
                let mut v = vec![format!("{}.weight", 2 * k)];
                if self.spec.bias {
                    v.push(format!("{}.bias", 2 * k));
                }
                v
            })
            .collect()
    }

    /// Shapes matching [`Mlp::param_names`] (`[out, in]` and `[out]`).
    pub fn param_shapes(&self) -> Vec<Vec<usize>> {
        self.spec
            .layer_shapes()
            .into_iter()
            .flat_map(|(o, i)| {
                let mut v = vec![vec![o, i]];
                if self.spec.bias {
                    v.push(vec![o]);
                }
                v
            })
            .collect()
    }

    /// PyTorch's default `nn.Linear` initialization, `U(−1/√in, 1/√in)` for weights and biases, times `scale`,
    /// from a seeded ChaCha stream.
    pub fn init_params(&self, seed: u64, scale: f64) -> Vec<f64> {
        use rand::Rng;
        let mut rng = crate::rng::stream(seed, 0);
        let mut theta = Vec::with_capacity(self.dim());
        for (o, i) in self.spec.layer_shapes() {
            let bound = scale / (i as f64).sqrt();
            let count = o * i + if self.spec.bias { o } else { 0 };
            theta.extend((0..count).map(|_| bound * (2.0 * rng.random::<f64>() - 1.0)));
        }
        theta
    }

    fn chunk<'a>(&'a self, ix: &'a [usize], labels_buf: &'a [usize]) -> Chunk<'a> {
        let head = match &self.labels {
            Labels::Values(y) => Head::Values(gather_rows(y, ix)),
            Labels::Classes(_) => Head::Classes(labels_buf),
        };
        Chunk {
            spec: &self.spec,
            data: &self.x,
            rows: ix,
            head,
        }
    }

    fn chunk_labels(&self, ix: &[usize]) -> Vec<usize> {
        match &self.labels {
            Labels::Classes(l) => ix.iter().map(|&i| l[i]).collect(),
            Labels::Values(_) => Vec::new(),
        }
    }

    /// Sums `f(chunk program)` (a scalar and a vector of length `out.len()`) over the batch, divides by `|B|`,
    /// writes the vector mean into `out` and returns the scalar mean. `θ` was validated by [`Mlp::point`].
    fn mean_over_batch<F>(&self, batch: Batch<'_>, out: &mut [f64], f: F) -> Result<f64>
    where
        F: Fn(&Chunk<'_>, &mut f64, &mut [f64]) -> imreg_ad::Result<()> + Sync,
    {
        batch.validate(self.n_examples())?;
        let inv = 1.0 / batch.len(self.n_examples()) as f64;
        chunked_sum_into(batch, self.n_examples(), inv, out, |_, ix, s, acc| {
            let labels = self.chunk_labels(ix);
            f(&self.chunk(ix, &labels), s, acc).map_err(ad_err)
        })
    }

    /// `θ` (and a direction) checked once per call and shared by every chunk (each chunk copies it into its tape).
    fn point<'t>(&self, theta: &'t [f64], v: Option<&'t [f64]>) -> Result<imreg_ad::Point<'t>> {
        // Lengths first, so bad input surfaces as the objective's typed errors; `Point` checks finiteness.
        crate::objective::check_len("theta", theta, self.dim())?;
        if let Some(v) = v {
            crate::objective::check_len("v", v, self.dim())?;
        }
        let shapes = self.spec.leaf_shapes();
        match v {
            Some(v) => imreg_ad::Point::with_direction(&shapes, theta, v),
            None => imreg_ad::Point::new(&shapes, theta),
        }
        .map_err(|e| match e {
            imreg_ad::AdError::NonFinite { what, index, value } => ObjectiveError::NonFinite {
                what: if what == "direction" { "v" } else { "theta" }.into(),
                index,
                value,
            },
            e => ad_err(e),
        })
    }

    /// [`Objective::hessian_at`] with a memory budget for the recorded tapes (estimated as four `f64` matrices,
    /// values, tangents, cotangents and their tangents, per layer width per row).
    fn hessian_within<'a>(
        &'a self,
        theta: &'a [f64],
        batch: Batch<'a>,
        budget_bytes: usize,
    ) -> Result<Box<dyn HessianAt + 'a>> {
        batch.validate(self.n_examples())?;
        let len = batch.len(self.n_examples());
        if len * self.spec.widths.iter().sum::<usize>() * 4 * size_of::<f64>() > budget_bytes {
            return streamed_hessian(self, theta, batch);
        }
        let at = self.point(theta, None)?;
        let chunk = chunk_len(len);
        let record = |c: usize| -> Result<Mutex<Linearized>> {
            let ix = batch.slice(c * chunk, ((c + 1) * chunk).min(len));
            let labels = self.chunk_labels(&ix);
            let lin = imreg_ad::linearize(&self.chunk(&ix, &labels), &at).map_err(ad_err)?;
            Ok(Mutex::new(lin))
        };
        let chunks = len.div_ceil(chunk);
        let tapes = if chunks <= 1 {
            vec![record(0)?]
        } else {
            (0..chunks).into_par_iter().map(record).collect::<Result<_>>()?
        };
        Ok(Box::new(MlpHessian {
            mlp: self,
            batch,
            chunk,
            tapes,
        }))
    }

    fn leaves_with_tangent(&self, theta: &[f64], v: &[f64]) -> Result<Vec<Dual<Mat>>> {
        let shapes = self.spec.leaf_shapes();
        let ps = imreg_ad::unflatten(theta, &shapes).map_err(ad_err)?;
        let ts = imreg_ad::unflatten(v, &shapes).map_err(ad_err)?;
        Ok(ps
            .into_iter()
            .zip(ts)
            .map(|(p, t)| Dual::new(p, Some(t)))
            .collect())
    }
}

/// Memory budget of [`Mlp::hessian_at`]'s recorded tapes: 512 MiB (the medium MLP at n = 1024 needs ≈ 43 MB,
/// a full MNIST-sized batch of 60 000 rows ≈ 2.5 GB and is streamed).
pub const PREPARED_HESSIAN_BYTES: usize = 512 << 20;

/// [`Mlp::hessian_at`]: one recorded tape per chunk of the batch (the chunks of [`chunked_sum_into`], so the
/// HVPs are reduced exactly as [`Objective::hvp`]'s are and stay bitwise identical at any thread count).
struct MlpHessian<'a> {
    mlp: &'a Mlp,
    batch: Batch<'a>,
    chunk: usize,
    tapes: Vec<Mutex<Linearized>>,
}

impl HessianAt for MlpHessian<'_> {
    fn hvp(&self, v: &[f64], out: &mut [f64]) -> Result<()> {
        let p = self.mlp.dim();
        crate::objective::check_len("v", v, p)?;
        crate::objective::check_len("out", out, p)?;
        check_finite("v", v)?;
        let n = self.mlp.n_examples();
        let inv = 1.0 / self.batch.len(n) as f64;
        chunked_sum_into(self.batch, n, inv, out, |start, _, _, acc| {
            // A chunk's tape is used by one task at a time; a poisoned lock only means an earlier call
            // panicked mid-replay, and every replay overwrites all tangents.
            let mut tape = self.tapes[start / self.chunk]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            tape.hvp_acc(v, acc).map_err(ad_err)
        })?;
        Ok(())
    }
}

impl Objective for Mlp {
    fn name(&self) -> String {
        let loss = match self.spec.loss {
            LossKind::Mse { half: true } => "½ MSE",
            LossKind::Mse { half: false } => "MSE (no ½)",
            LossKind::CrossEntropy => "cross-entropy",
        };
        let w: Vec<String> = self.spec.widths.iter().map(|w| w.to_string()).collect();
        format!("mlp {} {:?} ({loss})", w.join("-"), self.spec.activation).to_lowercase()
    }

    fn dim(&self) -> usize {
        self.spec.n_params()
    }

    fn n_examples(&self) -> usize {
        self.x.nrows()
    }

    fn loss(&self, theta: &[f64], batch: Batch<'_>) -> Result<f64> {
        let at = self.point(theta, None)?;
        self.mean_over_batch(batch, &mut [], |c, s, _| {
            *s += imreg_ad::value_at(c, &at)?;
            Ok(())
        })
    }

    fn loss_grad(&self, theta: &[f64], batch: Batch<'_>, grad: &mut [f64]) -> Result<f64> {
        crate::objective::check_len("grad", grad, self.dim())?;
        let at = self.point(theta, None)?;
        self.mean_over_batch(batch, grad, |c, s, acc| {
            *s += imreg_ad::grad_acc(c, &at, acc)?;
            Ok(())
        })
    }

    fn hvp(&self, theta: &[f64], batch: Batch<'_>, v: &[f64], out: &mut [f64]) -> Result<()> {
        crate::objective::check_len("out", out, self.dim())?;
        let at = self.point(theta, Some(v))?;
        self.mean_over_batch(batch, out, |c, _, acc| imreg_ad::hvp_acc(c, &at, acc))?;
        Ok(())
    }

    /// Records every chunk's tape once at `θ` ([`imreg_ad::linearize`]); each HVP then runs the tangent halves
    /// only. Batches whose tapes would exceed [`PREPARED_HESSIAN_BYTES`] are streamed through [`Objective::hvp`]
    /// instead.
    fn hessian_at<'a>(&'a self, theta: &'a [f64], batch: Batch<'a>) -> Result<Box<dyn HessianAt + 'a>> {
        self.hessian_within(theta, batch, PREPARED_HESSIAN_BYTES)
    }

    fn third_order(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        u: &[f64],
        v: &[f64],
        out: &mut [f64],
    ) -> Result<()> {
        check_dir("u", u, self.dim())?;
        check_dir("v", v, self.dim())?;
        crate::objective::check_len("out", out, self.dim())?;
        check_theta_batch(theta, self.dim(), batch, self.n_examples())?;
        self.mean_over_batch(batch, out, |c, _, acc| {
            axpy(1.0, &imreg_ad::third_order(c, theta, u, v)?, acc);
            Ok(())
        })?;
        Ok(())
    }

    /// Per-example gradients from one reverse pass per chunk: with `δ_ℓ = ∂ℓ_i/∂z_ℓ` the pre-activation
    /// cotangent of example `i` (read off zero "probe" leaves added to each pre-activation) and `a_{ℓ−1}` its
    /// layer input, `∇_{W_ℓ} ℓ_i = δ_ℓ a_{ℓ−1}ᵀ` and `∇_{b_ℓ} ℓ_i = δ_ℓ`.
    fn per_example_grads(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        chunk: usize,
        sink: &mut dyn FnMut(usize, ArrayView2<'_, f64>) -> Result<()>,
    ) -> Result<()> {
        check_theta_batch(theta, self.dim(), batch, self.n_examples())?;
        let shapes = self.spec.leaf_shapes();
        let params = imreg_ad::unflatten(theta, &shapes).map_err(ad_err)?;
        let fill = |ix: &[usize], mut rows: ArrayViewMut2<'_, f64>| -> Result<()> {
            let labels = self.chunk_labels(ix);
            let c = self.chunk(ix, &labels);
            // Parameters are constants here: only the probes are leaves, so the reverse pass computes the
            // pre-activation cotangents and skips every weight-gradient product.
            let mut g = Graph::<Mat>::new();
            let consts: Vec<Var> = params.iter().map(|p| g.constant(p.clone())).collect();
            let n = ix.len();
            let layers = self.spec.layer_shapes();
            let probes: Vec<Var> = layers.iter().map(|&(o, _)| g.leaf(Mat::zeros((n, o)))).collect();
            let (out, inputs) = c.forward(&mut g, &consts, &probes).map_err(ad_err)?;
            let loss = c.head(&mut g, out).map_err(ad_err)?;
            let deltas = g.backward(loss).map_err(ad_err)?;
            for (r, mut row) in rows.rows_mut().into_iter().enumerate() {
                let row = row
                    .as_slice_mut()
                    .ok_or_else(|| ObjectiveError::invalid("buffer", "not contiguous"))?;
                let mut off = 0;
                for (k, &(o, i)) in layers.iter().enumerate() {
                    // Tape values are row-major, so their rows are slices.
                    let (Some(d), Some(a)) =
                        (deltas[k].row(r).to_slice(), g.value(inputs[k]).row(r).to_slice())
                    else {
                        return Err(ObjectiveError::invalid("tape value", "not row-major"));
                    };
                    imreg_ad::fastmath::outer_into(d, a, &mut row[off..off + o * i]);
                    off += o * i;
                    if self.spec.bias {
                        row[off..off + o].copy_from_slice(d);
                        off += o;
                    }
                }
            }
            Ok(())
        };
        per_example_driver(batch, self.n_examples(), self.dim(), chunk, fill, sink)
    }
}

impl Supervised for Mlp {
    fn n_outputs(&self) -> usize {
        *self.spec.widths.last().unwrap_or(&0)
    }

    fn loss_kind(&self) -> LossKind {
        self.spec.loss
    }

    fn outputs(&self, theta: &[f64], batch: Batch<'_>) -> Result<Array2<f64>> {
        check_theta_batch(theta, self.dim(), batch, self.n_examples())?;
        let params = imreg_ad::unflatten(theta, &self.spec.leaf_shapes()).map_err(ad_err)?;
        let len = batch.len(self.n_examples());
        let chunk = chunk_len(len);
        let parts: Vec<Result<Mat>> = (0..len.div_ceil(chunk))
            .into_par_iter()
            .map(|c| {
                let ix = batch.slice(c * chunk, ((c + 1) * chunk).min(len));
                let ch = Chunk {
                    spec: &self.spec,
                    data: &self.x,
                    rows: &ix,
                    head: Head::Classes(&[]),
                };
                let mut g = Graph::<Mat>::new();
                let leaves: Vec<Var> = params.iter().map(|p| g.leaf(p.clone())).collect();
                let (out, _) = ch.forward(&mut g, &leaves, &[]).map_err(ad_err)?;
                Ok(g.value(out).clone())
            })
            .collect();
        let parts = parts.into_iter().collect::<Result<Vec<_>>>()?;
        let views: Vec<ArrayView2<'_, f64>> = parts.iter().map(|m| m.view()).collect();
        ndarray::concatenate(ndarray::Axis(0), &views)
            .map_err(|e| ObjectiveError::invalid("outputs", e.to_string()))
    }

    fn loss_grad_with_targets(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        targets: Targets<'_>,
        grad: &mut [f64],
    ) -> Result<f64> {
        let n = self.n_examples();
        let len = batch.len(n);
        let c = self.n_outputs();
        match targets {
            Targets::Values(v) => {
                if !matches!(self.spec.loss, LossKind::Mse { .. }) || v.dim() != (len, c) {
                    return Err(ObjectiveError::Shape {
                        what: "targets".into(),
                        expected: format!("{len} × {c} values for an MSE model"),
                        got: format!("{} × {}", v.nrows(), v.ncols()),
                    });
                }
            }
            Targets::Labels(l) => {
                if l.len() != len {
                    return Err(ObjectiveError::Length {
                        name: "labels",
                        expected: len,
                        got: l.len(),
                    });
                }
                if let Some((index, &label)) = l.iter().enumerate().find(|(_, &x)| x >= c) {
                    return Err(ObjectiveError::LabelOutOfRange {
                        index,
                        label: label as i64,
                        classes: c,
                    });
                }
            }
        }
        crate::objective::check_len("grad", grad, self.dim())?;
        check_theta_batch(theta, self.dim(), batch, n)?;
        let at = self.point(theta, None)?;
        let (s, mut acc) = chunked_sum(batch, n, self.dim(), |start, ix, s, acc| {
            let rows = start..start + ix.len();
            let head = match (targets, self.spec.loss) {
                (Targets::Values(v), _) => Head::Values(v.slice(ndarray::s![rows, ..]).to_owned()),
                (Targets::Labels(l), LossKind::CrossEntropy) => Head::Classes(&l[rows]),
                (Targets::Labels(l), LossKind::Mse { .. }) => {
                    let mut y = Mat::zeros((ix.len(), c));
                    l[rows].iter().enumerate().for_each(|(i, &k)| y[(i, k)] = 1.0);
                    Head::Values(y)
                }
            };
            let ch = Chunk {
                spec: &self.spec,
                data: &self.x,
                rows: ix,
                head,
            };
            *s += imreg_ad::grad_acc(&ch, &at, acc).map_err(ad_err)?;
            Ok(())
        })?;
        let inv = 1.0 / len as f64;
        acc.iter_mut().for_each(|a| *a *= inv);
        grad.copy_from_slice(&acc);
        Ok(s * inv)
    }

    fn output_jvp(&self, theta: &[f64], batch: Batch<'_>, v: &[f64]) -> Result<Array2<f64>> {
        check_theta_batch(theta, self.dim(), batch, self.n_examples())?;
        check_dir("v", v, self.dim())?;
        let leaves_val = self.leaves_with_tangent(theta, v)?;
        let ix = batch.slice(0, batch.len(self.n_examples()));
        let ch = Chunk {
            spec: &self.spec,
            data: &self.x,
            rows: &ix,
            head: Head::Classes(&[]),
        };
        let mut g = Graph::<Dual<Mat>>::new();
        let leaves: Vec<Var> = leaves_val.into_iter().map(|l| g.leaf(l)).collect();
        let (out, _) = ch.forward(&mut g, &leaves, &[]).map_err(ad_err)?;
        Ok(g.value(out).tangent_or_zero())
    }

    fn output_vjp(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        u: ArrayView2<'_, f64>,
        out: &mut [f64],
    ) -> Result<()> {
        let n = self.n_examples();
        let len = batch.len(n);
        if u.dim() != (len, self.n_outputs()) {
            return Err(ObjectiveError::Shape {
                what: "u".into(),
                expected: format!("{len} × {}", self.n_outputs()),
                got: format!("{} × {}", u.nrows(), u.ncols()),
            });
        }
        crate::objective::check_len("out", out, self.dim())?;
        check_theta_batch(theta, self.dim(), batch, n)?;
        let at = self.point(theta, None)?;
        let (_, acc) = chunked_sum(batch, n, self.dim(), |start, ix, _, acc| {
            let uc = u.slice(ndarray::s![start..start + ix.len(), ..]).to_owned();
            let ch = Chunk {
                spec: &self.spec,
                data: &self.x,
                rows: ix,
                head: Head::OutputDot(uc),
            };
            imreg_ad::grad_acc(&ch, &at, acc).map_err(ad_err)?;
            Ok(())
        })?;
        out.copy_from_slice(&acc);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hessian_over_the_memory_budget_is_streamed_and_equal() {
        let x = Array2::from_shape_fn((300, 4), |(i, j)| ((i * 7 + j * 3) as f64).sin());
        let spec = MlpSpec {
            widths: vec![4, 6, 3],
            activation: Activation::Tanh,
            bias: true,
            loss: LossKind::CrossEntropy,
        };
        let m = Mlp::classification(spec, x, (0..300).map(|i| i % 3).collect()).unwrap();
        let theta = m.init_params(3, 1.0);
        let v = m.init_params(4, 1.0);
        let want = m.hvp_vec(&theta, Batch::Full, &v).unwrap();
        // A zero budget streams through `hvp` (bitwise its result); the default budget records the tapes.
        for (budget, exact) in [(0, true), (PREPARED_HESSIAN_BYTES, false)] {
            let mut got = vec![0.0; m.dim()];
            let h = m.hessian_within(&theta, Batch::Full, budget).unwrap();
            h.hvp(&v, &mut got).unwrap();
            let err = want
                .iter()
                .zip(&got)
                .fold(0.0_f64, |e, (a, b)| e.max((a - b).abs()));
            let scale = want.iter().fold(0.0_f64, |s, a| s.max(a.abs()));
            assert!(
                if exact { err == 0.0 } else { err <= 1e-14 * scale },
                "budget {budget}: {err:e}"
            );
        }
        assert!(m.hessian_within(&theta, Batch::Indices(&[300]), 0).is_err());
    }
}
