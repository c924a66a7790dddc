//! The tape: a graph of tensor operations recorded in evaluation order, differentiated in reverse.
use crate::dual::{
    add_opt, add_row_tangent, difference_tangent, elementwise_product_tangent, linear_tangent,
    log_softmax_tangent, product_tangent, scalar_product_tangent, sum_tangent, Dual,
};
use crate::error::{AdError, Result};
use crate::primitive::DynPrimitive;
use crate::tensor::unary_backward_tangent;
pub use crate::tensor::Unary;
use crate::tensor::{Mat, Tensor};
use ndarray::ArrayViewMut2;
use std::sync::Arc;

/// A node of the tape (an index; cheap to copy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Var(pub(crate) usize);

enum Op<T: Tensor> {
    Leaf,
    Constant,
    MatMul {
        a: usize,
        ta: bool,
        b: usize,
        tb: bool,
    },
    /// `x Wᵀ + 1 bᵀ` (the bias optional).
    Linear {
        x: usize,
        w: usize,
        b: Option<usize>,
    },
    AddRow {
        a: usize,
        b: usize,
    },
    Add {
        a: usize,
        b: usize,
    },
    Sub {
        a: usize,
        b: usize,
    },
    Mul {
        a: usize,
        b: usize,
    },
    Affine {
        a: usize,
        alpha: f64,
    },
    Unary {
        a: usize,
        f: Unary,
    },
    SumRows {
        a: usize,
    },
    SumCols {
        a: usize,
    },
    SumAll {
        a: usize,
    },
    MulScalar {
        a: usize,
        s: usize,
    },
    LogSoftmax {
        a: usize,
    },
    Pick {
        a: usize,
        onehot: Arc<Mat>,
    },
    /// `(c/n) Σ_i ‖pred_i − y_i‖²`; aux holds `pred − y`.
    Mse {
        pred: usize,
        scale: f64,
    },
    /// `−(1/n) Σ_i log softmax(z_i)_{y_i}`; aux holds the log-softmax.
    SoftmaxCe {
        logits: usize,
        onehot: Arc<Mat>,
    },
    /// A [`Primitive`](crate::Primitive): its rules live in its own `impl`.
    Custom(Box<Custom<T>>),
}

/// A recorded primitive and the nodes it was applied to.
struct Custom<T: Tensor> {
    inputs: Vec<usize>,
    prim: Arc<dyn DynPrimitive<T>>,
}

struct Node<T: Tensor> {
    value: T,
    aux: Option<T>,
    op: Op<T>,
    needs_grad: bool,
}

/// A recorded computation on tensors of type `T` ([`Mat`], or [`Dual`] for forward-over-reverse).
pub struct Graph<T: Tensor> {
    nodes: Vec<Node<T>>,
    leaves: Vec<usize>,
}

impl<T: Tensor> Default for Graph<T> {
    fn default() -> Self {
        Self::new()
    }
}

fn shape_err(op: &'static str, detail: String) -> AdError {
    AdError::Shape { op, detail }
}

fn onehot(labels: &[usize], rows: usize, classes: usize) -> Result<Mat> {
    if labels.len() != rows {
        return Err(AdError::Length {
            what: "labels",
            expected: rows,
            got: labels.len(),
        });
    }
    let mut m = Mat::zeros((rows, classes));
    for (row, &label) in labels.iter().enumerate() {
        if label >= classes {
            return Err(AdError::Label { row, label, classes });
        }
        m[(row, label)] = 1.0;
    }
    Ok(m)
}

impl<T: Tensor> Graph<T> {
    pub fn new() -> Self {
        // Room for a small network's tape up front (a 3-layer MLP's loss is ~20 nodes), so recording does
        // not regrow and copy the node list.
        Graph {
            nodes: Vec::with_capacity(32),
            leaves: Vec::new(),
        }
    }

    fn push(&mut self, value: T, aux: Option<T>, op: Op<T>, inputs: &[usize]) -> Var {
        let needs_grad = match op {
            Op::Leaf => true,
            Op::Constant => false,
            _ => inputs.iter().any(|&i| self.nodes[i].needs_grad),
        };
        self.nodes.push(Node {
            value,
            aux,
            op,
            needs_grad,
        });
        Var(self.nodes.len() - 1)
    }

    /// Records a primitive's node (see [`Graph::apply`]).
    pub(crate) fn push_custom(&mut self, value: T, prim: Arc<dyn DynPrimitive<T>>, inputs: &[Var]) -> Var {
        let inputs: Vec<usize> = inputs.iter().map(|v| v.0).collect();
        let needs = inputs.clone();
        self.push(value, None, Op::Custom(Box::new(Custom { inputs, prim })), &needs)
    }

    /// A differentiable input. Leaves are numbered in creation order; gradients come back in that order.
    pub fn leaf(&mut self, value: T) -> Var {
        let v = self.push(value, None, Op::Leaf, &[]);
        self.leaves.push(v.0);
        v
    }

    /// A constant (data, targets): never differentiated.
    pub fn constant(&mut self, value: Mat) -> Var {
        self.push(T::constant(value), None, Op::Constant, &[])
    }

    /// The value of a node.
    pub fn value(&self, v: Var) -> &T {
        &self.nodes[v.0].value
    }

    /// `(rows, cols)` of a node.
    pub fn shape(&self, v: Var) -> (usize, usize) {
        self.nodes[v.0].value.shape()
    }

    /// Number of differentiable leaves.
    pub fn n_leaves(&self) -> usize {
        self.leaves.len()
    }

