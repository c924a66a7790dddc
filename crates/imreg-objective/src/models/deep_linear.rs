//! Deep linear networks `f(x) = W_L ⋯ W_1 x` (optionally with biases) under the ½ MSE, with hand-written
//! derivatives.
//!
//! The derivatives are written once, as backpropagation on **truncated hyper-dual matrices** ([`Jet`]):
//! every matrix carries `(value, ∂_u, ∂_v, ∂_u∂_v)`. A product of two jets obeys the product rule
//! component-wise, so running the forward pass and the backward pass (`G_L = R`, `∇W_ℓ = G_ℓᵀH_{ℓ−1}`,
//! `∇b_ℓ = 1ᵀG_ℓ`, `G_{ℓ−1} = G_ℓW_ℓ`) on jets whose parameter tangents are `u` and `v` gives, in the four
//! components of the gradient: `∇C`, `H u`, `H v` and `∂_u∂_v ∇C = T3[u, v]`. Absent components are skipped,
//! so the gradient costs one forward/backward pass and the HVP (Pearlmutter's R-operator: only the `∂_u`
//! component) about three.
use super::common::{check_dir, check_theta_batch, chunked_sum, per_example_driver, value_targets};
use crate::batch::Batch;
use crate::error::{ObjectiveError, Result};
use crate::objective::{check_finite, check_len, Objective};
use crate::supervised::{LossKind, Supervised, Targets};
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, Axis};

/// Deep linear network `f(x) = W_L(⋯(W_1 x + b_1)⋯) + b_L` with `ℓ_i = ½ ‖f(x_i) − y_i‖²`.
///
/// `widths = [d_in, h_1, …, d_out]` gives `L = widths.len() − 1` layers; layer `ℓ` has weight `W_ℓ`
/// (`d_ℓ × d_{ℓ−1}`) and, if `bias`, bias `b_ℓ` (`d_ℓ`). The flat parameter vector follows PyTorch's
/// `nn.Sequential(nn.Linear, …)`: for each layer its weight `[out, in]` row-major, then its bias; the names are
/// [`DeepLinear::param_names`] (`0.weight`, `0.bias`, `1.weight`, …).
#[derive(Clone, Debug)]
pub struct DeepLinear {
    widths: Vec<usize>,
    bias: bool,
    /// `N × d_in`.
    x: Array2<f64>,
    /// `N × d_out`.
    y: Array2<f64>,
    /// Offset of each layer's weight in `θ`.
    offsets: Vec<usize>,
    p: usize,
}

/// Component slots of a [`Jet`].
const VAL: usize = 0;
const DU: usize = 1;
const DV: usize = 2;
const DUV: usize = 3;

/// A matrix with its truncated hyper-dual components `(value, ∂_u, ∂_v, ∂_u∂_v)`; `None` is zero.
#[derive(Clone, Debug, Default)]
struct Jet {
    c: [Option<Array2<f64>>; 4],
}

impl Jet {
    fn value(m: Array2<f64>) -> Jet {
        Jet {
            c: [Some(m), None, None, None],
        }
    }

    /// `op(A)·op(B)` with the product rule, `op` a transpose when the flag is set.
    fn mm(a: &Jet, ta: bool, b: &Jet, tb: bool) -> Jet {
        let mut out = Jet::default();
        // (component of the product, component of a, component of b)
        const TERMS: [(usize, usize, usize); 9] = [
            (VAL, VAL, VAL),
            (DU, DU, VAL),
            (DU, VAL, DU),
            (DV, DV, VAL),
            (DV, VAL, DV),
            (DUV, DUV, VAL),
            (DUV, DU, DV),
            (DUV, DV, DU),
            (DUV, VAL, DUV),
        ];
        for (o, i, j) in TERMS {
            if let (Some(x), Some(y)) = (&a.c[i], &b.c[j]) {
                let x = if ta { x.t() } else { x.view() };
                let y = if tb { y.t() } else { y.view() };
                let acc = out.c[o].get_or_insert_with(|| Array2::zeros((x.nrows(), y.ncols())));
                general_mat_mul(1.0, &x, &y, 1.0, acc);
            }
        }
        out
    }

