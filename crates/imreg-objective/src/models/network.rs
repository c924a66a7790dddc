//! Any network written once on `imreg-ad` as a complete [`Objective`]: a [`Network`] (its parameters in
//! PyTorch `state_dict` order and its forward pass on a chunk of examples) and a [`Loss`] on its outputs give
//! [`NetworkObjective`], with loss, gradient, HVP, prepared HVP ([`imreg_ad::linearize`]), third order,
//! per-example gradients and input gradients `∇ₓC_B`.
//!
//! `C_B(θ) = (1/|B|) Σ_{i∈B} ℓ(f(x_i; θ), y_i)`. Every derivative is the tape's: gradient by reverse mode, HVP by
//! forward-over-reverse, third order by `Dual<Dual<_>>`. A batch is cut into fixed chunks, a function of its
//! length ([`NetworkObjective::chunk_size`]: those of [`super::common`], or for heavy rows chunks whose tape fits
//! [`HEAVY_CHUNK_BYTES`]; one tape per chunk, chunks in parallel, partial sums added in chunk order), so results
//! are bitwise identical at any thread count.
//!
//! **Networks that couple examples** (batch norm in training mode, [`Network::couples_examples`]) are evaluated
//! on the whole batch as one chunk, so `C_B` is the loss with the batch's statistics, as PyTorch's
//! `model.train()`. Their per-example gradient is `∇_θ ℓ_i(θ; μ_B(θ), σ²_B(θ))`, example `i`'s term with the
//! whole batch's statistics differentiated through (a row of the Jacobian of the per-example losses, one
//! reverse pass per example over the batch's tape): the rows still average to `∇C_B`, but each depends on the
//! whole batch and is not the gradient of `ℓ_i` evaluated alone.
use super::common::{
    axpy, chunk_len, chunked_sum_by, gather_rows, per_example_block_rows, per_example_driver,
};
use super::loss::{ChunkTargets, Loss, StandardLoss};
use crate::batch::Batch;
use crate::error::{ObjectiveError, Result};
use crate::objective::{
    check_direction, check_finite, check_len, stream_rows, streamed_hessian, At, HessianAt, Objective,
    RowSink,
};
use crate::supervised::Targets;
use imreg_ad::{Dual, Graph, Linearized, Mat, Program, Tensor, Var};
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use std::sync::Mutex;

/// A named parameter tensor in PyTorch's shape (`[out, in, kh, kw]` for a conv weight, `[out, in]` for a
/// linear weight, `[C]` for a bias or a norm's `γ, β`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parameter {
    /// The `state_dict` key, e.g. `features.0.weight`.
    pub name: String,
    pub shape: Vec<usize>,
}

impl Parameter {
    pub fn new(name: impl Into<String>, shape: Vec<usize>) -> Self {
        Parameter {
            name: name.into(),
            shape,
        }
    }