    /// `op(a) · op(b)`.
    pub fn matmul_t(&mut self, a: Var, ta: bool, b: Var, tb: bool) -> Result<Var> {
        let (ar, ac) = self.shape(a);
        let (br, bc) = self.shape(b);
        let (_, k1) = if ta { (ac, ar) } else { (ar, ac) };
        let (k2, _) = if tb { (bc, br) } else { (br, bc) };
        if k1 != k2 {
            return Err(shape_err(
                "matmul",
                format!("{ar}×{ac} (t={ta}) · {br}×{bc} (t={tb})"),
            ));
        }
        let value = T::matmul(self.value(a), ta, self.value(b), tb);
        Ok(self.push(
            value,
            None,
            Op::MatMul {
                a: a.0,
                ta,
                b: b.0,
                tb,
            },
            &[a.0, b.0],
        ))
    }

    /// `a · b`.
    pub fn matmul(&mut self, a: Var, b: Var) -> Result<Var> {
        self.matmul_t(a, false, b, false)
    }

    /// PyTorch's `nn.Linear`: `x Wᵀ + b` with `W` of shape `[out, in]` and `b` of shape `[1, out]`.
    /// One tape node ([`Tensor::linear`] writes the bias into the product's output buffer).
    pub fn linear(&mut self, x: Var, w: Var, b: Option<Var>) -> Result<Var> {
        let ((xr, xc), (wr, wc)) = (self.shape(x), self.shape(w));
        if xc != wc {
            return Err(shape_err(
                "linear",
                format!("input {xr}×{xc} · weight [out, in] = {wr}×{wc}"),
            ));
        }
        if let Some(b) = b {
            let (br, bc) = self.shape(b);
            if (br, bc) != (1, wr) {
                return Err(shape_err(
                    "linear",
                    format!("bias of shape {br}×{bc} for {wr} outputs"),
                ));
            }
        }
        let value = T::linear(self.value(x), self.value(w), b.map(|b| self.value(b)));
        let op = Op::Linear {
            x: x.0,
            w: w.0,
            b: b.map(|b| b.0),
        };
        Ok(match b {
            Some(b) => self.push(value, None, op, &[x.0, w.0, b.0]),
            None => self.push(value, None, op, &[x.0, w.0]),
        })
    }

    /// `a + 1 bᵀ` for a `1 × c` row `b` (bias add).
    pub fn add_row(&mut self, a: Var, b: Var) -> Result<Var> {
        let (_, ac) = self.shape(a);
        let (br, bc) = self.shape(b);
        if br != 1 || bc != ac {
            return Err(shape_err(
                "add_row",
                format!("row of shape {br}×{bc} added to {ac} columns"),
            ));
        }
        let value = self.value(a).add_row(self.value(b));
        Ok(self.push(value, None, Op::AddRow { a: a.0, b: b.0 }, &[a.0, b.0]))
    }

    fn same_shape(&self, op: &'static str, a: Var, b: Var) -> Result<()> {
        if self.shape(a) != self.shape(b) {
            return Err(shape_err(
                op,
                format!("{:?} vs {:?}", self.shape(a), self.shape(b)),
            ));
        }
        Ok(())
    }

    pub fn add(&mut self, a: Var, b: Var) -> Result<Var> {
        self.same_shape("add", a, b)?;
        let value = self.value(a).add(self.value(b));
        Ok(self.push(value, None, Op::Add { a: a.0, b: b.0 }, &[a.0, b.0]))
    }

    pub fn sub(&mut self, a: Var, b: Var) -> Result<Var> {
        self.same_shape("sub", a, b)?;
        let value = self.value(a).sub(self.value(b));
        Ok(self.push(value, None, Op::Sub { a: a.0, b: b.0 }, &[a.0, b.0]))
    }

    /// Elementwise product.
    pub fn mul(&mut self, a: Var, b: Var) -> Result<Var> {
        self.same_shape("mul", a, b)?;
        let value = self.value(a).mul(self.value(b));
        Ok(self.push(value, None, Op::Mul { a: a.0, b: b.0 }, &[a.0, b.0]))
    }

    /// `α a + β`.
    pub fn affine(&mut self, a: Var, alpha: f64, beta: f64) -> Var {
        let value = self.value(a).affine(alpha, beta);
        self.push(value, None, Op::Affine { a: a.0, alpha }, &[a.0])
    }

    /// `s a` for a scalar `s`.
    pub fn scale(&mut self, a: Var, s: f64) -> Var {
        self.affine(a, s, 0.0)
    }

    /// `a ⊙ s` for a `1 × 1` node `s`.
    pub fn mul_scalar(&mut self, a: Var, s: Var) -> Result<Var> {
        if self.shape(s) != (1, 1) {
            return Err(shape_err(
                "mul_scalar",
                format!("scalar factor has shape {:?}", self.shape(s)),
            ));
        }
        let value = self.value(a).mul_scalar(self.value(s));
        Ok(self.push(value, None, Op::MulScalar { a: a.0, s: s.0 }, &[a.0, s.0]))
    }

    /// An elementwise function.
    pub fn unary(&mut self, a: Var, f: Unary) -> Var {
        let value = self.value(a).unary(f);
        self.push(value, None, Op::Unary { a: a.0, f }, &[a.0])
    }