    /// Adds the row vector jet `b` (each component `1 × d`) to every row.
    fn add_rows(&mut self, b: &Jet) {
        let rows = self.c[VAL].as_ref().map_or(0, |h| h.nrows());
        for k in 0..4 {
            if let Some(bk) = &b.c[k] {
                match &mut self.c[k] {
                    Some(h) => *h += bk,
                    slot => *slot = Some(Array2::from_shape_fn((rows, bk.ncols()), |(_, j)| bk[(0, j)])),
                }
            }
        }
    }
}

/// What a pass computes: the derivative order and which component of the gradient jet is wanted.
#[derive(Clone, Copy)]
enum Want {
    Grad,
    Hvp,
    Third,
}

impl DeepLinear {
    /// `widths = [d_in, h_1, …, d_out]` (at least two entries, all ≥ 1), `x` is `N × d_in`, `y` is
    /// `N × d_out`. Errors on bad widths, mismatched shapes, no example or non-finite data.
    pub fn new(widths: Vec<usize>, x: Array2<f64>, y: Array2<f64>, bias: bool) -> Result<Self> {
        if widths.len() < 2 {
            return Err(ObjectiveError::invalid(
                "widths",
                "needs [d_in, …, d_out] with at least one layer",
            ));
        }
        if let Some(pos) = widths.iter().position(|&w| w == 0) {
            return Err(ObjectiveError::invalid("widths", format!("width {pos} is 0")));
        }
        let (d_in, d_out) = (widths[0], widths[widths.len() - 1]);
        if x.ncols() != d_in || x.nrows() == 0 {
            return Err(ObjectiveError::Shape {
                what: "x".into(),
                expected: format!("N × {d_in} with N ≥ 1"),
                got: format!("{} × {}", x.nrows(), x.ncols()),
            });
        }
        if y.dim() != (x.nrows(), d_out) {
            return Err(ObjectiveError::Shape {
                what: "y".into(),
                expected: format!("{} × {d_out}", x.nrows()),
                got: format!("{} × {}", y.nrows(), y.ncols()),
            });
        }
        let x = x.as_standard_layout().into_owned();
        let y = y.as_standard_layout().into_owned();
        check_finite("x", x.as_slice().unwrap_or(&[]))?;
        check_finite("y", y.as_slice().unwrap_or(&[]))?;
        let mut offsets = Vec::with_capacity(widths.len() - 1);
        let mut p = 0;
        for w in widths.windows(2) {
            offsets.push(p);
            p += w[1] * w[0] + if bias { w[1] } else { 0 };
        }
        Ok(DeepLinear {
            widths,
            bias,
            x,
            y,
            offsets,
            p,
        })
    }

    /// `[d_in, h_1, …, d_out]`.
    pub fn widths(&self) -> &[usize] {
        &self.widths
    }

    /// Number of layers `L`.
    pub fn depth(&self) -> usize {
        self.widths.len() - 1
    }

    /// Whether the layers have biases.
    pub fn has_bias(&self) -> bool {
        self.bias
    }

    /// Inputs, `N × d_in`.
    pub fn x(&self) -> &Array2<f64> {
        &self.x
    }

    /// Targets, `N × d_out`.
    pub fn y(&self) -> &Array2<f64> {
        &self.y
    }