    /// The tape leaf holding it, row-major: `[d0, d1·d2·…]` for ≥ 2 dims, `[1, d0]` for a vector, `[1, 1]` for
    /// a scalar. Its flattening is the tensor's C-order flattening.
    pub fn leaf_shape(&self) -> (usize, usize) {
        match self.shape.as_slice() {
            [] => (1, 1),
            [d] => (1, *d),
            [d, rest @ ..] => (*d, rest.iter().product()),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether it has no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A network `f(x; θ)` written once on the tape: inputs are rows of `input_dim` features (an NCHW image is its
/// `C·H·W` features, see [`imreg_ad::layout`]), outputs rows of `output_dim`.
///
/// ```
/// use imreg_ad::{Graph, Tensor, Var};
/// use imreg_objective::models::{Network, NetworkObjective, Parameter, StandardLoss};
/// use imreg_objective::{Batch, Objective};
/// /// f(x) = W₂ relu(W₁ x + b₁), 3 → 4 → 2
/// struct TwoLayer;
/// impl Network for TwoLayer {
///     fn name(&self) -> String { "two-layer relu".into() }
///     fn parameters(&self) -> Vec<Parameter> {
///         vec![Parameter::new("0.weight", vec![4, 3]), Parameter::new("0.bias", vec![4]),
///              Parameter::new("2.weight", vec![2, 4])]
///     }
///     fn input_dim(&self) -> usize { 3 }
///     fn output_dim(&self) -> usize { 2 }
///     fn forward<T: Tensor>(&self, g: &mut Graph<T>, p: &[Var], x: Var) -> imreg_ad::Result<Var> {
///         let h = g.linear(x, p[0], Some(p[1]))?;
///         let h = g.relu(h);
///         g.linear(h, p[2], None)
///     }
/// }
/// let x = ndarray::Array2::from_shape_fn((5, 3), |(i, j)| ((i + 2 * j) as f64).sin());
/// let obj = NetworkObjective::classification(TwoLayer, StandardLoss::CrossEntropy, x, vec![0, 1, 1, 0, 1])?;
/// let theta: Vec<f64> = (0..obj.dim()).map(|k| (k as f64).cos()).collect();
/// let g = obj.grad(&theta, Batch::Full)?;
/// let hv = obj.hvp_vec(&theta, Batch::Full, &g)?;
/// assert_eq!(hv.len(), 24); // 12 + 4 + 8
/// # Ok::<(), imreg_objective::ObjectiveError>(())
/// ```
pub trait Network: Send + Sync {
    /// A short human-readable name.
    fn name(&self) -> String;
    /// The parameters in `state_dict` order; `θ` is their concatenation, each in C order.
    fn parameters(&self) -> Vec<Parameter>;
    /// Features per input row.
    fn input_dim(&self) -> usize;
    /// Outputs per row.
    fn output_dim(&self) -> usize;
    /// Records `f(x; θ)` for the `n × input_dim` node `x`, the leaves being the parameters' leaves
    /// ([`Parameter::leaf_shape`]) in order; returns the `n × output_dim` output node.
    fn forward<T: Tensor>(&self, g: &mut Graph<T>, leaves: &[Var], x: Var) -> imreg_ad::Result<Var>;

    /// Whether the output of a row depends on the other rows (batch norm in training mode). Such a network is
    /// evaluated on the whole batch as one chunk.
    fn couples_examples(&self) -> bool {
        false
    }
    /// The leaf shapes, in order (the default derives them from [`Network::parameters`] by
    /// [`Parameter::leaf_shape`]; a network may hold a parameter in another matrix shape of the same size, such
    /// as a layer norm's `[C, H, W]` scale as one `1 × CHW` row).
    fn leaf_shapes(&self) -> Vec<(usize, usize)> {
        self.parameters().iter().map(Parameter::leaf_shape).collect()
    }
    /// Number of parameters `p`.
    fn n_params(&self) -> usize {
        self.parameters().iter().map(Parameter::len).sum()
    }
    /// An estimate of the activations one example keeps on the tape, in `f64`s (the sum of the layer output
    /// widths), for the memory budget of prepared HVPs. The default counts the input and the output only.
    fn tape_floats_per_example(&self) -> usize {
        self.input_dim() + self.output_dim()
    }
}

/// Memory budget of the recorded tapes of [`Objective::hessian_at`] on a network: 2 GiB, a quarter of an 8 GiB
/// laptop's memory. By the estimate of [`NetworkObjective::hessian_within`], the medium MLP at n = 1024 needs
/// ≈ 43 MB and the benchmark CNN `cnn-cifar` (n = 256) ≈ 0.95 GB, which hold all their tapes. A batch that
/// needs more is prepared in part: `resnet-small` (n = 128: 735 242 activations per example, ≈ 3.0 GB; chunks
/// of one row, ≈ 23.5 MB each) records 91 of its 128 chunks and runs per-call HVPs on the other 37; a full
/// MNIST-sized MLP batch of 60 000 rows (≈ 2.5 GB) or a CNN on a whole dataset likewise records the chunks
/// that fit and streams the rest.
pub const PREPARED_HESSIAN_BYTES: usize = 2 << 30;

/// Working-set bound of one chunk on a network whose rows are heavy ([`NetworkObjective::chunk_size`]): a
/// chunk's tape, by the estimate of [`NetworkObjective::hessian_within`] (four `f64`s per kept activation),
/// holds at most 16 MiB (at least one row). Small chunks keep a layer's activations, cotangents and a
/// convolution's patch matrices in the caches between the layer's passes, instead of streaming them through
/// memory; the chunks' partial sums cost a few `p`-vectors each, which a heavy row (at least `p` activations)
/// dwarfs. Measured on the anchor CNNs and a `cnn-relu` run on MNIST against the former 256 MiB
/// (docs/performance.md, "CNN chunks that fit the caches"): 0.5–0.8× the time for the forward pass, gradient
/// and HVPs; 32 MiB gave the same within noise, 8 MiB (one-row chunks on `cnn-cifar`) was slower there.
/// Allocations stay far below the thresholds of [`crate::reuse_large_buffers`] (blocks above 256 MiB are
/// `mmap`ed, a free heap top above 1 GiB is returned to the OS), so a call's freed buffers are reused by the
/// next chunk. `cnn-relu` on 1,000 MNIST digits (≈ 3.3 MB per row) runs 200 chunks of 5 rows.
pub const HEAVY_CHUNK_BYTES: usize = 16 << 20;

/// Activation memory of one tape of the batched per-example gradients ([`Objective::per_example_grads`]):
/// 4 MiB, so that a tape's activations and a convolution's patch matrices stay in cache. A/B on the anchor
/// CNNs (64 examples): tapes of 2 to 8 examples were the fastest on `cnn-mnist` (≈ 0.5 MB of activations per
/// example; 0.8× the time of one tape per example), while on `resnet-small` (5.9 MB per example) tapes of 4
/// were ≈ 1.1× and tapes of 32 1.7× slower than one per example.
pub(crate) const PER_EXAMPLE_TAPE_BYTES: usize = 4 << 20;

/// Examples per tape of the batched per-example gradients: as many as fit [`PER_EXAMPLE_TAPE_BYTES`] by the
/// network's [`Network::tape_floats_per_example`], between 1 and 8. It depends on the network only, and rows
/// are independent, so it changes no result.
fn per_example_batch(floats_per_example: usize) -> usize {
    let bytes = floats_per_example.saturating_mul(size_of::<f64>()).max(1);
    (PER_EXAMPLE_TAPE_BYTES / bytes).clamp(1, 8)
}

/// The targets of a dataset, one row (or label) per example.
#[derive(Clone, Debug, PartialEq)]
pub enum TargetData {
    /// `N × C` real targets.
    Values(Array2<f64>),
    /// Integer labels.
    Labels(Vec<usize>),
}

/// A scalar functional of a network's outputs on a batch, a mean over the batch like `C_B`: what the
/// gradient-norm penalties differentiate besides the loss itself.
#[derive(Clone, Copy, Debug)]
pub enum OutputFunctional<'a> {
    /// `(1/|B|) Σ_i ℓ(f(x_i), y_i)` with these targets in place of the dataset's (values `|B| × C` for a value
    /// loss; labels for a label loss, or one-hot for a value loss), e.g. labels sampled from the model.
    Loss(Targets<'a>),
    /// `(1/|B|) Σ_i ⟨u_i, f(x_i)⟩`, `u` of shape `|B| × C` (the Jacobian penalties).
    OutputDot(ArrayView2<'a, f64>),
}

/// [`NetworkObjective::input_grad_norm`]: the loss, its gradient, and the input-gradient norm with its
/// parameter gradient.
#[derive(Clone, Debug, PartialEq)]
pub struct InputGradNorm {
    /// `C_B`.
    pub loss: f64,
    /// `∇_θ C_B`.
    pub grad: Vec<f64>,
    /// `‖∇ₓC_B‖²`.
    pub norm2: f64,
    /// `∇_θ ‖∇ₓC_B‖²`.
    pub norm2_grad: Vec<f64>,
}

/// A [`Network`] on a fixed dataset with a [`Loss`]: `ℓ_i(θ) = ℓ(f(x_i; θ), y_i)`, `C_B` = the mean over `B`.
#[derive(Clone, Debug)]
pub struct NetworkObjective<N, L = StandardLoss> {
    net: N,
    loss: L,
    x: Array2<f64>,
    targets: TargetData,
}

fn ad_err(e: imreg_ad::AdError) -> ObjectiveError {
    ObjectiveError::Ad(e.to_string())
}

/// What the scalar output of one chunk's tape is.
enum Head<'a> {
    /// `Σ_{i ∈ chunk} ℓ_i` with these targets.
    Loss(ChunkTargets<'a>),
    /// `Σ_i ⟨f(x_i), u_i⟩` (output VJPs).
    OutputDot(Mat),
}

/// The tape program of one chunk of examples: the rows `rows` of the inputs, gathered when the tape is recorded
/// (as a constant, or as the last leaf when `input_leaf`, for input gradients).
pub(crate) struct Chunk<'a, N, L> {
    obj: &'a NetworkObjective<N, L>,
    rows: &'a [usize],
    head: Head<'a>,
    input_leaf: bool,
}

impl<N: Network, L: Loss> Chunk<'_, N, L> {
    fn head<T: Tensor>(&self, g: &mut Graph<T>, out: Var) -> imreg_ad::Result<Var> {
        match &self.head {
            Head::Loss(y) => self.obj.loss.sum(g, out, y),
            Head::OutputDot(u) => {
                let uc = g.constant(u.clone());
                let prod = g.mul(out, uc)?;
                Ok(g.sum(prod))
            }
        }
    }
}

impl<N: Network, L: Loss> Program for Chunk<'_, N, L> {
    fn leaf_shapes(&self) -> Vec<(usize, usize)> {
        let mut s = self.obj.net.leaf_shapes();
        if self.input_leaf {
            s.push((self.rows.len(), self.obj.x.ncols()));
        }
        s
    }
    fn build<T: Tensor>(&self, g: &mut Graph<T>, leaves: &[Var]) -> imreg_ad::Result<Var> {
        let (x, params) = match (self.input_leaf, leaves.split_last()) {
            (true, Some((&x, params))) => (x, params),
            _ => (g.constant(gather_rows(&self.obj.x, self.rows)), leaves),
        };
        let out = self.obj.net.forward(g, params, x)?;
        self.head(g, out)
    }
}

impl<N: Network, L: Loss> NetworkObjective<N, L> {
    /// The objective of `net` with `loss` on inputs `x` (`N × input_dim`) and `targets` (values `N × C` for a
    /// value loss, labels in `0..k` for a label loss), all validated.
    pub fn new(net: N, loss: L, x: Array2<f64>, targets: TargetData) -> Result<Self> {
        if x.ncols() != net.input_dim() {
            return Err(ObjectiveError::Shape {
                what: "x".into(),
                expected: format!("N × {}", net.input_dim()),
                got: format!("{} × {}", x.nrows(), x.ncols()),
            });
        }
        if x.nrows() == 0 {
            return Err(ObjectiveError::invalid("x", "no examples"));
        }
        check_finite("x", &x.iter().copied().collect::<Vec<_>>())?;
        let c = net.output_dim();
        loss.check_outputs(c)?;
        match (&targets, loss.label_classes(c)) {
            (TargetData::Values(y), None) => {
                if y.dim() != (x.nrows(), c) {
                    return Err(ObjectiveError::Shape {
                        what: "y".into(),
                        expected: format!("{} × {c}", x.nrows()),
                        got: format!("{} × {}", y.nrows(), y.ncols()),
                    });
                }
                check_finite("y", &y.iter().copied().collect::<Vec<_>>())?;
            }
            (TargetData::Labels(labels), Some(classes)) => {
                if labels.len() != x.nrows() {
                    return Err(ObjectiveError::Length {
                        name: "labels",
                        expected: x.nrows(),
                        got: labels.len(),
                    });
                }
                check_labels(labels, classes)?;
            }
            (TargetData::Values(_), Some(_)) => {
                return Err(ObjectiveError::invalid(
                    "targets",
                    format!("{} needs integer labels", loss.name()),
                ))
            }
            (TargetData::Labels(_), None) => {
                return Err(ObjectiveError::invalid(
                    "targets",
                    format!("{} needs value targets", loss.name()),
                ))
            }
        }
        Ok(NetworkObjective {
            net,
            loss,
            x,
            targets,
        })
    }

    /// A regression objective, targets `y` of shape `N × C`.
    pub fn regression(net: N, loss: L, x: Array2<f64>, y: Array2<f64>) -> Result<Self> {
        Self::new(net, loss, x, TargetData::Values(y))
    }

    /// A classifier: with a label loss the labels are used as they are; with a value loss (the squared
    /// losses) the targets are their one-hot vectors (as in Cohen et al.'s MSE experiments).
    pub fn classification(net: N, loss: L, x: Array2<f64>, labels: Vec<usize>) -> Result<Self> {
        let c = net.output_dim();
        if loss.label_classes(c).is_some() {
            return Self::new(net, loss, x, TargetData::Labels(labels));
        }
        check_labels(&labels, c)?;
        let mut y = Array2::zeros((labels.len(), c));
        labels.iter().enumerate().for_each(|(i, &l)| y[(i, l)] = 1.0);
        Self::new(net, loss, x, TargetData::Values(y))
    }

    pub fn network(&self) -> &N {
        &self.net
    }

    pub fn loss_fn(&self) -> &L {
        &self.loss
    }

    /// The inputs, `N × input_dim`.
    pub fn inputs(&self) -> &Array2<f64> {
        &self.x
    }

    pub fn targets(&self) -> &TargetData {
        &self.targets
    }

    /// The targets of the dataset examples `ix`.
    pub(crate) fn chunk_targets<'a>(&self, ix: &[usize], labels: &'a [usize]) -> ChunkTargets<'a> {
        match &self.targets {
            TargetData::Values(y) => ChunkTargets::Values(gather_rows(y, ix)),
            TargetData::Labels(_) => ChunkTargets::Labels(labels),
        }
    }

