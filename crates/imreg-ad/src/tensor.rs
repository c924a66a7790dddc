//! The value algebra the tape computes with.
//!
//! Every op of the tape is written once against [`Tensor`]. Two implementations exist: [`Mat`] (plain f64
//! matrices) and [`Dual<T>`](crate::Dual) (a value with a forward-mode tangent). Running the reverse pass over
//! `Dual<Mat>` values is forward-over-reverse differentiation, so the Hessian-vector product is the gradient
//! computed on dual numbers — a composition, not a special case — and `Dual<Dual<Mat>>` gives third-order
//! directional derivatives with no extra code.
//!
//! Unary functions are primitives whose derivatives are expressed through other primitives
//! (`tanh' = 1 − tanh²`, `softplus' = sigmoid`, `erf' = (2/√π) e^{−x²}`, …), which is what makes the
//! recursion to any order work.
use crate::dual::Dual;
use crate::fastmath::vectorized;
use crate::primitive::Primitive;
use ndarray::{Array2, Axis, Zip};
use std::borrow::Cow;

/// Elementwise functions with derivatives of every order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unary {
    Tanh,
    Relu,
    Softplus,
    Sigmoid,
    /// `x Φ(x)` with the Gaussian CDF Φ (the exact, erf-based GELU).
    Gelu,
    Exp,
    Ln,
    Square,
    Recip,
    Identity,
}

/// A dense f64 matrix; vectors are `1 × c` or `n × 1` and scalars `1 × 1`.
pub type Mat = Array2<f64>;