    /// PyTorch `nn.Sequential` parameter names in `θ` order: `0.weight`, `0.bias`, `1.weight`, ….
    pub fn param_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for l in 0..self.depth() {
            names.push(format!("{l}.weight"));
            if self.bias {
                names.push(format!("{l}.bias"));
            }
        }
        names
    }

    /// Tensor shapes in `θ` order, matching [`DeepLinear::param_names`]: `[out, in]` per weight, `[out]` per bias.
    pub fn layer_shapes(&self) -> Vec<Vec<usize>> {
        let mut shapes = Vec::new();
        for w in self.widths.windows(2) {
            shapes.push(vec![w[1], w[0]]);
            if self.bias {
                shapes.push(vec![w[1]]);
            }
        }
        shapes
    }

    /// The end-to-end matrix `W_L ⋯ W_1` (`d_out × d_in`; biases ignored).
    pub fn end_to_end(&self, theta: &[f64]) -> Result<Array2<f64>> {
        check_len("theta", theta, self.p)?;
        let mut m = self.weight(theta, 0);
        for l in 1..self.depth() {
            m = self.weight(theta, l).dot(&m);
        }
        Ok(m)
    }

    /// Weight of layer `l` (0-based) as a matrix (θ has been length-checked).
    fn weight(&self, theta: &[f64], l: usize) -> Array2<f64> {
        let (o, i) = (self.widths[l + 1], self.widths[l]);
        let off = self.offsets[l];
        Array2::from_shape_fn((o, i), |(r, c)| theta[off + r * i + c])
    }

    /// Bias of layer `l` as a `1 × d_ℓ` matrix.
    fn bias_row(&self, theta: &[f64], l: usize) -> Array2<f64> {
        let (o, i) = (self.widths[l + 1], self.widths[l]);
        let off = self.offsets[l] + o * i;
        Array2::from_shape_fn((1, o), |(_, c)| theta[off + c])
    }

    /// Parameter jets `(W_ℓ, b_ℓ)` of every layer with tangents `u` (slot ∂_u) and `v` (slot ∂_v).
    fn param_jets(&self, theta: &[f64], u: Option<&[f64]>, v: Option<&[f64]>) -> Vec<(Jet, Option<Jet>)> {
        (0..self.depth())
            .map(|l| {
                let mut w = Jet::value(self.weight(theta, l));
                w.c[DU] = u.map(|u| self.weight(u, l));
                w.c[DV] = v.map(|v| self.weight(v, l));
                let b = self.bias.then(|| {
                    let mut b = Jet::value(self.bias_row(theta, l));
                    b.c[DU] = u.map(|u| self.bias_row(u, l));
                    b.c[DV] = v.map(|v| self.bias_row(v, l));
                    b
                });
                (w, b)
            })
            .collect()
    }

    /// Forward pass on the examples `ix`: the activations `H_0 = X_B, …, H_L = f` (as jets).
    fn forward(&self, params: &[(Jet, Option<Jet>)], ix: &[usize]) -> Vec<Jet> {
        let mut hs = vec![Jet::value(self.x.select(Axis(0), ix))];
        for (w, b) in params {
            let mut h = Jet::mm(&hs[hs.len() - 1], false, w, true);
            if let Some(b) = b {
                h.add_rows(b);
            }
            hs.push(h);
        }
        hs
    }

    /// Backward pass from the output cotangent `g` (`|B| × d_out` jet): writes component `slot` of
    /// `Σ ∇θ` into `acc` (flat, PyTorch layout).
    fn backward(&self, params: &[(Jet, Option<Jet>)], hs: &[Jet], mut g: Jet, slot: usize, acc: &mut [f64]) {
        for l in (0..self.depth()).rev() {
            let gw = Jet::mm(&g, true, &hs[l], false);
            let off = self.offsets[l];
            if let Some(m) = &gw.c[slot] {
                acc[off..off + m.len()]
                    .iter_mut()
                    .zip(m.iter())
                    .for_each(|(a, x)| *a += x);
            }
            if self.bias {
                let boff = off + self.widths[l + 1] * self.widths[l];
                if let Some(m) = &g.c[slot] {
                    let s = m.sum_axis(Axis(0));
                    acc[boff..boff + s.len()]
                        .iter_mut()
                        .zip(s.iter())
                        .for_each(|(a, x)| *a += x);
                }
            }
            if l > 0 {
                g = Jet::mm(&g, false, &params[l].0, false);
            }
        }
    }

    fn check(&self, theta: &[f64], batch: Batch<'_>) -> Result<()> {
        check_theta_batch(theta, self.p, batch, self.x.nrows())
    }

    /// `(Σ_B ½‖r‖², component of Σ_B ∇ℓ)` for the wanted derivative, with targets `targets` (else `y`).
    fn pass(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        want: Want,
        u: Option<&[f64]>,
        v: Option<&[f64]>,
        targets: Option<ArrayView2<'_, f64>>,
    ) -> Result<(f64, Vec<f64>)> {
        let params = self.param_jets(theta, u, v);
        let slot = match want {
            Want::Grad => VAL,
            Want::Hvp => DU,
            Want::Third => DUV,
        };
        chunked_sum(batch, self.x.nrows(), self.p, |start, ix, s, acc| {
            let mut hs = self.forward(&params, ix);
            let mut r = hs.pop().unwrap_or_default();
            if let Some(r0) = &mut r.c[VAL] {
                match targets {
                    Some(t) => *r0 -= &t.slice(ndarray::s![start..start + ix.len(), ..]),
                    None => *r0 -= &self.y.select(Axis(0), ix),
                }
                *s += 0.5 * r0.iter().map(|e| e * e).sum::<f64>();
            }
            self.backward(&params, &hs, r, slot, acc);
            Ok(())
        })
    }

    fn mean_into(&self, batch: Batch<'_>, sum: &[f64], out: &mut [f64]) {
        let nb = batch.len(self.x.nrows()) as f64;
        out.iter_mut().zip(sum).for_each(|(o, x)| *o = x / nb);
    }
}