    pub(crate) fn chunk_labels(&self, ix: &[usize]) -> Vec<usize> {
        match &self.targets {
            TargetData::Labels(l) => ix.iter().map(|&i| l[i]).collect(),
            TargetData::Values(_) => Vec::new(),
        }
    }

    /// The loss program of the dataset examples `ix`.
    fn chunk<'a>(&'a self, ix: &'a [usize], labels: &'a [usize]) -> Chunk<'a, N, L> {
        Chunk {
            obj: self,
            rows: ix,
            head: Head::Loss(self.chunk_targets(ix, labels)),
            input_leaf: false,
        }
    }

    /// Batch positions per tape: the whole batch for a network that couples examples; [`chunk_len`] otherwise,
    /// but for a network whose rows are heavy (a row's tape holds at least as many floats as there are
    /// parameters, as in the CNNs) at most half the batch, and at most what fits [`HEAVY_CHUNK_BYTES`] by the
    /// tape estimate, in equal chunks (`⌈len / ⌈len / fit⌉⌉` rows, `fit` the rows that fit). [`chunk_len`]'s
    /// minimum of 128 rows amortizes the per-chunk work on `p`-vectors (leaf copies, the accumulator), which
    /// such rows dwarf, and would leave a batch of 128 CNN examples on one core; its maximum of 512 rows would
    /// give a CNN chunk gigabytes of tape. It depends on the batch length and the network only, never on the
    /// thread count.
    pub fn chunk_size(&self, len: usize) -> usize {
        if self.net.couples_examples() {
            len
        } else if self.net.tape_floats_per_example() >= self.net.n_params() {
            let half = chunk_len(len).min(len.div_ceil(2));
            let fit = self
                .tape_bytes(1)
                .map_or(1, |row| (HEAVY_CHUNK_BYTES / row.max(1)).max(1));
            if half <= fit {
                half
            } else {
                len.div_ceil(len.div_ceil(fit))
            }
        } else {
            chunk_len(len)
        }
    }

    /// The tape estimate of `rows` examples in bytes: four `f64`s (values, tangents, cotangents and their
    /// tangents) per [`Network::tape_floats_per_example`] per row; `None` on overflow.
    fn tape_bytes(&self, rows: usize) -> Option<usize> {
        rows.checked_mul(self.net.tape_floats_per_example())
            .and_then(|f| f.checked_mul(4 * size_of::<f64>()))
    }

    /// `f(start, ix, s, acc)` summed over the chunks of the batch ([`NetworkObjective::chunk_size`]) into
    /// `(s, out)`, times `scale`, by [`chunked_sum_by`]: chunks in parallel, partial sums added in chunk order.
    fn sum_chunks<F>(&self, batch: Batch<'_>, scale: f64, out: &mut [f64], f: F) -> Result<f64>
    where
        F: Fn(usize, &[usize], &mut f64, &mut [f64]) -> Result<()> + Sync,
    {
        let n = self.n_examples();
        batch.validate(n)?;
        chunked_sum_by(batch, n, self.chunk_size(batch.len(n)), scale, out, f)
    }

    /// Sums `f(chunk program)` over the batch, divides by `|B|`, writes the vector mean into `out` and returns
    /// the scalar mean.
    fn mean_over_batch<F>(&self, batch: Batch<'_>, out: &mut [f64], f: F) -> Result<f64>
    where
        F: Fn(&Chunk<'_, N, L>, &mut f64, &mut [f64]) -> imreg_ad::Result<()> + Sync,
    {
        batch.validate(self.n_examples())?;
        let inv = 1.0 / batch.len(self.n_examples()) as f64;
        self.sum_chunks(batch, inv, out, |_, ix, s, acc| {
            let labels = self.chunk_labels(ix);
            f(&self.chunk(ix, &labels), s, acc).map_err(ad_err)
        })
    }

    /// `θ` (and a direction) checked once per call and shared by every chunk.
    fn point<'t>(&self, theta: &'t [f64], v: Option<&'t [f64]>) -> Result<imreg_ad::Point<'t>> {
        // Lengths first, so bad input surfaces as the objective's typed errors; `Point` checks finiteness.
        check_len("theta", theta, self.dim())?;
        if let Some(v) = v {
            check_len("v", v, self.dim())?;
        }
        let shapes = self.net.leaf_shapes();
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

    /// How [`NetworkObjective::hessian_within`] splits a batch of `len` examples under a memory budget of
    /// `budget_bytes` for the recorded tapes: the chunks of the other calls
    /// ([`NetworkObjective::chunk_size`]), the first of which are prepared as long as their tape estimates
    /// (four `f64`s per [`Network::tape_floats_per_example`] per row) sum to at most the budget.
    pub fn tape_plan(&self, len: usize, budget_bytes: usize) -> TapePlan {
        let chunk = self.chunk_size(len).max(1);
        let chunks = len.div_ceil(chunk);
        let mut plan = TapePlan {
            chunk,
            chunks,
            prepared: 0,
            prepared_bytes: 0,
        };
        for c in 0..chunks {
            let rows = chunk.min(len - c * chunk);
            let total = self
                .tape_bytes(rows)
                .and_then(|b| b.checked_add(plan.prepared_bytes));
            match total {
                Some(t) if t <= budget_bytes => {
                    plan.prepared += 1;
                    plan.prepared_bytes = t;
                }
                _ => break,
            }
        }
        plan
    }

    /// [`Objective::hessian_at`] with a memory budget for the recorded tapes: the chunks of
    /// [`NetworkObjective::tape_plan`] that fit are recorded once at `θ` ([`imreg_ad::linearize`]), the
    /// others run a per-call HVP ([`imreg_ad::hvp_acc`]) on every product. Both kinds are summed in chunk
    /// order, as [`Objective::hvp`] sums them, so the products are bitwise identical at any thread count; with
    /// no chunk prepared they are [`Objective::hvp`]'s.
    pub fn hessian_within<'a>(&'a self, at: At<'a>, budget_bytes: usize) -> Result<Box<dyn HessianAt + 'a>> {
        // `At` may have been checked against another objective's sizes: check it against this one's.
        let at = self.validate_call(at.theta, at.batch)?;
        let At { theta, batch } = at;
        let len = batch.len(self.n_examples());
        let plan = self.tape_plan(len, budget_bytes);
        if plan.prepared == 0 {
            return Ok(streamed_hessian(self, at));
        }
        let point = self.point(theta, None)?;
        let chunk = plan.chunk;
        let record = |c: usize| -> Result<Mutex<Linearized>> {
            let ix = batch.slice(c * chunk, ((c + 1) * chunk).min(len));
            let labels = self.chunk_labels(&ix);
            let lin = imreg_ad::linearize(&self.chunk(&ix, &labels), &point).map_err(ad_err)?;
            Ok(Mutex::new(lin))
        };
        let tapes = if plan.prepared <= 1 {
            vec![record(0)?]
        } else {
            (0..plan.prepared)
                .into_par_iter()
                .map(record)
                .collect::<Result<_>>()?
        };
        Ok(Box::new(PreparedHessian {
            obj: self,
            at,
            chunk,
            tapes,
        }))
    }

    /// The model outputs `f(x_i; θ)` of the batch, `|B| × C`.
    pub fn outputs(&self, theta: &[f64], batch: Batch<'_>) -> Result<Array2<f64>> {
        At::checked(theta, self.dim(), batch, self.n_examples())?;
        let params = imreg_ad::unflatten(theta, &self.net.leaf_shapes()).map_err(ad_err)?;
        let len = batch.len(self.n_examples());
        let chunk = self.chunk_size(len);
        let parts: Vec<Result<Mat>> = (0..len.div_ceil(chunk))
            .into_par_iter()
            .map(|c| {
                let ix = batch.slice(c * chunk, ((c + 1) * chunk).min(len));
                let mut g = Graph::<Mat>::new();
                let leaves: Vec<Var> = params.iter().map(|p| g.constant(p.clone())).collect();
                let x = g.constant(gather_rows(&self.x, &ix));
                let out = self.net.forward(&mut g, &leaves, x).map_err(ad_err)?;
                Ok(g.value(out).clone())
            })
            .collect();
        let parts = parts.into_iter().collect::<Result<Vec<_>>>()?;
        let views: Vec<ArrayView2<'_, f64>> = parts.iter().map(|m| m.view()).collect();
        ndarray::concatenate(ndarray::Axis(0), &views)
            .map_err(|e| ObjectiveError::invalid("outputs", e.to_string()))
    }

    /// Mean loss and its gradient on the batch with the given targets in place of the dataset's (values
    /// `|B| × C` for a value loss; labels for a label loss, or one-hot for a value loss).
    pub fn loss_grad_with_targets(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        targets: Targets<'_>,
        grad: &mut [f64],
    ) -> Result<f64> {
        self.functional_grad_into(theta, batch, OutputFunctional::Loss(targets), grad)
    }

    /// Validates a functional against the batch length; returns the loss's label classes (`None` for a value
    /// loss, or for the output dot).
    fn check_functional(&self, f: OutputFunctional<'_>, len: usize) -> Result<Option<usize>> {
        let c = self.net.output_dim();
        let classes = self.loss.label_classes(c);
        match (f, classes) {
            (OutputFunctional::OutputDot(u), _) => check_finite_rows("u", "", u, (len, c))?,
            (OutputFunctional::Loss(Targets::Values(v)), None) => {
                check_finite_rows("targets", " values", v, (len, c))?
            }
            (OutputFunctional::Loss(Targets::Values(v)), Some(_)) => {
                return Err(ObjectiveError::Shape {
                    what: "targets".into(),
                    expected: format!("{len} labels for {}", self.loss.name()),
                    got: format!("{} × {} values", v.nrows(), v.ncols()),
                })
            }
            (OutputFunctional::Loss(Targets::Labels(l)), k) => {
                if l.len() != len {
                    return Err(ObjectiveError::Length {
                        name: "labels",
                        expected: len,
                        got: l.len(),
                    });
                }
                check_labels(l, k.unwrap_or(c))?;
            }
        }
        Ok(classes)
    }

    /// The program of `f` on the chunk of dataset examples `ix` at batch positions `start..start + ix.len()`.
    fn functional_chunk<'a, 'f: 'a>(
        &'a self,
        f: OutputFunctional<'f>,
        classes: Option<usize>,
        start: usize,
        ix: &'a [usize],
    ) -> Chunk<'a, N, L> {
        let rows = start..start + ix.len();
        let head = match (f, classes) {
            (OutputFunctional::OutputDot(u), _) => Head::OutputDot(u.slice(ndarray::s![rows, ..]).to_owned()),
            (OutputFunctional::Loss(Targets::Values(v)), _) => {
                Head::Loss(ChunkTargets::Values(v.slice(ndarray::s![rows, ..]).to_owned()))
            }
            (OutputFunctional::Loss(Targets::Labels(l)), Some(_)) => {
                Head::Loss(ChunkTargets::Labels(&l[rows]))
            }
            (OutputFunctional::Loss(Targets::Labels(l)), None) => {
                let mut y = Mat::zeros((ix.len(), self.net.output_dim()));
                l[rows].iter().enumerate().for_each(|(i, &k)| y[(i, k)] = 1.0);
                Head::Loss(ChunkTargets::Values(y))
            }
        };
        Chunk {
            obj: self,
            rows: ix,
            head,
            input_leaf: false,
        }
    }

    /// Writes `∇φ` into `grad` and returns `φ` for the functional `f` on the batch.
    fn functional_grad_into(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        f: OutputFunctional<'_>,
        grad: &mut [f64],
    ) -> Result<f64> {
        let n = self.n_examples();
        let len = batch.len(n);
        let classes = self.check_functional(f, len)?;
        check_len("grad", grad, self.dim())?;
        At::checked(theta, self.dim(), batch, n)?;
        let at = self.point(theta, None)?;
        self.sum_chunks(batch, 1.0 / len as f64, grad, |start, ix, s, acc| {
            let ch = self.functional_chunk(f, classes, start, ix);
            *s += imreg_ad::grad_acc(&ch, &at, acc).map_err(ad_err)?;
            Ok(())
        })
    }

    /// `(φ, ∇φ)` for a functional of the outputs on the batch (see [`OutputFunctional`]).
    pub fn functional_grad(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        f: OutputFunctional<'_>,
    ) -> Result<(f64, Vec<f64>)> {
        let mut g = vec![0.0; self.dim()];
        let phi = self.functional_grad_into(theta, batch, f, &mut g)?;
        Ok((phi, g))
    }

    /// `(φ, ∇φ, ∇²φ ∇φ)` for a functional of the outputs on the batch: the value, gradient and gradient of
    /// `½‖∇φ‖²` (so `∇‖∇φ‖² = 2 ∇²φ ∇φ`, the gradient-norm penalties), by one reverse pass and one
    /// forward-over-reverse pass per chunk.
    pub fn functional_self_hvp(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        f: OutputFunctional<'_>,
    ) -> Result<(f64, Vec<f64>, Vec<f64>)> {
        let (phi, g) = self.functional_grad(theta, batch, f)?;
        let n = self.n_examples();
        let len = batch.len(n);
        let classes = self.check_functional(f, len)?;
        let at = self.point(theta, Some(&g))?;
        let mut hg = vec![0.0; self.dim()];
        self.sum_chunks(batch, 1.0 / len as f64, &mut hg, |start, ix, _, acc| {
            let ch = self.functional_chunk(f, classes, start, ix);
            imreg_ad::hvp_acc(&ch, &at, acc).map_err(ad_err)
        })?;
        Ok((phi, g, hg))
    }

    /// `f(program, point)` for the loss program of the dataset examples `ix` with their inputs as the last
    /// leaf, at the point `(θ, x_ix)`.
    fn with_input_leaf<T>(
        &self,
        theta: &[f64],
        ix: &[usize],
        f: impl FnOnce(&Chunk<'_, N, L>, &[f64]) -> imreg_ad::Result<T>,
    ) -> Result<T> {
        let labels = self.chunk_labels(ix);
        let ch = Chunk {
            input_leaf: true,
            ..self.chunk(ix, &labels)
        };
        let mut flat = theta.to_vec();
        flat.extend(gather_rows(&self.x, ix).iter());
        f(&ch, &flat).map_err(ad_err)
    }

    /// The squared norm of the input gradients `‖∇ₓC_B‖²` (Frobenius, over every input of the batch, see
    /// [`NetworkObjective::input_grads`]) and its exact parameter gradient
    /// `∇_θ‖∇ₓC_B‖² = 2 (∂²C_B/∂θ∂x) ∇ₓC_B`, with `C_B` and `∇_θC_B` on the way. Per chunk of the batch, `x` is
    /// a leaf of the tape: one reverse pass gives `(∇_θ, ∇ₓ)` of the chunk's loss sum `S`, one
    /// forward-over-reverse pass along `(0, ∇ₓS)` gives the mixed block, whose `θ` part is `(∂²S/∂θ∂x) ∇ₓS`.
    pub fn input_grad_norm(&self, theta: &[f64], batch: Batch<'_>) -> Result<InputGradNorm> {
        let n = self.n_examples();
        At::checked(theta, self.dim(), batch, n)?;
        let len = batch.len(n);
        let p = self.dim();
        let chunk = self.chunk_size(len);
        type Part = (f64, Vec<f64>, f64, Vec<f64>);
        let run = |c: usize| -> Result<Part> {
            let ix = batch.slice(c * chunk, ((c + 1) * chunk).min(len));
            self.with_input_leaf(theta, &ix, |ch, flat| {
                let (s, mut g) = imreg_ad::grad(ch, flat)?;
                let gx2 = g[p..].iter().map(|v| v * v).sum::<f64>();
                let mut dir = g.split_off(p);
                dir.splice(0..0, std::iter::repeat_n(0.0, p));
                let mut hv = imreg_ad::hvp(ch, flat, &dir)?;
                hv.truncate(p);
                Ok((s, g, gx2, hv))
            })
        };
        let chunks = len.div_ceil(chunk);
        let parts: Vec<Part> = if chunks <= 1 {
            vec![run(0)?]
        } else {
            (0..chunks).into_par_iter().map(run).collect::<Result<_>>()?
        };
        let inv = 1.0 / len as f64;
        let mut out = InputGradNorm {
            loss: 0.0,
            grad: vec![0.0; p],
            norm2: 0.0,
            norm2_grad: vec![0.0; p],
        };
        for (s, g, gx2, hv) in parts {
            out.loss += s;
            axpy(1.0, &g, &mut out.grad);
            out.norm2 += gx2;
            axpy(1.0, &hv, &mut out.norm2_grad);
        }
        out.loss *= inv;
        out.grad.iter_mut().for_each(|v| *v *= inv);
        out.norm2 *= inv * inv;
        out.norm2_grad.iter_mut().for_each(|v| *v *= 2.0 * inv * inv);
        Ok(out)
    }

    /// Output Jacobian-vector product `J v`, `|B| × C`, with `J = ∂f(x_i; θ)/∂θ` stacked over the batch (one
    /// forward pass on dual values over the whole batch).
    pub fn output_jvp(&self, theta: &[f64], batch: Batch<'_>, v: &[f64]) -> Result<Array2<f64>> {
        At::checked(theta, self.dim(), batch, self.n_examples())?;
        check_direction("v", v, self.dim())?;
        let shapes = self.net.leaf_shapes();
        let ps = imreg_ad::unflatten(theta, &shapes).map_err(ad_err)?;
        let ts = imreg_ad::unflatten(v, &shapes).map_err(ad_err)?;
        let ix = batch.slice(0, batch.len(self.n_examples()));
        let mut g = Graph::<Dual<Mat>>::new();
        let leaves: Vec<Var> = ps
            .into_iter()
            .zip(ts)
            .map(|(p, t)| g.leaf(Dual::new(p, Some(t))))
            .collect();
        let x = g.constant(gather_rows(&self.x, &ix));
        let out = self.net.forward(&mut g, &leaves, x).map_err(ad_err)?;
        Ok(g.value(out).tangent_or_zero())
    }

    /// Output vector-Jacobian product `Jᵀ U = Σ_i J_iᵀ u_i` (a sum, not a mean), written into `out`.
    pub fn output_vjp(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        u: ArrayView2<'_, f64>,
        out: &mut [f64],
    ) -> Result<()> {
        let n = self.n_examples();
        let len = batch.len(n);
        let c = self.net.output_dim();
        if u.dim() != (len, c) {
            return Err(ObjectiveError::Shape {
                what: "u".into(),
                expected: format!("{len} × {c}"),
                got: format!("{} × {}", u.nrows(), u.ncols()),
            });
        }
        check_len("out", out, self.dim())?;
        At::checked(theta, self.dim(), batch, n)?;
        let at = self.point(theta, None)?;
        self.sum_chunks(batch, 1.0, out, |start, ix, _, acc| {
            let ch = Chunk {
                obj: self,
                rows: ix,
                head: Head::OutputDot(u.slice(ndarray::s![start..start + ix.len(), ..]).to_owned()),
                input_leaf: false,
            };
            imreg_ad::grad_acc(&ch, &at, acc).map_err(ad_err)?;
            Ok(())
        })?;
        Ok(())
    }

    /// The input gradients `∇ₓC_B(θ)`: row `k` is `∂C_B/∂x_{B_k}`, the gradient of the batch's mean loss with
    /// respect to the input of batch position `k` (`|B| × input_dim`; without coupling `(1/|B|) ∇ₓℓ_{B_k}`). The
    /// input-gradient penalty GP_x is `‖∇ₓC_B‖²` (Frobenius).
    pub fn input_grads(&self, theta: &[f64], batch: Batch<'_>) -> Result<Array2<f64>> {
        let n = self.n_examples();
        At::checked(theta, self.dim(), batch, n)?;
        let len = batch.len(n);
        let d = self.x.ncols();
        let p = self.dim();
        let chunk = self.chunk_size(len);
        let inv = 1.0 / len as f64;
        let parts: Vec<Result<Vec<f64>>> = (0..len.div_ceil(chunk))
            .into_par_iter()
            .map(|c| {
                let ix = batch.slice(c * chunk, ((c + 1) * chunk).min(len));
                self.with_input_leaf(theta, &ix, |ch, flat| {
                    let (_, g) = imreg_ad::grad(ch, flat)?;
                    Ok(g[p..].iter().map(|v| v * inv).collect())
                })
            })
            .collect();
        let mut out = Vec::with_capacity(len * d);
        for part in parts {
            out.extend(part?);
        }
        Array2::from_shape_vec((len, d), out)
            .map_err(|e| ObjectiveError::invalid("input gradients", e.to_string()))
    }

    /// Per-example gradients of a network that couples examples: one tape over the whole batch, the per-example
    /// losses `ℓ_k` as an `n × 1` node, and one reverse pass per batch position from `ℓ_k`.
    fn coupled_per_example_grads(&self, at: At<'_>, chunk: usize, sink: &mut RowSink<'_>) -> Result<()> {
        let At { theta, batch } = at;
        let n = self.n_examples();
        let len = batch.len(n);
        let p = self.dim();
        let ix = batch.slice(0, len);
        let labels = self.chunk_labels(&ix);
        let y = self.chunk_targets(&ix, &labels);
        let params = imreg_ad::unflatten(theta, &self.net.leaf_shapes()).map_err(ad_err)?;
        let mut g = Graph::<Mat>::new();
        let leaves: Vec<Var> = params.into_iter().map(|m| g.leaf(m)).collect();
        let x = g.constant(gather_rows(&self.x, &ix));
        let out = self.net.forward(&mut g, &leaves, x).map_err(ad_err)?;
        let losses = self.loss.per_example(&mut g, out, &y).map_err(ad_err)?;
        let chunk = per_example_block_rows(chunk, len, p)?;
        stream_rows(len, p, chunk, sink, |k, row| {
            let e = g.constant(Mat::from_shape_fn((len, 1), |(i, _)| f64::from(u8::from(i == k))));
            let picked = g.mul(losses, e).map_err(ad_err)?;
            let lk = g.sum(picked);
            let grads = g.backward(lk).map_err(ad_err)?;
            imreg_ad::flatten_into(&grads, row);
            Ok(())
        })
    }
}

/// Errors unless `m` has the shape `dim` (named `what`, the expected shape followed by `unit`) and is finite.
fn check_finite_rows(what: &str, unit: &str, m: ArrayView2<'_, f64>, dim: (usize, usize)) -> Result<()> {
    if m.dim() != dim {
        return Err(ObjectiveError::Shape {
            what: what.into(),
            expected: format!("{} × {}{unit}", dim.0, dim.1),
            got: format!("{} × {}", m.nrows(), m.ncols()),
        });
    }
    check_finite(what, &m.iter().copied().collect::<Vec<_>>())
}

/// Errors on the first label `≥ classes`.
fn check_labels(labels: &[usize], classes: usize) -> Result<()> {
    match labels.iter().enumerate().find(|(_, &l)| l >= classes) {
        Some((index, &label)) => Err(ObjectiveError::LabelOutOfRange {
            index,
            label: label as i64,
            classes,
        }),
        None => Ok(()),
    }
}

/// How [`NetworkObjective::hessian_within`] splits a batch: `chunks` chunks of `chunk` batch positions (the
/// last one possibly shorter), the first `prepared` of them recorded, whose tapes hold `prepared_bytes` by the
/// estimate (at most the budget).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TapePlan {
    pub chunk: usize,
    pub chunks: usize,
    pub prepared: usize,
    pub prepared_bytes: usize,
}

/// [`NetworkObjective::hessian_within`]: one recorded tape for each of the first `tapes.len()` chunks of the
/// batch, a per-call HVP for the others (the chunks of the other calls, so the HVPs are reduced exactly as
/// [`Objective::hvp`]'s are and stay bitwise identical at any thread count).
struct PreparedHessian<'a, N, L> {
    obj: &'a NetworkObjective<N, L>,
    at: At<'a>,
    chunk: usize,
    tapes: Vec<Mutex<Linearized>>,
}

