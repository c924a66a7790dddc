//! A fused, hand-written MLP engine for the penalties: one forward/backward pass gives the loss, `∇_θ` and
//! `∇_x`, and a Pearlmutter R-pass on the cached activations gives the exact directional derivative of the
//! gradient, `R{∇_θ φ} = H_θθ v + H_θx u`, for a parameter direction `v` and/or an input direction `u`.
//!
//! So `∇_θ‖∇_θφ‖² = 2 H g` costs one gradient pass plus one R-pass (about two more gradient passes, fewer
//! when the first layer dominates, since `R{x} = 0` there), and the input-gradient penalty
//! `∇_θ‖∇_xφ‖² = 2 (∂²φ/∂θ∂x) ∇_xφ` is the same R-pass with an input direction.
//!
//! Layout and conventions are those of [`imreg_objective::models::Mlp`] (PyTorch `nn.Linear`: weight
//! `[out, in]` row-major then bias; MSE `c‖f − y‖²` with `c = ½` or `1`; mean over the batch), which
//! [`Net`] also wraps as the independent oracle (third-order derivatives and the [`Supervised`] outputs
//! are delegated to it, and the tests compare the engine with it).
use crate::reg_error::{RegError, RegResult};
use imreg_objective::models::{Activation, Mlp, MlpSpec};
use imreg_objective::{Batch, LossKind, Objective, ObjectiveError, Supervised, Targets};
use ndarray::{Array1, Array2, ArrayView2, Axis};

/// The targets of the dataset of a [`Net`].
#[derive(Clone, Debug)]
pub enum NetTargets {
    /// Class labels (cross-entropy, or one-hot targets for an MSE classifier).
    Labels(Vec<usize>),
    /// Regression targets `N × C`.
    Values(Array2<f64>),
}