impl Objective for DeepLinear {
    fn name(&self) -> String {
        format!(
            "deep-linear {:?}{} (½ MSE, N = {})",
            self.widths,
            if self.bias { " +bias" } else { "" },
            self.x.nrows()
        )
    }

    fn dim(&self) -> usize {
        self.p
    }

    fn n_examples(&self) -> usize {
        self.x.nrows()
    }

    fn loss(&self, theta: &[f64], batch: Batch<'_>) -> Result<f64> {
        self.check(theta, batch)?;
        let params = self.param_jets(theta, None, None);
        let (s, _) = chunked_sum(batch, self.x.nrows(), 0, |_, ix, s, _| {
            let hs = self.forward(&params, ix);
            if let Some(f) = hs.last().and_then(|h| h.c[VAL].as_ref()) {
                let r = f - &self.y.select(Axis(0), ix);
                *s += 0.5 * r.iter().map(|e| e * e).sum::<f64>();
            }
            Ok(())
        })?;
        Ok(s / batch.len(self.x.nrows()) as f64)
    }

    fn loss_grad(&self, theta: &[f64], batch: Batch<'_>, grad: &mut [f64]) -> Result<f64> {
        self.check(theta, batch)?;
        check_len("grad", grad, self.p)?;
        let (s, g) = self.pass(theta, batch, Want::Grad, None, None, None)?;
        self.mean_into(batch, &g, grad);
        Ok(s / batch.len(self.x.nrows()) as f64)
    }

    fn hvp(&self, theta: &[f64], batch: Batch<'_>, v: &[f64], out: &mut [f64]) -> Result<()> {
        self.check(theta, batch)?;
        check_dir("v", v, self.p)?;
        check_len("out", out, self.p)?;
        let (_, hv) = self.pass(theta, batch, Want::Hvp, Some(v), None, None)?;
        self.mean_into(batch, &hv, out);
        Ok(())
    }

    fn third_order(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        u: &[f64],
        v: &[f64],
        out: &mut [f64],
    ) -> Result<()> {
        self.check(theta, batch)?;
        check_dir("u", u, self.p)?;
        check_dir("v", v, self.p)?;
        check_len("out", out, self.p)?;
        let (_, t) = self.pass(theta, batch, Want::Third, Some(u), Some(v), None)?;
        self.mean_into(batch, &t, out);
        Ok(())
    }