impl<N: Network, L: Loss> HessianAt for PreparedHessian<'_, N, L> {
    fn hvp(&self, v: &[f64], out: &mut [f64]) -> Result<()> {
        let p = self.obj.dim();
        check_direction("v", v, p)?;
        check_len("out", out, p)?;
        let At { theta, batch } = self.at;
        let inv = 1.0 / batch.len(self.obj.n_examples()) as f64;
        self.obj.sum_chunks(batch, inv, out, |start, ix, _, acc| {
            match self.tapes.get(start / self.chunk) {
                Some(tape) => {
                    // A chunk's tape is used by one task at a time; a poisoned lock only means an earlier
                    // call panicked mid-replay, and every replay overwrites all tangents.
                    let mut tape = tape.lock().unwrap_or_else(|e| e.into_inner());
                    tape.hvp_acc(v, acc).map_err(ad_err)
                }
                None => {
                    // A chunk past the tapes: its point (an O(p) check of `θ` and `v`, next to the chunk's
                    // whole HVP) is built here, so a fully prepared Hessian spends nothing on it.
                    let streamed = self.obj.point(theta, Some(v))?;
                    let labels = self.obj.chunk_labels(ix);
                    imreg_ad::hvp_acc(&self.obj.chunk(ix, &labels), &streamed, acc).map_err(ad_err)
                }
            }
        })?;
        Ok(())
    }
}