/// The operations the tape needs. All binary operations assume equal shapes unless stated.
pub trait Tensor: Clone + Send + Sync + Sized + 'static {
    /// A constant (zero tangent) tensor.
    fn constant(a: Mat) -> Self;
    /// The innermost primal value.
    fn primal(&self) -> &Mat;
    /// `(rows, cols)`.
    fn shape(&self) -> (usize, usize) {
        self.primal().dim()
    }
    /// `op(a) · op(b)`, with `op` the transpose when the flag is set.
    fn matmul(a: &Self, ta: bool, b: &Self, tb: bool) -> Self;
    /// `matmul` when only the tangent part of the product is needed (the primal part may be left zero): the
    /// reverse pass of an HVP uses it for the gradients of leaves, whose primal parts an HVP discards.
    fn matmul_tangent_only(a: &Self, ta: bool, b: &Self, tb: bool) -> Self {
        Self::matmul(a, ta, b, tb)
    }
    /// `c += op(a) · op(b)` (dual matmuls accumulate their two tangent products in place).
    fn matmul_acc(c: &mut Self, a: &Self, ta: bool, b: &Self, tb: bool) {
        *c = c.add(&Self::matmul(a, ta, b, tb));
    }
    fn add(&self, b: &Self) -> Self;
    fn sub(&self, b: &Self) -> Self;
    /// Elementwise product.
    fn mul(&self, b: &Self) -> Self;
    /// `α x + β` elementwise.
    fn affine(&self, alpha: f64, beta: f64) -> Self;
    /// `x + c` for a constant `c` of the same shape.
    fn add_constant(&self, c: &Mat) -> Self;
    /// `x ⊙ c` for a constant `c` of the same shape.
    fn mul_constant(&self, c: &Mat) -> Self;
    /// `x + 1 bᵀ`: adds the `1 × c` row `b` to every row.
    fn add_row(&self, b: &Self) -> Self;
    /// PyTorch's `nn.Linear`, `x Wᵀ + 1 bᵀ` for `x: n × in`, `W: out × in` and the row `b: 1 × out`.
    fn linear(x: &Self, w: &Self, b: Option<&Self>) -> Self {
        let z = Self::matmul(x, false, w, true);
        match b {
            Some(b) => z.add_row(b),
            None => z,
        }
    }
    /// Column sums, `1 × c`.
    fn sum_rows(&self) -> Self;
    /// Row sums, `n × 1`.
    fn sum_cols(&self) -> Self;
    /// Sum of all entries, `1 × 1`.
    fn sum_all(&self) -> Self;
    /// Broadcasts a `1 × 1`, `1 × c` or `n × 1` tensor to `rows × cols`.
    fn broadcast_to(&self, rows: usize, cols: usize) -> Self;
    /// `x ⊙ s` for a `1 × 1` tensor `s`.
    fn mul_scalar(&self, s: &Self) -> Self;
    /// Row-wise `log softmax`.
    fn log_softmax_rows(&self) -> Self;
    /// `n × 1`: entry `(i, labels[i])` of each row.
    fn pick(&self, labels: &[usize]) -> Self;
    fn tanh(&self) -> Self;
    fn sigmoid(&self) -> Self;
    /// `log(1 + eˣ)`, computed stably.
    fn softplus(&self) -> Self;
    fn exp(&self) -> Self;
    fn ln(&self) -> Self;
    fn recip(&self) -> Self;
    fn erf(&self) -> Self;
    /// The Heaviside step `1[x > 0]` of the primal, a constant.
    fn step(&self) -> Self;
    /// `L(x)` for a **linear** map `L` of matrices (a gather, scatter, permutation, reshape, window sum, …),
    /// which may change the shape. Being linear, `L` is its own derivative: on dual values it is applied to
    /// the value and to the tangent alike, so an op written through it differentiates to every order.
    fn linear_map(&self, f: &dyn Fn(&Mat) -> Mat) -> Self;
    /// The forward rule of a [`Primitive`] on values of this type: `P::forward` on plain values; on dual values
    /// `P::forward` on the primals and `P::jvp` for the tangent, so the primitive's own tangent rule is what
    /// forward mode (and every HVP) uses.
    fn apply_primitive<P: Primitive>(prim: &P, inputs: &[&Self]) -> Self {
        prim.forward(inputs)
    }

    // ---- kernel hooks: generic definitions, overridden by fused loops where it pays -----------------------

    /// `f(x)` elementwise.
    fn unary(&self, f: Unary) -> Self {
        generic_unary(f, self)
    }
    /// `gy ⊙ f'(x)`, given `x`, `y = f(x)` and the cotangent `gy`.
    fn unary_backward(f: Unary, x: &Self, y: &Self, gy: &Self) -> Self {
        generic_unary_backward(f, x, y, gy)
    }
    /// [`Tensor::unary_backward`] taking the cotangent by value, so that the result may reuse its buffer.
    fn unary_backward_owned(f: Unary, x: &Self, y: &Self, gy: Self) -> Self {
        Self::unary_backward(f, x, y, &gy)
    }
    /// `f` on dual values with this primal type (what `Dual<Self>::unary` runs).
    fn unary_dual(f: Unary, x: &Dual<Self>) -> Dual<Self> {
        generic_unary(f, x)
    }
    /// `unary_backward` on dual values with this primal type.
    fn unary_backward_dual(f: Unary, x: &Dual<Self>, y: &Dual<Self>, gy: &Dual<Self>) -> Dual<Self> {
        generic_unary_backward(f, x, y, gy)
    }
}

/// Φ(x) = ½(1 + erf(x/√2)).
pub fn normal_cdf<T: Tensor>(x: &T) -> T {
    x.affine(std::f64::consts::FRAC_1_SQRT_2, 0.0)
        .erf()
        .affine(0.5, 0.5)
}

/// `f(x)` through primitives (never through [`Tensor::unary`], so the hooks cannot recurse).
pub fn generic_unary<T: Tensor>(f: Unary, x: &T) -> T {
    match f {
        Unary::Tanh => x.tanh(),
        Unary::Relu => x.mul(&x.step()),
        Unary::Softplus => x.softplus(),
        Unary::Sigmoid => x.sigmoid(),
        Unary::Gelu => x.mul(&normal_cdf(x)),
        Unary::Exp => x.exp(),
        Unary::Ln => x.ln(),
        Unary::Square => x.mul(x),
        Unary::Recip => x.recip(),
        Unary::Identity => x.clone(),
    }
}