    pub fn tanh(&mut self, a: Var) -> Var {
        self.unary(a, Unary::Tanh)
    }
    pub fn relu(&mut self, a: Var) -> Var {
        self.unary(a, Unary::Relu)
    }
    pub fn softplus(&mut self, a: Var) -> Var {
        self.unary(a, Unary::Softplus)
    }
    pub fn sigmoid(&mut self, a: Var) -> Var {
        self.unary(a, Unary::Sigmoid)
    }
    pub fn gelu(&mut self, a: Var) -> Var {
        self.unary(a, Unary::Gelu)
    }
    pub fn exp(&mut self, a: Var) -> Var {
        self.unary(a, Unary::Exp)
    }
    pub fn ln(&mut self, a: Var) -> Var {
        self.unary(a, Unary::Ln)
    }
    pub fn square(&mut self, a: Var) -> Var {
        self.unary(a, Unary::Square)
    }

    /// Sum of all entries (`1 × 1`).
    pub fn sum(&mut self, a: Var) -> Var {
        let value = self.value(a).sum_all();
        self.push(value, None, Op::SumAll { a: a.0 }, &[a.0])
    }

    /// Mean of all entries (`1 × 1`).
    pub fn mean(&mut self, a: Var) -> Var {
        let (r, c) = self.shape(a);
        let s = self.sum(a);
        self.scale(s, 1.0 / (r * c) as f64)
    }

    /// Sum over an axis: `axis = 0` sums the rows together (`1 × c`), `axis = 1` the columns (`n × 1`).
    pub fn sum_axis(&mut self, a: Var, axis: usize) -> Result<Var> {
        let (value, op) = match axis {
            0 => (self.value(a).sum_rows(), Op::SumRows { a: a.0 }),
            1 => (self.value(a).sum_cols(), Op::SumCols { a: a.0 }),
            _ => {
                return Err(AdError::Invalid {
                    what: "axis",
                    reason: format!("{axis} is not 0 or 1"),
                })
            }
        };
        Ok(self.push(value, None, op, &[a.0]))
    }

    /// Mean over an axis (see [`Graph::sum_axis`]).
    pub fn mean_axis(&mut self, a: Var, axis: usize) -> Result<Var> {
        let (r, c) = self.shape(a);
        let s = self.sum_axis(a, axis)?;
        Ok(self.scale(s, 1.0 / if axis == 0 { r } else { c } as f64))
    }

    /// Row-wise log-softmax.
    pub fn log_softmax(&mut self, a: Var) -> Var {
        let value = self.value(a).log_softmax_rows();
        self.push(value, None, Op::LogSoftmax { a: a.0 }, &[a.0])
    }

    /// `n × 1`: the entry `(i, labels[i])` of each row.
    pub fn pick(&mut self, a: Var, labels: &[usize]) -> Result<Var> {
        let (r, c) = self.shape(a);
        let oh = Arc::new(onehot(labels, r, c)?);
        let value = self.value(a).pick(labels);
        Ok(self.push(value, None, Op::Pick { a: a.0, onehot: oh }, &[a.0]))
    }

    /// Mean squared error `(c/n) Σ_i ‖pred_i − y_i‖²` over the `n` rows, with `c = ½` when `half` and `c = 1`
    /// otherwise (the factor halves or doubles every Hessian, so it is explicit).
    pub fn mse(&mut self, pred: Var, target: &Mat, half: bool) -> Result<Var> {
        let (r, c) = self.shape(pred);
        if target.dim() != (r, c) {
            return Err(shape_err(
                "mse",
                format!("prediction {r}×{c} vs target {:?}", target.dim()),
            ));
        }
        let diff = self.value(pred).add_constant(&(-target));
        let scale = if half { 0.5 } else { 1.0 } / r as f64;
        let value = diff.mul(&diff).sum_all().affine(scale, 0.0);
        Ok(self.push(value, Some(diff), Op::Mse { pred: pred.0, scale }, &[pred.0]))
    }

    /// Fused, numerically stable softmax cross-entropy with integer labels, averaged over the rows.
    pub fn softmax_cross_entropy(&mut self, logits: Var, labels: &[usize]) -> Result<Var> {
        let (r, c) = self.shape(logits);
        let oh = Arc::new(onehot(labels, r, c)?);
        let ls = self.value(logits).log_softmax_rows();
        let value = ls.mul_constant(&oh).sum_all().affine(-1.0 / r as f64, 0.0);
        Ok(self.push(
            value,
            Some(ls),
            Op::SoftmaxCe {
                logits: logits.0,
                onehot: oh,
            },
            &[logits.0],
        ))
    }

    /// Reverse pass: the gradient of the scalar node `out` with respect to every leaf, in leaf order.
    pub fn backward(&self, out: Var) -> Result<Vec<T>> {
        self.reverse(out, true)
    }

    /// Reverse pass for forward-over-reverse HVPs: as [`Graph::backward`], but the products that form the
    /// gradients of leaves skip their primal part (it may come back as zeros); every tangent is exact.
    pub fn backward_tangents(&self, out: Var) -> Result<Vec<T>> {
        self.reverse(out, false)
    }

    /// The cotangent of every node of the scalar `out` (`None` where it is zero or not needed), for
    /// [`crate::Linearized`], which keeps them. Leaf gradients skip their primal products as in
    /// [`Graph::backward_tangents`].
    pub(crate) fn cotangents(&self, out: Var) -> Result<Vec<Option<T>>> {
        let mut kept: Vec<Option<T>> = (0..=out.0).map(|_| None).collect();
        self.reverse_keeping(out, false, Some(&mut kept))?;
        Ok(kept)
    }

    fn reverse(&self, out: Var, leaf_primal: bool) -> Result<Vec<T>> {
        self.reverse_keeping(out, leaf_primal, None)
    }