impl<N: Network, L: Loss> Objective for NetworkObjective<N, L> {
    fn name(&self) -> String {
        format!("{} ({})", self.net.name(), self.loss.name())
    }

    fn dim(&self) -> usize {
        self.net.n_params()
    }

    fn n_examples(&self) -> usize {
        self.x.nrows()
    }

    fn loss_at(&self, at: At<'_>) -> Result<f64> {
        let At { theta, batch } = at;
        let at = self.point(theta, None)?;
        self.mean_over_batch(batch, &mut [], |c, s, _| {
            *s += imreg_ad::value_at(c, &at)?;
            Ok(())
        })
    }

    fn loss_grad_at(&self, at: At<'_>, grad: &mut [f64]) -> Result<f64> {
        let At { theta, batch } = at;
        let at = self.point(theta, None)?;
        self.mean_over_batch(batch, grad, |c, s, acc| {
            *s += imreg_ad::grad_acc(c, &at, acc)?;
            Ok(())
        })
    }

    fn hvp_at(&self, at: At<'_>, v: &[f64], out: &mut [f64]) -> Result<()> {
        let At { theta, batch } = at;
        let at = self.point(theta, Some(v))?;
        self.mean_over_batch(batch, out, |c, _, acc| imreg_ad::hvp_acc(c, &at, acc))?;
        Ok(())
    }

