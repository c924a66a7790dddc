//! Forward-mode tangents on tensors: `x + ε ẋ` with `ε² = 0`.
use crate::primitive::Primitive;
use crate::tensor::{Mat, Tensor, Unary};

/// A tensor with a forward-mode tangent. `t = None` is an exactly zero tangent (no work is spent on it, which
/// is how constants such as the data matrix stay cheap).
#[derive(Clone, Debug)]
pub struct Dual<T> {
    /// The primal value.
    pub p: T,
    /// The tangent `ẋ`, or `None` for zero.
    pub t: Option<T>,
}

impl<T: Tensor> Dual<T> {
    /// A value with the given tangent.
    pub fn new(p: T, t: Option<T>) -> Self {
        Dual { p, t }
    }

    /// The tangent, materializing zeros if it is absent.
    pub fn tangent_or_zero(&self) -> T {
        match &self.t {
            Some(t) => t.clone(),
            None => {
                let (r, c) = self.p.shape();
                T::constant(Mat::zeros((r, c)))
            }
        }
    }

    fn lin(&self, p: T, f: impl Fn(&T) -> T) -> Self {
        Dual {
            p,
            t: self.t.as_ref().map(f),
        }
    }
}

/// The sum of two optional tangents (`None` is zero).
pub fn add_opt<T: Tensor>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.add(&b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// The tangent of `op(a) · op(b)`: `op(ȧ) op(b) + op(a) op(ḃ)`, the second product accumulated in place;
/// absent tangents are zero and cost nothing.
pub(crate) fn product_tangent<T: Tensor>(
    a: &T,
    at: Option<&T>,
    ta: bool,
    b: &T,
    bt: Option<&T>,
    tb: bool,
) -> Option<T> {
    match (at, bt) {
        (Some(at), Some(bt)) => {
            let mut t = T::matmul(at, ta, b, tb);
            T::matmul_acc(&mut t, a, ta, bt, tb);
            Some(t)
        }
        (Some(at), None) => Some(T::matmul(at, ta, b, tb)),
        (None, Some(bt)) => Some(T::matmul(a, ta, bt, tb)),
        (None, None) => None,
    }
}

/// The tangent of `x Wᵀ + 1 bᵀ` ([`Tensor::linear`]): `ẋ Wᵀ + x Ẇᵀ + 1 ḃᵀ`, built by one `linear` (which
/// writes the bias tangent into the product's output) and, when both factors move, one accumulated product.
pub(crate) fn linear_tangent<T: Tensor>(
    x: &T,
    xt: Option<&T>,
    w: &T,
    wt: Option<&T>,
    bt: Option<&T>,
) -> Option<T> {
    let mut t = match (xt, wt) {
        (Some(xt), _) => T::linear(xt, w, bt),
        (None, Some(wt)) => return Some(T::linear(x, wt, bt)),
        (None, None) => return bt.map(|b| b.broadcast_to(x.shape().0, w.shape().0)),
    };
    if let Some(wt) = wt {
        T::matmul_acc(&mut t, x, false, wt, true);
    }
    Some(t)
}

// The tangent rules of the binary ops, on (primal, optional tangent) pairs: shared by the `Dual` ops below and
// by `Graph::retangent`, which replays tangents over recorded primal values.

/// The tangent of `a + b`.
pub(crate) fn sum_tangent<T: Tensor>(at: Option<&T>, bt: Option<&T>) -> Option<T> {
    match (at, bt) {
        (Some(x), Some(y)) => Some(x.add(y)),
        (x, y) => x.or(y).cloned(),
    }
}

/// The tangent of `a − b`.
pub(crate) fn difference_tangent<T: Tensor>(at: Option<&T>, bt: Option<&T>) -> Option<T> {
    match (at, bt) {
        (Some(x), Some(y)) => Some(x.sub(y)),
        (Some(x), None) => Some(x.clone()),
        (None, Some(y)) => Some(y.affine(-1.0, 0.0)),
        (None, None) => None,
    }
}

/// The tangent of `a + 1 bᵀ` for an `r × c` matrix `a` and a row `b`.
pub(crate) fn add_row_tangent<T: Tensor>(at: Option<&T>, bt: Option<&T>, r: usize, c: usize) -> Option<T> {
    match (at, bt) {
        (Some(x), Some(y)) => Some(x.add_row(y)),
        (Some(x), None) => Some(x.clone()),
        (None, Some(y)) => Some(y.broadcast_to(r, c)),
        (None, None) => None,
    }
}

/// The tangent of the elementwise product `a ⊙ b`.
pub(crate) fn elementwise_product_tangent<T: Tensor>(
    a: &T,
    at: Option<&T>,
    b: &T,
    bt: Option<&T>,
) -> Option<T> {
    add_opt(at.map(|x| x.mul(b)), bt.map(|y| a.mul(y)))
}

/// The tangent of `a ⊙ s` for a `1 × 1` tensor `s`.
pub(crate) fn scalar_product_tangent<T: Tensor>(a: &T, at: Option<&T>, s: &T, st: Option<&T>) -> Option<T> {
    add_opt(at.map(|x| x.mul_scalar(s)), st.map(|y| a.mul_scalar(y)))
}

/// The JVP of the row-wise log-softmax `y` at its input's tangent `ż`: `ż − (softmax · ż) 1ᵀ` row by row.
pub(crate) fn log_softmax_tangent<T: Tensor>(y: &T, dz: &T) -> T {
    let (r, c) = dz.shape();
    dz.sub(&y.exp().mul(dz).sum_cols().broadcast_to(r, c))
}

fn tangent_product<T: Tensor>(a: &Dual<T>, ta: bool, b: &Dual<T>, tb: bool) -> Option<T> {
    product_tangent(&a.p, a.t.as_ref(), ta, &b.p, b.t.as_ref(), tb)
}

impl<T: Tensor> Tensor for Dual<T> {
    fn constant(a: Mat) -> Self {
        Dual {
            p: T::constant(a),
            t: None,
        }
    }
    fn primal(&self) -> &Mat {
        self.p.primal()
    }
    fn matmul(a: &Self, ta: bool, b: &Self, tb: bool) -> Self {
        Dual {
            p: T::matmul(&a.p, ta, &b.p, tb),
            t: tangent_product(a, ta, b, tb),
        }
    }
    fn matmul_tangent_only(a: &Self, ta: bool, b: &Self, tb: bool) -> Self {
        let rows = if ta { a.p.shape().1 } else { a.p.shape().0 };
        let cols = if tb { b.p.shape().0 } else { b.p.shape().1 };
        Dual {
            p: T::constant(Mat::zeros((rows, cols))),
            t: tangent_product(a, ta, b, tb),
        }
    }
    fn linear(x: &Self, w: &Self, b: Option<&Self>) -> Self {
        Dual {
            p: T::linear(&x.p, &w.p, b.map(|b| &b.p)),
            t: linear_tangent(
                &x.p,
                x.t.as_ref(),
                &w.p,
                w.t.as_ref(),
                b.and_then(|b| b.t.as_ref()),
            ),
        }
    }
    fn add(&self, b: &Self) -> Self {
        Dual {
            p: self.p.add(&b.p),
            t: sum_tangent(self.t.as_ref(), b.t.as_ref()),
        }
    }
    fn sub(&self, b: &Self) -> Self {
        Dual {
            p: self.p.sub(&b.p),
            t: difference_tangent(self.t.as_ref(), b.t.as_ref()),
        }
    }
    fn mul(&self, b: &Self) -> Self {
        Dual {
            p: self.p.mul(&b.p),
            t: elementwise_product_tangent(&self.p, self.t.as_ref(), &b.p, b.t.as_ref()),
        }
    }
    fn affine(&self, alpha: f64, beta: f64) -> Self {
        self.lin(self.p.affine(alpha, beta), |t| t.affine(alpha, 0.0))
    }
    fn add_constant(&self, c: &Mat) -> Self {
        Dual {
            p: self.p.add_constant(c),
            t: self.t.clone(),
        }
    }
    fn mul_constant(&self, c: &Mat) -> Self {
        self.lin(self.p.mul_constant(c), |t| t.mul_constant(c))
    }
    fn add_row(&self, b: &Self) -> Self {
        let (r, c) = self.p.shape();
        Dual {
            p: self.p.add_row(&b.p),
            t: add_row_tangent(self.t.as_ref(), b.t.as_ref(), r, c),
        }
    }
    fn sum_rows(&self) -> Self {
        self.lin(self.p.sum_rows(), T::sum_rows)
    }
    fn sum_cols(&self) -> Self {
        self.lin(self.p.sum_cols(), T::sum_cols)
    }
    fn sum_all(&self) -> Self {
        self.lin(self.p.sum_all(), T::sum_all)
    }
    fn broadcast_to(&self, rows: usize, cols: usize) -> Self {
        self.lin(self.p.broadcast_to(rows, cols), |t| t.broadcast_to(rows, cols))
    }
    fn mul_scalar(&self, s: &Self) -> Self {
        Dual {
            p: self.p.mul_scalar(&s.p),
            t: scalar_product_tangent(&self.p, self.t.as_ref(), &s.p, s.t.as_ref()),
        }
    }
    fn log_softmax_rows(&self) -> Self {
        let y = self.p.log_softmax_rows();
        let t = self.t.as_ref().map(|dz| log_softmax_tangent(&y, dz));
        Dual { p: y, t }
    }
    fn pick(&self, labels: &[usize]) -> Self {
        self.lin(self.p.pick(labels), |t| t.pick(labels))
    }
    fn tanh(&self) -> Self {
        let y = self.p.tanh();
        let t = self.t.as_ref().map(|dz| dz.mul(&y.mul(&y).affine(-1.0, 1.0)));
        Dual { p: y, t }
    }
    fn sigmoid(&self) -> Self {
        let s = self.p.sigmoid();
        let t = self.t.as_ref().map(|dz| dz.mul(&s.mul(&s.affine(-1.0, 1.0))));
        Dual { p: s, t }
    }
    fn softplus(&self) -> Self {
        let t = self.t.as_ref().map(|dz| dz.mul(&self.p.sigmoid()));
        Dual {
            p: self.p.softplus(),
            t,
        }
    }
    fn exp(&self) -> Self {
        let y = self.p.exp();
        let t = self.t.as_ref().map(|dz| dz.mul(&y));
        Dual { p: y, t }
    }
    fn ln(&self) -> Self {
        let t = self.t.as_ref().map(|dz| dz.mul(&self.p.recip()));
        Dual { p: self.p.ln(), t }
    }
    fn recip(&self) -> Self {
        let r = self.p.recip();
        let t = self.t.as_ref().map(|dz| dz.mul(&r.mul(&r)).affine(-1.0, 0.0));
        Dual { p: r, t }
    }
    fn erf(&self) -> Self {
        let t = self.t.as_ref().map(|dz| {
            let g = self
                .p
                .mul(&self.p)
                .affine(-1.0, 0.0)
                .exp()
                .affine(std::f64::consts::FRAC_2_SQRT_PI, 0.0);
            dz.mul(&g)
        });
        Dual { p: self.p.erf(), t }
    }
    fn step(&self) -> Self {
        Dual {
            p: self.p.step(),
            t: None,
        }
    }
    fn linear_map(&self, f: &dyn Fn(&Mat) -> Mat) -> Self {
        self.lin(self.p.linear_map(f), |t| t.linear_map(f))
    }
    fn apply_primitive<P: Primitive>(prim: &P, inputs: &[&Self]) -> Self {
        let primals: Vec<&T> = inputs.iter().map(|x| &x.p).collect();
        let p = T::apply_primitive(prim, &primals);
        let tangents: Vec<Option<&T>> = inputs.iter().map(|x| x.t.as_ref()).collect();
        let t = if tangents.iter().any(Option::is_some) {
            prim.jvp(&primals, &p, &tangents)
        } else {
            None
        };
        Dual { p, t }
    }
    fn unary(&self, f: Unary) -> Self {
        T::unary_dual(f, self)
    }
    fn unary_backward(f: Unary, x: &Self, y: &Self, gy: &Self) -> Self {
        T::unary_backward_dual(f, x, y, gy)
    }
}