    fn reverse_keeping(
        &self,
        out: Var,
        leaf_primal: bool,
        mut keep: Option<&mut Vec<Option<T>>>,
    ) -> Result<Vec<T>> {
        let (r, c) = self.shape(out);
        if (r, c) != (1, 1) {
            return Err(AdError::NotScalar { rows: r, cols: c });
        }
        let mut grads: Vec<Option<T>> = (0..=out.0).map(|_| None).collect();
        grads[out.0] = Some(T::constant(Mat::ones((1, 1))));
        for i in (0..=out.0).rev() {
            let Some(gy) = grads[i].take() else { continue };
            let node = &self.nodes[i];
            if !node.needs_grad {
                continue;
            }
            if let Some(kept) = keep.as_deref_mut() {
                kept[i] = Some(gy.clone());
            }
            if matches!(node.op, Op::Leaf) {
                grads[i] = Some(gy);
                continue;
            }
            self.propagate(i, gy, &mut grads, leaf_primal, false);
        }
        Ok(self
            .leaves
            .iter()
            .map(|&l| {
                grads.get_mut(l).and_then(Option::take).unwrap_or_else(|| {
                    let (r, c) = self.nodes[l].value.shape();
                    T::constant(Mat::zeros((r, c)))
                })
            })
            .collect())
    }

    fn accumulate(&self, grads: &mut [Option<T>], i: usize, g: T) {
        if !self.nodes[i].needs_grad {
            return;
        }
        grads[i] = Some(match grads[i].take() {
            Some(prev) => prev.add(&g),
            None => g,
        });
    }

    fn wants(&self, i: usize) -> bool {
        self.nodes[i].needs_grad
    }

    /// Sends the cotangent `gy` of node `i` to its inputs; `gy` is moved into the last consumer that can
    /// take it whole (bias adds, sums), so the reverse pass copies no more than it must.
    ///
    /// With `skip_leaves`, no cotangent is formed for a leaf (the batched per-example pass forms the leaves'
    /// per-example cotangents itself, see [`Graph::per_example_backward`]).
    fn propagate(&self, i: usize, gy: T, grads: &mut [Option<T>], leaf_primal: bool, skip_leaves: bool) {
        let gy_ref = &gy;
        let node = &self.nodes[i];
        let wants = |j: usize| self.wants(j) && !(skip_leaves && matches!(self.nodes[j].op, Op::Leaf));
        let val = |j: usize| &self.nodes[j].value;
        // Products that only feed a leaf's gradient may skip their primal part when it is not wanted.
        let mm = |j: usize, x: &T, tx: bool, y: &T, ty: bool| {
            if !leaf_primal && matches!(self.nodes[j].op, Op::Leaf) {
                T::matmul_tangent_only(x, tx, y, ty)
            } else {
                T::matmul(x, tx, y, ty)
            }
        };
        // C = op(A) op(B): the cotangents are products of gy with the other factor (cot_a, cot_b).
        let product = |grads: &mut [Option<T>], a: usize, ta: bool, b: usize, tb: bool| {
            if wants(a) {
                let ga = cot_a(|x, tx, y, ty| mm(a, x, tx, y, ty), gy_ref, val(b), ta, tb);
                self.accumulate(grads, a, ga);
            }
            if wants(b) {
                let gb = cot_b(|x, tx, y, ty| mm(b, x, tx, y, ty), gy_ref, val(a), ta, tb);
                self.accumulate(grads, b, gb);
            }
        };
        match &node.op {
            Op::Leaf | Op::Constant => {}
            &Op::MatMul { a, ta, b, tb } => product(grads, a, ta, b, tb),
            &Op::Linear { x, w, b } => {
                if let Some(b) = b.filter(|&b| wants(b)) {
                    self.accumulate(grads, b, gy_ref.sum_rows());
                }
                product(grads, x, false, w, true);
            }
            &Op::AddRow { a, b } => {
                if wants(b) {
                    self.accumulate(grads, b, gy_ref.sum_rows());
                }
                self.accumulate(grads, a, gy);
            }
            &Op::Add { a, b } => {
                self.accumulate(grads, a, gy_ref.clone());
                self.accumulate(grads, b, gy);
            }
            &Op::Sub { a, b } => {
                if wants(b) {
                    self.accumulate(grads, b, gy_ref.affine(-1.0, 0.0));
                }
                self.accumulate(grads, a, gy);
            }
            &Op::Mul { a, b } => {
                if wants(a) {
                    self.accumulate(grads, a, gy_ref.mul(val(b)));
                }
                if wants(b) {
                    self.accumulate(grads, b, gy_ref.mul(val(a)));
                }
            }
            &Op::Affine { a, alpha } => self.accumulate(grads, a, gy_ref.affine(alpha, 0.0)),
            &Op::Unary { a, f } => {
                let g = T::unary_backward_owned(f, val(a), &node.value, gy);
                self.accumulate(grads, a, g);
            }
            &Op::SumRows { a } | &Op::SumCols { a } | &Op::SumAll { a } => {
                let (r, c) = val(a).shape();
                self.accumulate(grads, a, gy_ref.broadcast_to(r, c));
            }
            &Op::MulScalar { a, s } => {
                if wants(a) {
                    self.accumulate(grads, a, gy_ref.mul_scalar(val(s)));
                }
                if wants(s) {
                    self.accumulate(grads, s, gy_ref.mul(val(a)).sum_all());
                }
            }
            &Op::LogSoftmax { a } => {
                let (r, c) = gy_ref.shape();
                let softmax = node.value.exp();
                let g = gy_ref.sub(&softmax.mul(&gy_ref.sum_cols().broadcast_to(r, c)));
                self.accumulate(grads, a, g);
            }
            Op::Pick { a, onehot } => {
                let (r, c) = onehot.dim();
                self.accumulate(grads, *a, gy_ref.broadcast_to(r, c).mul_constant(onehot));
            }
            &Op::Mse { pred, scale } => {
                let diff = node.aux.as_ref().expect("mse keeps its residual");
                self.accumulate(grads, pred, diff.affine(2.0 * scale, 0.0).mul_scalar(gy_ref));
            }
            Op::SoftmaxCe { logits, onehot } => {
                let ls = node.aux.as_ref().expect("cross-entropy keeps its log-softmax");
                let r = onehot.nrows();
                let g = ls
                    .exp()
                    .add_constant(&(-&**onehot))
                    .mul_scalar(gy_ref)
                    .affine(1.0 / r as f64, 0.0);
                self.accumulate(grads, *logits, g);
            }
            Op::Custom(c) => {
                let xs: Vec<&T> = c.inputs.iter().map(|&j| val(j)).collect();
                let wants_in: Vec<bool> = c.inputs.iter().map(|&j| wants(j)).collect();
                let gs = c.prim.vjp(&xs, &node.value, gy_ref, &wants_in);
                for (&j, g) in c.inputs.iter().zip(gs) {
                    if let Some(g) = g.filter(|_| wants(j)) {
                        self.accumulate(grads, j, g);
                    }
                }
            }
        }
    }
}