    /// Records the chunks' tapes once at `θ` ([`imreg_ad::linearize`]), as many as fit
    /// [`PREPARED_HESSIAN_BYTES`]; each HVP then runs the tangent halves only on those, and a per-call HVP on
    /// the others ([`NetworkObjective::hessian_within`]).
    fn prepared_hessian_at<'a>(&'a self, at: At<'a>) -> Result<Box<dyn HessianAt + 'a>> {
        self.hessian_within(at, PREPARED_HESSIAN_BYTES)
    }

    fn third_order_at(&self, at: At<'_>, u: &[f64], v: &[f64], out: &mut [f64]) -> Result<()> {
        let At { theta, batch } = at;
        self.mean_over_batch(batch, out, |c, _, acc| {
            axpy(1.0, &imreg_ad::third_order(c, theta, u, v)?, acc);
            Ok(())
        })?;
        Ok(())
    }

    /// Batched per-example reverse mode ([`imreg_ad::per_example_grads_acc`] into the driver's rows when they
    /// arrive zeroed, else [`imreg_ad::per_example_grads_into`]):
    /// per task of rows, one forward and one reverse pass over its examples, the layers that read parameters
    /// forming each example's parameter cotangents (`W̄_i = g_iᵀ a_i` for a linear layer, `W̄_i = G_i P_iᵀ`
    /// over example `i`'s positions for a convolution) straight into its row. A network with a primitive that
    /// has no per-example rule (probed once on a one-example tape) runs one tape per example instead. For a
    /// network that couples examples, the rows of the Jacobian of the per-example losses on the whole batch
    /// (see the module doc).
    fn per_example_grads_at(&self, at: At<'_>, chunk: usize, sink: &mut RowSink<'_>) -> Result<()> {
        let At { theta, batch } = at;
        if self.net.couples_examples() {
            return self.coupled_per_example_grads(at, chunk, sink);
        }
        let at = self.point(theta, None)?;
        let first = [batch.index(0)];
        let labels = self.chunk_labels(&first);
        let batched =
            imreg_ad::per_example_supported(&self.chunk(&first, &labels), &at, 1).map_err(ad_err)?;
        let tape_len = per_example_batch(self.net.tape_floats_per_example());
        let fill = |ix: &[usize], mut rows: ndarray::ArrayViewMut2<'_, f64>, zeroed: bool| -> Result<()> {
            if batched {
                let mut all = true;
                for (k, part) in ix.chunks(tape_len).enumerate() {
                    let labels = self.chunk_labels(part);
                    let start = k * tape_len;
                    let rows = rows.slice_mut(ndarray::s![start..start + part.len(), ..]);
                    let program = self.chunk(part, &labels);
                    let done = if zeroed {
                        imreg_ad::per_example_grads_acc(&program, &at, rows)
                    } else {
                        imreg_ad::per_example_grads_into(&program, &at, rows)
                    }
                    .map_err(ad_err)?;
                    all &= done.is_some();
                }
                if all {
                    return Ok(());
                }
            }
            for (k, mut row) in rows.rows_mut().into_iter().enumerate() {
                let row = row
                    .as_slice_mut()
                    .ok_or_else(|| ObjectiveError::invalid("buffer", "not contiguous"))?;
                // A part the batched pass did take has added into its rows.
                row.fill(0.0);
                let one = &ix[k..k + 1];
                let labels = self.chunk_labels(one);
                imreg_ad::grad_acc(&self.chunk(one, &labels), &at, row).map_err(ad_err)?;
            }
            Ok(())
        };
        per_example_driver(batch, self.n_examples(), self.dim(), chunk, fill, sink)
    }
}