/// `gy ⊙ f'(x)`, with `f'` written through primitives so that it is itself differentiable.
pub fn generic_unary_backward<T: Tensor>(f: Unary, x: &T, y: &T, gy: &T) -> T {
    let d = match f {
        Unary::Tanh => y.mul(y).affine(-1.0, 1.0),
        Unary::Relu => x.step(),
        Unary::Softplus => x.sigmoid(),
        Unary::Sigmoid => y.mul(&y.affine(-1.0, 1.0)),
        Unary::Gelu => {
            // Φ(x) + x φ(x), φ(x) = e^{−x²/2}/√(2π)
            let phi = x
                .mul(x)
                .affine(-0.5, 0.0)
                .exp()
                .affine(1.0 / (2.0 * std::f64::consts::PI).sqrt(), 0.0);
            normal_cdf(x).add(&x.mul(&phi))
        }
        Unary::Exp => y.clone(),
        Unary::Ln => x.recip(),
        Unary::Square => x.affine(2.0, 0.0),
        Unary::Recip => y.mul(y).affine(-1.0, 0.0),
        Unary::Identity => return gy.clone(),
    };
    gy.mul(&d)
}

// Outputs are collected without zero-filling first: at small sizes the memset of fresh buffers was a fifth of
// an HVP's instructions. Row-major operands (every tape value) go through plain slices in loops compiled for
// the CPU's vector width (`vectorized`; ndarray's `Zip` collection was 9% of a tiny MLP's gradient, the
// slice loops half that). Other layouts fall back to `Zip`.
fn map3(a: &Mat, b: &Mat, c: &Mat, f: impl Fn(f64, f64, f64) -> f64 + Sync + Send) -> Mat {
    debug_assert!(a.dim() == b.dim() && a.dim() == c.dim());
    match (a.as_slice(), b.as_slice(), c.as_slice()) {
        (Some(xa), Some(xb), Some(xc)) => {
            let out = vectorized(
                #[inline(always)]
                || {
                    xa.iter()
                        .zip(xb)
                        .zip(xc)
                        .map(|((&x, &y), &z)| f(x, y, z))
                        .collect()
                },
            );
            Mat::from_shape_vec(a.dim(), out).expect("same length")
        }
        _ => Zip::from(a).and(b).and(c).map_collect(|&x, &y, &z| f(x, y, z)),
    }
}

fn map4(a: &Mat, b: &Mat, c: &Mat, d: &Mat, f: impl Fn(f64, f64, f64, f64) -> f64 + Sync + Send) -> Mat {
    debug_assert!(a.dim() == b.dim() && a.dim() == c.dim() && a.dim() == d.dim());
    match (a.as_slice(), b.as_slice(), c.as_slice(), d.as_slice()) {
        (Some(xa), Some(xb), Some(xc), Some(xd)) => {
            let out = vectorized(
                #[inline(always)]
                || {
                    xa.iter()
                        .zip(xb)
                        .zip(xc.iter().zip(xd))
                        .map(|((&w, &x), (&y, &z))| f(w, x, y, z))
                        .collect()
                },
            );
            Mat::from_shape_vec(a.dim(), out).expect("same length")
        }
        _ => Zip::from(a)
            .and(b)
            .and(c)
            .and(d)
            .map_collect(|&w, &x, &y, &z| f(w, x, y, z)),
    }
}

fn map(a: &Mat, f: impl Fn(f64) -> f64 + Sync + Send) -> Mat {
    match a.as_slice() {
        Some(xa) => {
            let out = vectorized(
                #[inline(always)]
                || xa.iter().map(|&x| f(x)).collect(),
            );
            Mat::from_shape_vec(a.dim(), out).expect("same length")
        }
        None => a.mapv(f),
    }
}

fn zip(a: &Mat, b: &Mat, f: impl Fn(f64, f64) -> f64 + Sync + Send) -> Mat {
    debug_assert_eq!(a.dim(), b.dim());
    match (a.as_slice(), b.as_slice()) {
        (Some(xa), Some(xb)) => {
            let out = vectorized(
                #[inline(always)]
                || xa.iter().zip(xb).map(|(&x, &y)| f(x, y)).collect(),
            );
            Mat::from_shape_vec(a.dim(), out).expect("same length")
        }
        _ => Zip::from(a).and(b).map_collect(|&x, &y| f(x, y)),
    }
}

/// `g ↦ k(u, g)` elementwise over the cotangent `g`, in `g`'s own buffer when it is owned and row-major.
fn backward_pass(u: &Mat, g: Cow<'_, Mat>, k: impl Fn(f64, f64) -> f64 + Sync + Send) -> Mat {
    match g {
        Cow::Owned(mut g) => {
            if let (Some(us), Some(gs)) = (u.as_slice(), g.as_slice_mut()) {
                vectorized(
                    #[inline(always)]
                    || gs.iter_mut().zip(us).for_each(|(g, &u)| *g = k(u, *g)),
                );
                g
            } else {
                zip(u, &g, k)
            }
        }
        Cow::Borrowed(g) => zip(u, g, k),
    }
}