impl<T: Tensor> Op<T> {
    /// The nodes this op reads.
    fn inputs(&self) -> Vec<usize> {
        match self {
            Op::Leaf | Op::Constant => Vec::new(),
            &Op::MatMul { a, b, .. }
            | &Op::AddRow { a, b }
            | &Op::Add { a, b }
            | &Op::Sub { a, b }
            | &Op::Mul { a, b }
            | &Op::MulScalar { a, s: b } => vec![a, b],
            &Op::Linear { x, w, b } => [Some(x), Some(w), b].into_iter().flatten().collect(),
            &Op::Affine { a, .. }
            | &Op::Unary { a, .. }
            | &Op::SumRows { a }
            | &Op::SumCols { a }
            | &Op::SumAll { a }
            | &Op::LogSoftmax { a }
            | &Op::Pick { a, .. }
            | &Op::Mse { pred: a, .. }
            | &Op::SoftmaxCe { logits: a, .. } => vec![a],
            Op::Custom(c) => c.inputs.clone(),
        }
    }
}

/// A per-example rule on one row: `f(g_r, r, acc_r)` with `g_r` the output cotangent of example `r` and
/// `acc_r` its row of a leaf's per-example cotangents.
type RowRule<'a> = &'a dyn Fn(&[f64], usize, &mut [f64]);

impl Graph<Mat> {
    fn is_leaf(&self, j: usize) -> bool {
        matches!(self.nodes[j].op, Op::Leaf)
    }

    /// Whether [`Graph::per_example_backward`] applies to the scalar `out` of a tape of `n` examples: every
    /// op that reads a leaf (up to `out`) has a per-example rule for it (bias add, linear and matmul weights,
    /// and primitives by [`Primitive::has_vjp_per_example`](crate::Primitive::has_vjp_per_example)) and an
    /// output of `n` rows, one per example.
    pub(crate) fn per_example_ready(&self, out: Var, n: usize) -> bool {
        self.nodes[..=out.0].iter().all(|node| {
            let rows = node.value.nrows() == n;
            let leaf = |j: usize| self.is_leaf(j);
            match &node.op {
                Op::Leaf | Op::Constant => true,
                &Op::Linear { x, w, b } => !leaf(x) && (rows || !(leaf(w) || b.is_some_and(leaf))),
                &Op::AddRow { a, b } => !leaf(a) && (rows || !leaf(b)),
                &Op::MatMul { a, ta, b, .. } => !leaf(a) && (!leaf(b) || (rows && !ta)),
                Op::Custom(c) => c
                    .inputs
                    .iter()
                    .enumerate()
                    .all(|(k, &j)| !leaf(j) || (rows && c.prim.has_vjp_per_example(k))),
                op => !op.inputs().into_iter().any(leaf),
            }
        })
    }

    /// Batched per-example reverse mode: for a scalar `out = Σ_i ℓ_i` over the `n` examples of the tape (one
    /// per row of every batched node), adds `∇ℓ_i` to row `i` of `acc` (`n × Σ leaf sizes`, the leaves
    /// row-major in leaf order). One reverse pass over the whole batch forms the cotangents of the batched
    /// nodes; where an op reads a leaf, its per-example rule forms that leaf's cotangent per example (a linear
    /// layer's `W̄_i = g_iᵀ x_i`, `b̄_i = g_i`) in place of the batch's sum. The caller checks
    /// [`Graph::per_example_ready`] first.
    pub(crate) fn per_example_backward(&self, out: Var, mut acc: ArrayViewMut2<'_, f64>) -> Result<()> {
        let (r, c) = self.shape(out);
        if (r, c) != (1, 1) {
            return Err(AdError::NotScalar { rows: r, cols: c });
        }
        // The columns of each leaf in `acc`.
        let mut cols: Vec<Option<std::ops::Range<usize>>> = vec![None; out.0 + 1];
        let mut off = 0;
        for &l in &self.leaves {
            let len = self.nodes[l].value.len();
            if l <= out.0 {
                cols[l] = Some(off..off + len);
            }
            off += len;
        }
        if acc.ncols() != off {
            return Err(AdError::Length {
                what: "per-example gradient row",
                expected: off,
                got: acc.ncols(),
            });
        }
        let mut grads: Vec<Option<Mat>> = (0..=out.0).map(|_| None).collect();
        grads[out.0] = Some(Mat::ones((1, 1)));
        for i in (0..=out.0).rev() {
            let Some(gy) = grads[i].take() else { continue };
            let node = &self.nodes[i];
            if !node.needs_grad || matches!(node.op, Op::Leaf) {
                continue;
            }
            self.per_example_leaves(i, &gy, &cols, &mut acc)?;
            self.propagate(i, gy, &mut grads, true, true);
        }
        Ok(())
    }