/// What the scalar `φ` of one pass is.
#[derive(Clone, Copy, Debug)]
pub enum Head<'a> {
    /// Mean softmax cross-entropy with these labels (one per batch row).
    Labels(&'a [usize]),
    /// Mean `c‖f − y‖²` with these targets (the spec's `c`).
    Values(ArrayView2<'a, f64>),
    /// `φ = (1/m) Σ_i ⟨u_i, f(x_i)⟩` (the Jacobian penalties AJ and UJ).
    OutputDot(ArrayView2<'a, f64>),
}

/// The cached forward/backward pass of one batch.
#[derive(Clone, Debug)]
pub struct Pass {
    /// `φ`.
    pub value: f64,
    /// `∇_θ φ` (flat, parameter order).
    pub grad: Vec<f64>,
    /// `∇_x φ`, `m × d_in` (the gradient with respect to each row's input).
    pub input_grad: Array2<f64>,
    /// Softmax probabilities of the output (cross-entropy heads only).
    probs: Option<Array2<f64>>,
    /// Layer inputs `a_0 = x, a_1, …, a_{L−1}`.
    acts: Vec<Array2<f64>>,
    /// Pre-activations `z_0, …, z_{L−1}` (`z_{L−1} = f`).
    zs: Vec<Array2<f64>>,
    /// Pre-activation cotangents `δ_ℓ = ∂φ/∂z_ℓ`.
    deltas: Vec<Array2<f64>>,
    /// `∂φ/∂a_ℓ = δ_ℓ W_ℓ` for `ℓ ≥ 0` (index ℓ: the cotangent of the layer-ℓ input).
    dacts: Vec<Array2<f64>>,
    head_kind: HeadKind,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum HeadKind {
    CrossEntropy,
    Mse(f64),
    Linear,
}

/// An MLP on a fixed dataset with the fused engine; implements [`Objective`] and [`Supervised`].
#[derive(Clone, Debug)]
pub struct Net {
    spec: MlpSpec,
    x: Array2<f64>,
    targets: NetTargets,
    mlp: Mlp,
    shapes: Vec<(usize, usize)>,
}

fn act(a: Activation, z: f64) -> RegResult<(f64, f64, f64)> {
    // (σ(z), σ'(z), σ''(z))
    Ok(match a {
        Activation::Identity => (z, 1.0, 0.0),
        Activation::Relu => {
            if z > 0.0 {
                (z, 1.0, 0.0)
            } else {
                (0.0, 0.0, 0.0)
            }
        }
        Activation::Tanh => {
            let t = z.tanh();
            let d = 1.0 - t * t;
            (t, d, -2.0 * t * d)
        }
        Activation::Sigmoid => {
            let s = imreg_objective::models::sigmoid(z);
            let d = s * (1.0 - s);
            (s, d, d * (1.0 - 2.0 * s))
        }
        Activation::Softplus => {
            let s = imreg_objective::models::sigmoid(z);
            (imreg_objective::models::softplus(z), s, s * (1.0 - s))
        }
        Activation::Gelu => {
            return Err(RegError::Unsupported {
                penalty: "Net engine",
                needs: "an activation among identity, relu, tanh, sigmoid, softplus",
                model: "gelu".into(),
            })
        }
    })
}

impl Net {
    /// A net with its dataset. Cross-entropy needs `Labels`; MSE takes `Values` (or `Labels`, one-hot).
    pub fn new(spec: MlpSpec, x: Array2<f64>, targets: NetTargets) -> RegResult<Self> {
        act(spec.activation, 0.0)?;
        let mlp = match &targets {
            NetTargets::Labels(l) => Mlp::classification(spec.clone(), x.clone(), l.clone())?,
            NetTargets::Values(y) => Mlp::regression(spec.clone(), x.clone(), y.clone())?,
        };
        let targets = match (targets, spec.loss) {
            (NetTargets::Labels(l), LossKind::Mse { .. }) => {
                let c = *spec.widths.last().unwrap_or(&0);
                let mut y = Array2::zeros((x.nrows(), c));
                l.iter().enumerate().for_each(|(i, &k)| y[(i, k)] = 1.0);
                NetTargets::Values(y)
            }
            (t, _) => t,
        };
        let shapes = spec.layer_shapes();
        Ok(Net {
            spec,
            x,
            targets,
            mlp,
            shapes,
        })
    }

    pub fn spec(&self) -> &MlpSpec {
        &self.spec
    }

    /// The [`Mlp`] on the same data (the autodiff oracle).
    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }

    /// The inputs `N × d_in`.
    pub fn inputs(&self) -> &Array2<f64> {
        &self.x
    }

    /// The dataset's targets.
    pub fn targets(&self) -> &NetTargets {
        &self.targets
    }

    /// `true` for a softmax cross-entropy classifier.
    pub fn is_classifier(&self) -> bool {
        matches!(self.spec.loss, LossKind::CrossEntropy)
    }

    /// Rows of the batch as owned indices (validated).
    pub fn rows(&self, batch: Batch<'_>) -> RegResult<Vec<usize>> {
        batch.validate(self.x.nrows())?;
        Ok(batch.iter(self.x.nrows()).collect())
    }

    /// The batch's inputs.
    pub fn batch_x(&self, rows: &[usize]) -> Array2<f64> {
        self.x.select(Axis(0), rows)
    }

    /// The true labels of the batch rows (cross-entropy models).
    pub fn labels_of(&self, rows: &[usize]) -> Option<Vec<usize>> {
        match &self.targets {
            NetTargets::Labels(l) => Some(rows.iter().map(|&i| l[i]).collect()),
            NetTargets::Values(_) => None,
        }
    }

    /// The true regression targets of the batch rows (MSE models).
    pub fn values_of(&self, rows: &[usize]) -> Option<Array2<f64>> {
        match &self.targets {
            NetTargets::Values(y) => Some(y.select(Axis(0), rows)),
            NetTargets::Labels(_) => None,
        }
    }

    fn check_theta(&self, theta: &[f64]) -> RegResult<()> {
        imreg_objective::check_len("theta", theta, self.dim())?;
        imreg_objective::check_finite("theta", theta)?;
        Ok(())
    }

    fn layer<'t>(&self, theta: &'t [f64], l: usize) -> (ArrayView2<'t, f64>, Option<&'t [f64]>) {
        let mut off = 0;
        for (k, &(o, i)) in self.shapes.iter().enumerate() {
            let wlen = o * i;
            if k == l {
                let w = ArrayView2::from_shape((o, i), &theta[off..off + wlen]).expect("checked length");
                let b = self.spec.bias.then(|| &theta[off + wlen..off + wlen + o]);
                return (w, b);
            }
            off += wlen + if self.spec.bias { o } else { 0 };
        }
        unreachable!("layer index within the spec")
    }

    fn write_layer(&self, out: &mut [f64], l: usize, gw: &Array2<f64>, gb: Option<&Array1<f64>>) {
        let mut off = 0;
        for (k, &(o, i)) in self.shapes.iter().enumerate() {
            let wlen = o * i;
            if k == l {
                out[off..off + wlen]
                    .iter_mut()
                    .zip(gw.iter())
                    .for_each(|(d, s)| *d = *s);
                if let Some(gb) = gb {
                    out[off + wlen..off + wlen + o]
                        .iter_mut()
                        .zip(gb.iter())
                        .for_each(|(d, s)| *d = *s);
                }
                return;
            }
            off += wlen + if self.spec.bias { o } else { 0 };
        }
    }

    /// The forward and backward pass of `φ` on the inputs `x` (`m × d_in`) with the given head.
    pub fn pass(&self, theta: &[f64], x: Array2<f64>, head: Head<'_>) -> RegResult<Pass> {
        self.check_theta(theta)?;
        let m = x.nrows();
        let layers = self.shapes.len();
        let c = self.n_outputs();
        if m == 0 || x.ncols() != self.spec.widths[0] {
            return Err(RegError::invalid(
                "x",
                format!("must be m × {} with m ≥ 1", self.spec.widths[0]),
            ));
        }
        let mut acts = vec![x];
        let mut zs = Vec::with_capacity(layers);
        for l in 0..layers {
            let (w, b) = self.layer(theta, l);
            let mut z = acts[l].dot(&w.t());
            if let Some(b) = b {
                z.rows_mut()
                    .into_iter()
                    .for_each(|mut r| r.iter_mut().zip(b).for_each(|(v, bb)| *v += bb));
            }
            if l + 1 < layers {
                let mut a = z.clone();
                for v in a.iter_mut() {
                    *v = act(self.spec.activation, *v)?.0;
                }
                acts.push(a);
            }
            zs.push(z);
        }
        let f = &zs[layers - 1];
        let inv_m = 1.0 / m as f64;
        let (value, delta, probs, head_kind) = match head {
            Head::Labels(labels) => {
                if labels.len() != m {
                    return Err(RegError::invalid(
                        "labels",
                        format!("need {m}, got {}", labels.len()),
                    ));
                }
                let mut p = f.clone();
                let mut loss = 0.0;
                for (i, mut row) in p.rows_mut().into_iter().enumerate() {
                    let mx = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    row.iter_mut().for_each(|v| *v = (*v - mx).exp());
                    let z: f64 = row.sum();
                    row.iter_mut().for_each(|v| *v /= z);
                    let y = labels[i];
                    if y >= c {
                        return Err(ObjectiveError::LabelOutOfRange {
                            index: i,
                            label: y as i64,
                            classes: c,
                        }
                        .into());
                    }
                    loss -= row[y].max(f64::MIN_POSITIVE).ln();
                }
                let mut d = p.clone();
                for (i, mut row) in d.rows_mut().into_iter().enumerate() {
                    row[labels[i]] -= 1.0;
                    row.iter_mut().for_each(|v| *v *= inv_m);
                }
                (loss * inv_m, d, Some(p), HeadKind::CrossEntropy)
            }
            Head::Values(y) => {
                if y.dim() != (m, c) {
                    return Err(RegError::invalid(
                        "targets",
                        format!("need {m} × {c}, got {:?}", y.dim()),
                    ));
                }
                let cc = match self.spec.loss {
                    LossKind::Mse { half: true } => 0.5,
                    LossKind::Mse { half: false } => 1.0,
                    LossKind::CrossEntropy => {
                        return Err(RegError::invalid("head", "value targets need an MSE model"))
                    }
                };
                let r = f - &y;
                let loss = cc * r.iter().map(|v| v * v).sum::<f64>() * inv_m;
                (loss, r * (2.0 * cc * inv_m), None, HeadKind::Mse(cc))
            }
            Head::OutputDot(u) => {
                if u.dim() != (m, c) {
                    return Err(RegError::invalid(
                        "u",
                        format!("need {m} × {c}, got {:?}", u.dim()),
                    ));
                }
                let v = (f * &u).sum() * inv_m;
                (v, u.to_owned() * inv_m, None, HeadKind::Linear)
            }
        };
        let mut grad = vec![0.0; self.dim()];
        let mut deltas = vec![Array2::zeros((0, 0)); layers];
        let mut dacts = vec![Array2::zeros((0, 0)); layers];
        deltas[layers - 1] = delta;
        for l in (0..layers).rev() {
            let (w, _) = self.layer(theta, l);
            let gw = deltas[l].t().dot(&acts[l]);
            let gb = self.spec.bias.then(|| deltas[l].sum_axis(Axis(0)));
            self.write_layer(&mut grad, l, &gw, gb.as_ref());
            let da = deltas[l].dot(&w);
            if l > 0 {
                let mut d = da.clone();
                for (v, z) in d.iter_mut().zip(zs[l - 1].iter()) {
                    *v *= act(self.spec.activation, *z)?.1;
                }
                deltas[l - 1] = d;
            }
            dacts[l] = da;
        }
        let input_grad = dacts[0].clone();
        Ok(Pass {
            value,
            grad,
            input_grad,
            probs,
            acts,
            zs,
            deltas,
            dacts,
            head_kind,
        })
    }

    /// The R-pass on a cached [`Pass`]: `R{∇_θ φ}` for the parameter direction `v` and the input direction
    /// `u` (`m × d_in`), i.e. `H_θθ v + H_θx u`. At least one of them must be given.
    pub fn rop(
        &self,
        theta: &[f64],
        pass: &Pass,
        v: Option<&[f64]>,
        u: Option<ArrayView2<'_, f64>>,
    ) -> RegResult<Vec<f64>> {
        let layers = self.shapes.len();
        let m = pass.acts[0].nrows();
        if let Some(v) = v {
            imreg_objective::check_len("v", v, self.dim())?;
        }
        if let Some(u) = u {
            if u.dim() != pass.acts[0].dim() {
                return Err(RegError::invalid(
                    "u",
                    format!("must be {:?}, got {:?}", pass.acts[0].dim(), u.dim()),
                ));
            }
        }
        if v.is_none() && u.is_none() {
            return Err(RegError::invalid(
                "direction",
                "give a parameter or an input direction",
            ));
        }
        // Forward R-pass: R{a_ℓ} (None = 0) and R{z_ℓ}.
        let mut r_acts: Vec<Option<Array2<f64>>> = vec![u.map(|u| u.to_owned())];
        let mut r_zs: Vec<Array2<f64>> = Vec::with_capacity(layers);
        for l in 0..layers {
            let (w, _) = self.layer(theta, l);
            let (o, _) = self.shapes[l];
            let mut rz = match &r_acts[l] {
                Some(ra) => ra.dot(&w.t()),
                None => Array2::zeros((m, o)),
            };
            if let Some(v) = v {
                let (vw, vb) = self.layer(v, l);
                rz += &pass.acts[l].dot(&vw.t());
                if let Some(vb) = vb {
                    rz.rows_mut()
                        .into_iter()
                        .for_each(|mut r| r.iter_mut().zip(vb).for_each(|(x, b)| *x += b));
                }
            }
            if l + 1 < layers {
                let mut ra = rz.clone();
                for (x, z) in ra.iter_mut().zip(pass.zs[l].iter()) {
                    *x *= act(self.spec.activation, *z)?.1;
                }
                r_acts.push(Some(ra));
            }
            r_zs.push(rz);
        }
        let inv_m = 1.0 / m as f64;
        let rf = &r_zs[layers - 1];
        let mut r_delta = match pass.head_kind {
            HeadKind::CrossEntropy => {
                let p = pass
                    .probs
                    .as_ref()
                    .ok_or_else(|| RegError::invalid("pass", "missing probabilities"))?;
                let mut out = p * rf;
                for (mut row, prow) in out.rows_mut().into_iter().zip(p.rows()) {
                    let s: f64 = row.sum();
                    row.iter_mut().zip(prow.iter()).for_each(|(x, pp)| *x -= pp * s);
                }
                out * inv_m
            }
            HeadKind::Mse(cc) => rf * (2.0 * cc * inv_m),
            HeadKind::Linear => Array2::zeros(rf.dim()),
        };
        let mut out = vec![0.0; self.dim()];
        for l in (0..layers).rev() {
            let (w, _) = self.layer(theta, l);
            let mut gw = r_delta.t().dot(&pass.acts[l]);
            if let Some(ra) = &r_acts[l] {
                gw += &pass.deltas[l].t().dot(ra);
            }
            let gb = self.spec.bias.then(|| r_delta.sum_axis(Axis(0)));
            self.write_layer(&mut out, l, &gw, gb.as_ref());
            if l > 0 {
                let mut rda = r_delta.dot(&w);
                if let Some(v) = v {
                    let (vw, _) = self.layer(v, l);
                    rda += &pass.deltas[l].dot(&vw);
                }
                // R{δ_{l−1}} = R{da} σ'(z) + da σ''(z) R{z}
                let z = &pass.zs[l - 1];
                let rz = &r_zs[l - 1];
                let da = &pass.dacts[l];
                let mut nd = Array2::zeros(rda.dim());
                for (((n, r), (zz, rzz)), d) in nd
                    .iter_mut()
                    .zip(rda.iter())
                    .zip(z.iter().zip(rz.iter()))
                    .zip(da.iter())
                {
                    let (_, d1, d2) = act(self.spec.activation, *zz)?;
                    *n = r * d1 + d * d2 * rzz;
                }
                r_delta = nd;
            }
        }
        Ok(out)
    }

    /// The pass of the dataset's own loss on the batch rows.
    pub fn loss_pass(&self, theta: &[f64], rows: &[usize]) -> RegResult<Pass> {
        let x = self.batch_x(rows);
        match &self.targets {
            NetTargets::Labels(l) => {
                let lab: Vec<usize> = rows.iter().map(|&i| l[i]).collect();
                self.pass(theta, x, Head::Labels(&lab))
            }
            NetTargets::Values(y) => {
                let yy = y.select(Axis(0), rows);
                self.pass(theta, x, Head::Values(yy.view()))
            }
        }
    }

    /// `(L_B, ∇L_B, H_B ∇L_B)`: one pass and one R-pass along its own gradient.
    pub fn grad_self_hvp(&self, theta: &[f64], rows: &[usize]) -> RegResult<(f64, Vec<f64>, Vec<f64>)> {
        let p = self.loss_pass(theta, rows)?;
        let hg = self.rop(theta, &p, Some(&p.grad), None)?;
        Ok((p.value, p.grad, hg))
    }

    /// The model outputs on the batch rows (`m × C`), by the engine's forward pass.
    pub fn forward(&self, theta: &[f64], rows: &[usize]) -> RegResult<Array2<f64>> {
        let c = self.n_outputs();
        let u = Array2::zeros((rows.len(), c));
        let p = self.pass(theta, self.batch_x(rows), Head::OutputDot(u.view()))?;
        Ok(p.zs.last().cloned().unwrap_or_else(|| Array2::zeros((0, c))))
    }

    /// Accuracy of the arg-max of the outputs against the labels (classifiers; `None` otherwise).
    pub fn accuracy(&self, theta: &[f64], batch: Batch<'_>) -> RegResult<Option<f64>> {
        let rows = self.rows(batch)?;
        let Some(labels) = self.labels_of(&rows) else {
            if let NetTargets::Values(_) = &self.targets {
                return Ok(None);
            }
            return Ok(None);
        };
        let f = self.forward(theta, &rows)?;
        let correct = f
            .rows()
            .into_iter()
            .zip(&labels)
            .filter(|(r, &y)| {
                let best =
                    r.iter().enumerate().fold(
                        (0, f64::NEG_INFINITY),
                        |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                    );
                best.0 == y
            })
            .count();
        Ok(Some(correct as f64 / rows.len() as f64))
    }
}

fn to_obj<T>(r: RegResult<T>) -> imreg_objective::Result<T> {
    r.map_err(|e| match e {
        RegError::Objective(o) => o,
        other => ObjectiveError::invalid("net", other.to_string()),
    })
}

impl Objective for Net {
    fn name(&self) -> String {
        format!("{} [fused engine]", self.mlp.name())
    }
    fn dim(&self) -> usize {
        self.mlp.dim()
    }
    fn n_examples(&self) -> usize {
        self.x.nrows()
    }
    fn loss(&self, theta: &[f64], batch: Batch<'_>) -> imreg_objective::Result<f64> {
        let rows = to_obj(self.rows(batch))?;
        Ok(to_obj(self.loss_pass(theta, &rows))?.value)
    }
    fn loss_grad(&self, theta: &[f64], batch: Batch<'_>, grad: &mut [f64]) -> imreg_objective::Result<f64> {
        imreg_objective::check_len("grad", grad, self.dim())?;
        let rows = to_obj(self.rows(batch))?;
        let p = to_obj(self.loss_pass(theta, &rows))?;
        grad.copy_from_slice(&p.grad);
        Ok(p.value)
    }
    fn hvp(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        v: &[f64],
        out: &mut [f64],
    ) -> imreg_objective::Result<()> {
        imreg_objective::check_len("out", out, self.dim())?;
        imreg_objective::check_finite("v", v)?;
        let rows = to_obj(self.rows(batch))?;
        let p = to_obj(self.loss_pass(theta, &rows))?;
        out.copy_from_slice(&to_obj(self.rop(theta, &p, Some(v), None))?);
        Ok(())
    }
    fn third_order(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        u: &[f64],
        v: &[f64],
        out: &mut [f64],
    ) -> imreg_objective::Result<()> {
        self.mlp.third_order(theta, batch, u, v, out)
    }
}

impl Supervised for Net {
    fn n_outputs(&self) -> usize {
        *self.spec.widths.last().unwrap_or(&0)
    }
    fn loss_kind(&self) -> LossKind {
        self.spec.loss
    }
    fn outputs(&self, theta: &[f64], batch: Batch<'_>) -> imreg_objective::Result<Array2<f64>> {
        self.mlp.outputs(theta, batch)
    }
    fn loss_grad_with_targets(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        targets: Targets<'_>,
        grad: &mut [f64],
    ) -> imreg_objective::Result<f64> {
        self.mlp.loss_grad_with_targets(theta, batch, targets, grad)
    }
    fn output_jvp(&self, theta: &[f64], batch: Batch<'_>, v: &[f64]) -> imreg_objective::Result<Array2<f64>> {
        self.mlp.output_jvp(theta, batch, v)
    }
    fn output_vjp(
        &self,
        theta: &[f64],
        batch: Batch<'_>,
        u: ArrayView2<'_, f64>,
        out: &mut [f64],
    ) -> imreg_objective::Result<()> {
        self.mlp.output_vjp(theta, batch, u, out)
    }
}

/// Rows `start..end` of a batch's row list (a micro-batch).
pub fn micro_rows(rows: &[usize], j: usize, size: usize) -> &[usize] {
    &rows[j * size..(j + 1) * size]
}