/// `g ⊙ f'(x)` in one pass over `x` or `y = f(x)` for the common activations (through primitives otherwise).
fn fused_unary_backward(f: Unary, x: &Mat, y: &Mat, g: Cow<'_, Mat>) -> Mat {
    match f {
        Unary::Tanh => backward_pass(y, g, |y, g| g * (1.0 - y * y)),
        Unary::Relu => backward_pass(x, g, |x, g| if x > 0.0 { g } else { 0.0 }),
        Unary::Sigmoid => backward_pass(y, g, |s, g| g * s * (1.0 - s)),
        Unary::Softplus => backward_pass(x, g, |x, g| g * sigmoid(x)),
        Unary::Exp => backward_pass(y, g, |y, g| g * y),
        Unary::Square => backward_pass(x, g, |x, g| 2.0 * g * x),
        Unary::Identity => g.into_owned(),
        _ => generic_unary_backward(f, x, y, &g),
    }
}

/// `op(a) · op(b)` (see [`crate::matmul`]).
pub fn gemm(a: &Mat, ta: bool, b: &Mat, tb: bool) -> Mat {
    let av = if ta { a.t() } else { a.view() };
    let bv = if tb { b.t() } else { b.view() };
    crate::matmul::matmul(av, bv)
}

/// The error function, to about 1e-16 relative (Abramowitz–Stegun 7.1.26 is far too coarse for
/// derivative checks, so this uses the series for |x| < 2.5 and a continued fraction beyond).
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    let ax = x.abs();
    let r = if ax < 2.5 {
        // erf(x) = 2/√π Σ (-1)^n x^{2n+1} / (n! (2n+1))
        let x2 = ax * ax;
        let mut term = ax;
        let mut sum = ax;
        let mut n = 0.0;
        // `<=`, not `<`: at x = 0 (and for subnormal x, where the bound underflows) every term is 0 and the
        // strict test never held, so erf(0) — hence GELU at 0 — did not return. The cap is far above the
        // ~40 terms that |x| < 2.5 needs.
        while n < 200.0 {
            n += 1.0;
            term *= -x2 / n;
            let add = term / (2.0 * n + 1.0);
            sum += add;
            if add.abs() <= 1e-17 * sum.abs() {
                break;
            }
        }
        sum * std::f64::consts::FRAC_2_SQRT_PI
    } else if ax > 6.0 {
        1.0
    } else {
        // erfc(x) = e^{-x²}/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + …)))) (Lentz)
        let mut f = ax;
        let mut c = ax;
        let mut d = 0.0;
        for k in 1..200 {
            let a = k as f64 / 2.0;
            d = ax + a * d;
            d = 1.0 / d;
            c = ax + a / c;
            let delta = c * d;
            f *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        1.0 - (-ax * ax).exp() / (f * std::f64::consts::PI.sqrt())
    };
    r.copysign(x)
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

impl Tensor for Mat {
    fn constant(a: Mat) -> Self {
        a
    }
    fn primal(&self) -> &Mat {
        self
    }
    fn matmul(a: &Self, ta: bool, b: &Self, tb: bool) -> Self {
        gemm(a, ta, b, tb)
    }
    fn matmul_acc(c: &mut Self, a: &Self, ta: bool, b: &Self, tb: bool) {
        let av = if ta { a.t() } else { a.view() };
        let bv = if tb { b.t() } else { b.view() };
        crate::matmul::gemm_into(&mut c.view_mut(), av, bv, true);
    }
    /// The bias rows are written first and the product is accumulated onto them by the GEMM kernel: one
    /// output buffer and no separate pass for the bias (the separate `add_row` was 5% of a tiny MLP's
    /// gradient).
    fn linear(x: &Self, w: &Self, b: Option<&Self>) -> Self {
        let Some(b) = b else {
            return gemm(x, false, w, true);
        };
        let mut out = match b.as_slice() {
            Some(row) => {
                // The row once, then the filled part copied after itself (log₂ n copies, not n).
                let len = x.nrows() * row.len();
                let mut v = Vec::with_capacity(len);
                if len > 0 {
                    v.extend_from_slice(row);
                    while v.len() < len {
                        let more = v.len().min(len - v.len());
                        v.extend_from_within(..more);
                    }
                }
                Mat::from_shape_vec((x.nrows(), row.len()), v).expect("same length")
            }
            None => b.broadcast_to(x.nrows(), b.ncols()),
        };
        crate::matmul::gemm_into(&mut out.view_mut(), x.view(), w.t(), true);
        out
    }
    fn add(&self, b: &Self) -> Self {
        zip(self, b, |x, y| x + y)
    }
    fn sub(&self, b: &Self) -> Self {
        zip(self, b, |x, y| x - y)
    }
    fn mul(&self, b: &Self) -> Self {
        zip(self, b, |x, y| x * y)
    }
    fn affine(&self, alpha: f64, beta: f64) -> Self {
        map(self, |x| alpha * x + beta)
    }
    fn add_constant(&self, c: &Mat) -> Self {
        self.add(c)
    }
    fn mul_constant(&self, c: &Mat) -> Self {
        self.mul(c)
    }
    fn add_row(&self, b: &Self) -> Self {
        match (self.as_slice(), b.as_slice()) {
            (Some(xs), Some(row)) if self.ncols() > 0 => {
                let mut out = xs.to_vec();
                vectorized(
                    #[inline(always)]
                    || {
                        for o in out.chunks_exact_mut(row.len()) {
                            o.iter_mut().zip(row).for_each(|(o, &r)| *o += r);
                        }
                    },
                );
                Mat::from_shape_vec(self.dim(), out).expect("same length")
            }
            _ => self + &b.row(0),
        }
    }
    fn sum_rows(&self) -> Self {
        // Each entry is summed over the rows in row order. Row-major input is walked in blocks of 8 columns
        // whose partial sums stay in registers for all rows (accumulating into the output row through
        // memory was 6% of a tiny MLP's gradient); ndarray's `sum_axis(Axis(0))` did not vectorize.
        const BLOCK: usize = 8;
        let c = self.ncols();
        let mut out = Mat::zeros((1, c));
        let acc = out.as_slice_mut().expect("a new row is contiguous");
        match self.as_slice() {
            Some(xs) if c > 0 => vectorized(
                #[inline(always)]
                || {
                    let mut j = 0;
                    while j + BLOCK <= c {
                        let mut block = [0.0; BLOCK];
                        for row in xs.chunks_exact(c) {
                            block
                                .iter_mut()
                                .zip(&row[j..j + BLOCK])
                                .for_each(|(a, &v)| *a += v);
                        }
                        acc[j..j + BLOCK].copy_from_slice(&block);
                        j += BLOCK;
                    }
                    for (k, a) in acc.iter_mut().enumerate().skip(j) {
                        *a = xs[k..].iter().step_by(c).fold(0.0, |s, &v| s + v);
                    }
                },
            ),
            _ => {
                for row in self.rows() {
                    acc.iter_mut().zip(row.iter()).for_each(|(a, &v)| *a += v);
                }
            }
        }
        out
    }
    fn sum_cols(&self) -> Self {
        self.sum_axis(Axis(1)).insert_axis(Axis(1))
    }
    fn sum_all(&self) -> Self {
        Mat::from_elem((1, 1), self.sum())
    }
    fn broadcast_to(&self, rows: usize, cols: usize) -> Self {
        match self.broadcast((rows, cols)) {
            Some(v) => v.to_owned(),
            None => panic!("cannot broadcast {:?} to ({rows}, {cols})", self.dim()),
        }
    }
    fn mul_scalar(&self, s: &Self) -> Self {
        let s = s[(0, 0)];
        map(self, |x| x * s)
    }
    fn log_softmax_rows(&self) -> Self {
        let mut out = self.clone();
        for mut row in out.rows_mut() {
            let m = row.fold(f64::NEG_INFINITY, |m, &x| m.max(x));
            let lse = m + row.iter().map(|&x| (x - m).exp()).sum::<f64>().ln();
            row.mapv_inplace(|x| x - lse);
        }
        out
    }
    fn pick(&self, labels: &[usize]) -> Self {
        Mat::from_shape_fn((self.nrows(), 1), |(i, _)| self[(i, labels[i])])
    }
    fn tanh(&self) -> Self {
        match self.as_slice() {
            Some(xs) => Mat::from_shape_vec(self.dim(), crate::fastmath::tanh_vec(xs)).expect("same length"),
            None => map(self, crate::fastmath::tanh),
        }
    }
    fn sigmoid(&self) -> Self {
        map(self, sigmoid)
    }
    fn softplus(&self) -> Self {
        map(self, softplus)
    }
    fn exp(&self) -> Self {
        map(self, f64::exp)
    }
    fn ln(&self) -> Self {
        map(self, f64::ln)
    }
    fn recip(&self) -> Self {
        map(self, |x| 1.0 / x)
    }
    fn erf(&self) -> Self {
        map(self, erf)
    }
    fn step(&self) -> Self {
        map(self, |x| if x > 0.0 { 1.0 } else { 0.0 })
    }
    fn linear_map(&self, f: &dyn Fn(&Mat) -> Mat) -> Self {
        f(self)
    }

    fn unary(&self, f: Unary) -> Self {
        match f {
            Unary::Relu => map(self, |x| if x > 0.0 { x } else { 0.0 }),
            Unary::Gelu => map(self, |x| {
                x * 0.5 * (1.0 + erf(x * std::f64::consts::FRAC_1_SQRT_2))
            }),
            _ => generic_unary(f, self),
        }
    }

    fn unary_backward(f: Unary, x: &Self, y: &Self, gy: &Self) -> Self {
        fused_unary_backward(f, x, y, Cow::Borrowed(gy))
    }

    fn unary_backward_owned(f: Unary, x: &Self, y: &Self, gy: Self) -> Self {
        fused_unary_backward(f, x, y, Cow::Owned(gy))
    }

    fn unary_dual(f: Unary, x: &Dual<Self>) -> Dual<Self> {
        match (f, &x.t) {
            (Unary::Tanh, Some(xt)) => {
                let y = x.p.tanh();
                let yt = zip(&y, xt, |y, t| t * (1.0 - y * y));
                Dual::new(y, Some(yt))
            }
            (Unary::Relu, Some(xt)) => Dual::new(
                x.p.unary(Unary::Relu),
                Some(zip(&x.p, xt, |x, t| if x > 0.0 { t } else { 0.0 })),
            ),
            (_, None) => Dual::new(x.p.unary(f), None),
            _ => generic_unary(f, x),
        }
    }

    fn unary_backward_dual(f: Unary, x: &Dual<Self>, y: &Dual<Self>, gy: &Dual<Self>) -> Dual<Self> {
        match f {
            Unary::Tanh | Unary::Relu | Unary::Identity => {
                let p = Self::unary_backward(f, &x.p, &y.p, &gy.p);
                let t = unary_backward_tangent(
                    f,
                    (&x.p, x.t.as_ref()),
                    (&y.p, y.t.as_ref()),
                    (&gy.p, gy.t.as_ref()),
                );
                Dual::new(p, t)
            }
            _ => generic_unary_backward(f, x, y, gy),
        }
    }
}

/// The tangent of `gx = unary_backward(f, x, y, g)` (`g ⊙ f'(x)`) for the tangents `ẋ`, `ẏ = f'(x) ẋ` and `ġ`,
/// each `(primal, tangent)` with `None` for zero: `ġ f'(x) + g f''(x) ẋ`. Fused loops for tanh, ReLU and the
/// identity; the other functions differentiate their generic composition on dual values.
pub(crate) fn unary_backward_tangent(
    f: Unary,
    (x, xt): (&Mat, Option<&Mat>),
    (y, yt): (&Mat, Option<&Mat>),
    (g, gt): (&Mat, Option<&Mat>),
) -> Option<Mat> {
    match f {
        // gx = g (1 − y²);  ġx = ġ (1 − y²) − 2 g y (1 − y²) ẋ
        Unary::Tanh => match (xt, gt) {
            (Some(xt), Some(gt)) => Some(map4(y, g, xt, gt, |y, g, xd, gd| {
                let d = 1.0 - y * y;
                gd * d - 2.0 * g * y * d * xd
            })),
            (Some(xt), None) => Some(map3(y, g, xt, |y, g, xd| -2.0 * g * y * (1.0 - y * y) * xd)),
            (None, Some(gt)) => Some(Mat::unary_backward(f, x, y, gt)),
            (None, None) => None,
        },
        Unary::Relu | Unary::Identity => gt.map(|gt| Mat::unary_backward(f, x, y, gt)),
        _ => {
            let dual = |p: &Mat, t: Option<&Mat>| Dual::new(p.clone(), t.cloned());
            generic_unary_backward(f, &dual(x, xt), &dual(y, yt), &dual(g, gt)).t
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_reference_values() {
        // Reference values of erf to 16 digits (Abramowitz & Stegun tables / mpmath).
        let cases = [
            (0.1, 0.1124629160182849),
            (0.5, 0.5204998778130465),
            (1.0, 0.8427007929497149),
            (2.0, 0.9953222650189527),
            (3.0, 0.9999779095030014),
            (4.5, 0.9999999998033839),
        ];
        for (x, want) in cases {
            assert!(
                (erf(x) - want).abs() < 2e-16 * 4.0,
                "erf({x}) = {} vs {want}",
                erf(x)
            );
            assert!((erf(-x) + want).abs() < 2e-16 * 4.0);
        }
    }

    #[test]
    fn sum_rows_adds_each_column_in_row_order_bitwise_for_any_width_and_layout() {
        for c in [0, 1, 7, 8, 9, 17, 32] {
            let a = Mat::from_shape_fn((13, c), |(i, j)| {
                ((i * 31 + j * 7) as f64 * 0.37).sin() * 1e3_f64.powi((i % 3) as i32)
            });
            let want: Vec<u64> = (0..c)
                .map(|j| (0..13).fold(0.0, |s, i| s + a[(i, j)]).to_bits())
                .collect();
            let bits = |m: &Mat| m.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a.sum_rows()), want, "width {c}");
            // A column-major matrix takes the general path, with the same order.
            let col_major = a.t().as_standard_layout().into_owned().reversed_axes();
            assert!(col_major.as_slice().is_none() || c <= 1);
            assert_eq!(bits(&col_major.sum_rows()), want, "width {c}, column-major");
        }
    }

    #[test]
    fn the_in_place_backward_pass_equals_the_allocating_one_bitwise() {
        let x = Mat::from_shape_fn((7, 9), |(i, j)| ((i * 9 + j) as f64 * 0.61).sin() * 3.0);
        let g = Mat::from_shape_fn((7, 9), |(i, j)| ((i + 2 * j) as f64 * 0.37).cos());
        let bits = |m: &Mat| m.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for f in [
            Unary::Tanh,
            Unary::Relu,
            Unary::Sigmoid,
            Unary::Softplus,
            Unary::Exp,
            Unary::Square,
            Unary::Identity,
            Unary::Gelu,
        ] {
            let y = x.unary(f);
            let want = Mat::unary_backward(f, &x, &y, &g);
            let got = Mat::unary_backward_owned(f, &x, &y, g.clone());
            assert_eq!(bits(&got), bits(&want), "{f:?}");
            // and each entry is g·f'(x) computed on scalars
            if f == Unary::Tanh {
                for ((&gi, &yi), &w) in g.iter().zip(y.iter()).zip(want.iter()) {
                    assert_eq!(w.to_bits(), (gi * (1.0 - yi * yi)).to_bits());
                }
            }
        }
    }

    #[test]
    fn erf_returns_at_zero_and_at_subnormal_arguments() {
        assert_eq!(erf(0.0).to_bits(), 0.0f64.to_bits());
        assert_eq!(erf(-0.0).to_bits(), (-0.0f64).to_bits());
        for x in [1e-310, -5e-324, 1e-200] {
            let want = x * std::f64::consts::FRAC_2_SQRT_PI;
            assert!(
                (erf(x) - want).abs() <= 1e-16 * want.abs(),
                "erf({x:e}) = {:e}",
                erf(x)
            );
        }
    }

    #[test]
    fn softplus_and_sigmoid_are_stable() {
        assert_eq!(softplus(1000.0), 1000.0);
        assert!(softplus(-1000.0) >= 0.0 && softplus(-1000.0) < 1e-300);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
    }
}