    /// The per-example cotangents of the leaves node `i` reads, for its output cotangent `g`, added to their
    /// columns `cols` of `acc`.
    fn per_example_leaves(
        &self,
        i: usize,
        g: &Mat,
        cols: &[Option<std::ops::Range<usize>>],
        acc: &mut ArrayViewMut2<'_, f64>,
    ) -> Result<()> {
        let val = |j: usize| &self.nodes[j].value;
        // Row by row: `f(g_r, (other factor)_r, acc_r)`, the acc row restricted to the leaf's columns.
        let rowwise = |acc: &mut ArrayViewMut2<'_, f64>, range: &std::ops::Range<usize>, f: RowRule<'_>| {
            let gs = g.as_standard_layout();
            let gs = gs.as_slice().expect("standard layout");
            let k = g.ncols();
            for (r, mut row) in acc.rows_mut().into_iter().enumerate() {
                let row = row.as_slice_mut().expect("row-major rows");
                f(&gs[r * k..(r + 1) * k], r, &mut row[range.clone()]);
            }
        };
        let add = |dst: &mut [f64], src: &[f64]| dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
        let node = &self.nodes[i];
        match &node.op {
            &Op::Linear { x, w, b } => {
                if let Some(range) = &cols[w] {
                    let xs = val(x).as_standard_layout();
                    let (xs, k) = (xs.as_slice().expect("standard layout"), val(x).ncols());
                    // y = x Wᵀ: W̄_i = g_iᵀ x_i (out × in)
                    rowwise(acc, range, &|gr, r, dst| {
                        crate::fastmath::outer_add_into(gr, &xs[r * k..(r + 1) * k], dst)
                    });
                }
                if let Some(range) = b.and_then(|b| cols[b].as_ref()) {
                    rowwise(acc, range, &|gr, _, dst| add(dst, gr));
                }
            }
            &Op::AddRow { b, .. } => {
                if let Some(range) = &cols[b] {
                    rowwise(acc, range, &|gr, _, dst| add(dst, gr));
                }
            }
            &Op::MatMul { a, b, tb, .. } => {
                if let Some(range) = &cols[b] {
                    let xs = val(a).as_standard_layout();
                    let (xs, k) = (xs.as_slice().expect("standard layout"), val(a).ncols());
                    // C = A B: B̄_i = a_iᵀ g_i (k × m); C = A Bᵀ: B̄_i = g_iᵀ a_i (m × k)
                    rowwise(acc, range, &|gr, r, dst| {
                        let ar = &xs[r * k..(r + 1) * k];
                        if tb {
                            crate::fastmath::outer_add_into(gr, ar, dst)
                        } else {
                            crate::fastmath::outer_add_into(ar, gr, dst)
                        }
                    });
                }
            }
            Op::Custom(c) => {
                let xs: Vec<&Mat> = c.inputs.iter().map(|&j| val(j)).collect();
                for (k, &j) in c.inputs.iter().enumerate() {
                    if let Some(range) = &cols[j] {
                        let block = acc.slice_mut(ndarray::s![.., range.clone()]);
                        c.prim.vjp_per_example(&xs, &node.value, g, k, block)?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The cotangent products of `C = op(A) op(B)` for the flags `(ta, tb)`, by the product `mm`: `cot_a(g, B)` and
/// `cot_b(g, A)` are the cotangents of `A` and `B` for the output cotangent `g`, written so that no transpose
/// is materialized.
fn cot_a<T>(mm: impl Fn(&T, bool, &T, bool) -> T, g: &T, b: &T, ta: bool, tb: bool) -> T {
    match (ta, tb) {
        (false, false) => mm(g, false, b, true),
        (false, true) => mm(g, false, b, false),
        (true, false) => mm(b, false, g, true),
        (true, true) => mm(b, true, g, true),
    }
}

fn cot_b<T>(mm: impl Fn(&T, bool, &T, bool) -> T, g: &T, a: &T, ta: bool, tb: bool) -> T {
    match (ta, tb) {
        (false, false) => mm(a, true, g, false),
        (false, true) => mm(g, true, a, false),
        (true, false) => mm(a, false, g, false),
        (true, true) => mm(g, true, a, true),
    }
}

impl Graph<Dual<Mat>> {
    /// Replaces every tangent of a recorded forward-mode graph: the leaves get `leaf_tangents` (in leaf order,
    /// `None` for zero) and every other node the JVP of its operation at the recorded primal values, which
    /// are kept. This is the forward half of a linearized HVP ([`crate::Linearized`]): the primal forward
    /// pass is not repeated.
    pub(crate) fn retangent(&mut self, mut leaf_tangents: Vec<Option<Mat>>) {
        let mut next_leaf = 0;
        for i in 0..self.nodes.len() {
            let (done, rest) = self.nodes.split_at_mut(i);
            let node = &mut rest[0];
            let p = |j: usize| &done[j].value.p;
            let t = |j: usize| done[j].value.t.as_ref();
            let (tangent, aux_tangent) = match &node.op {
                Op::Leaf => {
                    next_leaf += 1;
                    (leaf_tangents[next_leaf - 1].take(), None)
                }
                Op::Constant => (None, None),
                &Op::MatMul { a, ta, b, tb } => (product_tangent(p(a), t(a), ta, p(b), t(b), tb), None),
                &Op::Linear { x, w, b } => (linear_tangent(p(x), t(x), p(w), t(w), b.and_then(t)), None),
                &Op::AddRow { a, b } => {
                    let (r, c) = p(a).dim();
                    (add_row_tangent(t(a), t(b), r, c), None)
                }
                &Op::Add { a, b } => (sum_tangent(t(a), t(b)), None),
                &Op::Sub { a, b } => (difference_tangent(t(a), t(b)), None),
                &Op::Mul { a, b } => (elementwise_product_tangent(p(a), t(a), p(b), t(b)), None),
                &Op::Affine { a, alpha } => (t(a).map(|x| x.affine(alpha, 0.0)), None),
                &Op::Unary { a, f } => (t(a).map(|x| Mat::unary_backward(f, p(a), &node.value.p, x)), None),
                &Op::SumRows { a } => (t(a).map(Mat::sum_rows), None),
                &Op::SumCols { a } => (t(a).map(Mat::sum_cols), None),
                &Op::SumAll { a } => (t(a).map(Mat::sum_all), None),
                &Op::MulScalar { a, s } => (scalar_product_tangent(p(a), t(a), p(s), t(s)), None),
                &Op::LogSoftmax { a } => (t(a).map(|x| log_softmax_tangent(&node.value.p, x)), None),
                Op::Pick { a, onehot } => (t(*a).map(|x| x.mul_constant(onehot).sum_cols()), None),
                &Op::Mse { pred, scale } => {
                    // The residual's tangent is the prediction's; `reverse_tangents` reads that directly.
                    let diff = &node.aux.as_ref().expect("mse keeps its residual").p;
                    (
                        t(pred).map(|x| diff.mul(x).sum_all().affine(2.0 * scale, 0.0)),
                        None,
                    )
                }
                Op::SoftmaxCe { logits, onehot } => {
                    let ls = &node.aux.as_ref().expect("cross-entropy keeps its log-softmax").p;
                    let lst = t(*logits).map(|x| log_softmax_tangent(ls, x));
                    let r = onehot.nrows() as f64;
                    let t = lst
                        .as_ref()
                        .map(|l| l.mul_constant(onehot).sum_all().affine(-1.0 / r, 0.0));
                    (t, Some(lst))
                }
                Op::Custom(c) => {
                    let xs: Vec<&Mat> = c.inputs.iter().map(|&j| p(j)).collect();
                    let ts: Vec<Option<&Mat>> = c.inputs.iter().map(|&j| t(j)).collect();
                    let t = if ts.iter().any(Option::is_some) {
                        c.prim.jvp_plain(&xs, &node.value.p, &ts)
                    } else {
                        None
                    };
                    (t, None)
                }
            };
            node.value.t = tangent;
            if let (Some(aux), Some(at)) = (node.aux.as_mut(), aux_tangent) {
                aux.t = at;
            }
        }
    }

    /// The tangent half of the reverse pass, given the primal cotangents `cots` of every node (from
    /// [`Graph::cotangents`] at the recorded point): the tangents `ġ` of the cotangents, pushed from `out`
    /// (whose seed 1 has no tangent) to the leaves by the derivative of each op's reverse rule, e.g.
    /// `ġ_A = ġ Bᵀ + g Ḃᵀ` for `C = A B` and `ġ_x = ġ f'(x) + g f''(x) ẋ` for `y = f(x)`. No primal work is
    /// repeated. Returns the leaves' `ġ` (for a loss, `∇²f v`), in leaf order.
    pub(crate) fn reverse_tangents(&self, out: Var, cots: &[Option<Mat>]) -> Vec<Option<Mat>> {
        let n = out.0 + 1;
        let mut gt: Vec<Option<Mat>> = (0..n).map(|_| None).collect();
        let add = |gt: &mut [Option<Mat>], j: usize, g: Option<Mat>| {
            if self.nodes[j].needs_grad {
                gt[j] = add_opt(gt[j].take(), g);
            }
        };
        for i in (0..n).rev() {
            let node = &self.nodes[i];
            if !node.needs_grad || matches!(node.op, Op::Leaf | Op::Constant) {
                continue;
            }
            let Some(g) = cots[i].as_ref() else {
                continue;
            };
            let dg = gt[i].take();
            let dg = dg.as_ref();
            let p = |j: usize| &self.nodes[j].value.p;
            let t = |j: usize| self.nodes[j].value.t.as_ref();
            let wants = |j: usize| self.nodes[j].needs_grad;
            // C = op(A) op(B): ġ_A = cot_a(ġ, B) + cot_a(g, Ḃ), and likewise for B.
            let product = |gt: &mut [Option<Mat>], a: usize, ta: bool, b: usize, tb: bool| {
                if wants(a) {
                    let v = add_opt(
                        dg.map(|d| cot_a(Mat::matmul, d, p(b), ta, tb)),
                        t(b).map(|bt| cot_a(Mat::matmul, g, bt, ta, tb)),
                    );
                    add(gt, a, v);
                }
                if wants(b) {
                    let v = add_opt(
                        dg.map(|d| cot_b(Mat::matmul, d, p(a), ta, tb)),
                        t(a).map(|at| cot_b(Mat::matmul, g, at, ta, tb)),
                    );
                    add(gt, b, v);
                }
            };
            match &node.op {
                Op::Leaf | Op::Constant => {}
                &Op::MatMul { a, ta, b, tb } => product(&mut gt, a, ta, b, tb),
                &Op::Linear { x, w, b } => {
                    if let Some(b) = b.filter(|&b| wants(b)) {
                        add(&mut gt, b, dg.map(Mat::sum_rows));
                    }
                    product(&mut gt, x, false, w, true);
                }
                &Op::AddRow { a, b } => {
                    if wants(b) {
                        add(&mut gt, b, dg.map(Mat::sum_rows));
                    }
                    add(&mut gt, a, dg.cloned());
                }
                &Op::Add { a, b } => {
                    add(&mut gt, a, dg.cloned());
                    add(&mut gt, b, dg.cloned());
                }
                &Op::Sub { a, b } => {
                    add(&mut gt, a, dg.cloned());
                    add(&mut gt, b, dg.map(|d| d.affine(-1.0, 0.0)));
                }
                &Op::Mul { a, b } => {
                    if wants(a) {
                        add(
                            &mut gt,
                            a,
                            add_opt(dg.map(|d| d.mul(p(b))), t(b).map(|bt| g.mul(bt))),
                        );
                    }
                    if wants(b) {
                        add(
                            &mut gt,
                            b,
                            add_opt(dg.map(|d| d.mul(p(a))), t(a).map(|at| g.mul(at))),
                        );
                    }
                }
                &Op::Affine { a, alpha } => add(&mut gt, a, dg.map(|d| d.affine(alpha, 0.0))),
                &Op::Unary { a, f } => {
                    let v = unary_backward_tangent(
                        f,
                        (p(a), t(a)),
                        (&node.value.p, node.value.t.as_ref()),
                        (g, dg),
                    );
                    add(&mut gt, a, v);
                }
                &Op::SumRows { a } | &Op::SumCols { a } | &Op::SumAll { a } => {
                    let (r, c) = p(a).dim();
                    add(&mut gt, a, dg.map(|d| d.broadcast_to(r, c)));
                }
                &Op::MulScalar { a, s } => {
                    if wants(a) {
                        let v = add_opt(dg.map(|d| d.mul_scalar(p(s))), t(s).map(|st| g.mul_scalar(st)));
                        add(&mut gt, a, v);
                    }
                    if wants(s) {
                        let v = add_opt(
                            dg.map(|d| d.mul(p(a)).sum_all()),
                            t(a).map(|at| g.mul(at).sum_all()),
                        );
                        add(&mut gt, s, v);
                    }
                }
                &Op::LogSoftmax { a } => {
                    // g_a = g − softmax ⊙ (g 1) 1ᵀ; softmax' = softmax ⊙ ẏ.
                    let (r, c) = g.dim();
                    let softmax = node.value.p.exp();
                    let v = add_opt(
                        dg.map(|d| d.sub(&softmax.mul(&d.sum_cols().broadcast_to(r, c)))),
                        node.value.t.as_ref().map(|yt| {
                            softmax
                                .mul(yt)
                                .mul(&g.sum_cols().broadcast_to(r, c))
                                .affine(-1.0, 0.0)
                        }),
                    );
                    add(&mut gt, a, v);
                }
                Op::Pick { a, onehot } => {
                    let (r, c) = onehot.dim();
                    add(&mut gt, *a, dg.map(|d| d.broadcast_to(r, c).mul_constant(onehot)));
                }
                &Op::Mse { pred, scale } => {
                    // g_pred = 2c (pred − y) g, g a 1 × 1 scalar.
                    let diff = &node.aux.as_ref().expect("mse keeps its residual").p;
                    let v = add_opt(
                        dg.map(|d| diff.affine(2.0 * scale, 0.0).mul_scalar(d)),
                        t(pred).map(|dt| dt.affine(2.0 * scale, 0.0).mul_scalar(g)),
                    );
                    add(&mut gt, pred, v);
                }
                Op::SoftmaxCe { logits, onehot } => {
                    // g_z = (softmax − onehot) g / r; softmax' = softmax ⊙ (log-softmax)'.
                    let ls = node.aux.as_ref().expect("cross-entropy keeps its log-softmax");
                    let r = onehot.nrows() as f64;
                    let softmax = ls.p.exp();
                    let v = add_opt(
                        dg.map(|d| {
                            softmax
                                .add_constant(&(-&**onehot))
                                .mul_scalar(d)
                                .affine(1.0 / r, 0.0)
                        }),
                        ls.t.as_ref()
                            .map(|lt| softmax.mul(lt).mul_scalar(g).affine(1.0 / r, 0.0)),
                    );
                    add(&mut gt, *logits, v);
                }
                Op::Custom(c) => {
                    // The tangent of the reverse rule (by default the reverse rule run on dual values).
                    let xs: Vec<&Dual<Mat>> = c.inputs.iter().map(|&j| &self.nodes[j].value).collect();
                    let wants: Vec<bool> = c.inputs.iter().map(|&j| wants(j)).collect();
                    let gs = c.prim.vjp_tangent(&xs, &node.value, g, dg, &wants);
                    for (&j, d) in c.inputs.iter().zip(gs) {
                        add(&mut gt, j, d);
                    }
                }
            }
        }
        self.leaves
            .iter()
            .map(|&l| gt.get_mut(l).and_then(Option::take))
            .collect()
    }
}