    fn per_example_grads(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        chunk: usize,
        sink: &mut dyn FnMut(usize, ArrayView2<'_, f64>) -> Result<()>,
    ) -> Result<()> {
        self.check(theta, batch)?;
        let params = self.param_jets(theta, None, None);
        let ws: Vec<&Array2<f64>> = params.iter().filter_map(|(w, _)| w.c[VAL].as_ref()).collect();
        per_example_driver(
            batch,
            self.x.nrows(),
            self.p,
            chunk,
            |ix, mut rows| {
                let hs: Vec<Array2<f64>> = self
                    .forward(&params, ix)
                    .into_iter()
                    .filter_map(|h| h.c[VAL].clone())
                    .collect();
                let depth = self.depth();
                // Output cotangents G_ℓ (rows = examples), from G_L = f − y down to G_1.
                let mut gs = vec![&hs[depth] - &self.y.select(Axis(0), ix)];
                for l in (1..depth).rev() {
                    let next = gs[gs.len() - 1].dot(ws[l]);
                    gs.push(next);
                }
                gs.reverse();
                for (r, mut row) in rows.outer_iter_mut().enumerate() {
                    let row = row
                        .as_slice_mut()
                        .ok_or_else(|| ObjectiveError::invalid("rows", "not contiguous"))?;
                    for l in 0..depth {
                        let (g, h) = (gs[l].row(r), hs[l].row(r));
                        let off = self.offsets[l];
                        let ni = h.len();
                        for (a, ga) in g.iter().enumerate() {
                            for (b, hb) in h.iter().enumerate() {
                                row[off + a * ni + b] = ga * hb;
                            }
                        }
                        if self.bias {
                            let boff = off + g.len() * ni;
                            row[boff..boff + g.len()]
                                .iter_mut()
                                .zip(g.iter())
                                .for_each(|(o, x)| *o = *x);
                        }
                    }
                }
                Ok(())
            },
            sink,
        )
    }
}

impl Supervised for DeepLinear {
    fn n_outputs(&self) -> usize {
        self.widths[self.widths.len() - 1]
    }

    fn loss_kind(&self) -> LossKind {
        LossKind::Mse { half: true }
    }

    fn outputs(&self, theta: &[f64], batch: Batch<'_>) -> Result<Array2<f64>> {
        self.check(theta, batch)?;
        let params = self.param_jets(theta, None, None);
        let ix = batch.slice(0, batch.len(self.x.nrows()));
        let mut hs = self.forward(&params, &ix);
        Ok(hs.pop().and_then(|h| h.c[VAL].clone()).unwrap_or_default())
    }

    fn loss_grad_with_targets(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        targets: Targets<'_>,
        grad: &mut [f64],
    ) -> Result<f64> {
        self.check(theta, batch)?;
        check_len("grad", grad, self.p)?;
        let nb = batch.len(self.x.nrows());
        let t = value_targets(targets, nb, self.n_outputs(), "deep-linear")?;
        let (s, g) = self.pass(theta, batch, Want::Grad, None, None, Some(t))?;
        self.mean_into(batch, &g, grad);
        Ok(s / nb as f64)
    }

    fn output_jvp(&self, theta: &[f64], batch: Batch<'_>, v: &[f64]) -> Result<Array2<f64>> {
        self.check(theta, batch)?;
        check_dir("v", v, self.p)?;
        let params = self.param_jets(theta, Some(v), None);
        let ix = batch.slice(0, batch.len(self.x.nrows()));
        let mut hs = self.forward(&params, &ix);
        let out = hs.pop().and_then(|h| h.c[DU].clone());
        Ok(out.unwrap_or_else(|| Array2::zeros((ix.len(), self.n_outputs()))))
    }

    fn output_vjp(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        u: ArrayView2<'_, f64>,
        out: &mut [f64],
    ) -> Result<()> {
        self.check(theta, batch)?;
        check_len("out", out, self.p)?;
        let nb = batch.len(self.x.nrows());
        let u = value_targets(Targets::Values(u), nb, self.n_outputs(), "deep-linear")?;
        let params = self.param_jets(theta, None, None);
        let (_, g) = chunked_sum(batch, self.x.nrows(), self.p, |start, ix, _, acc| {
            let mut hs = self.forward(&params, ix);
            hs.pop();
            let seed = Jet::value(u.slice(ndarray::s![start..start + ix.len(), ..]).to_owned());
            self.backward(&params, &hs, seed, VAL, acc);
            Ok(())
        })?;
        out.copy_from_slice(&g);
        Ok(())
    }
}
