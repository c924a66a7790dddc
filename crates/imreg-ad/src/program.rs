//! Programs and the transformations on them: `value`, `grad`, `jvp`, `hvp`, `third_order`, and gradients of
//! functions of gradients.
//!
//! A [`Program`] builds a scalar from differentiable leaves on a [`Graph`]; because it is generic over the
//! tensor type, the same program runs on plain values (reverse mode), on [`Dual`] values
//! (forward-over-reverse: the HVP) and on `Dual<Dual<_>>` values (third-order directional derivatives).
//! Parameters travel as one flat `&[f64]`: the leaves in order, each row-major.
use crate::dual::Dual;
use crate::error::{AdError, Result};
use crate::graph::{Graph, Var};
use crate::tensor::{Mat, Tensor};
use ndarray::ArrayViewMut2;

/// A scalar function of matrix-shaped leaves, written once for every tensor type.
///
/// ```
/// use imreg_ad::{Graph, Program, Result, Tensor, Var};
/// /// f(w) = Σ tanh(w)²
/// struct F;
/// impl Program for F {
///     fn leaf_shapes(&self) -> Vec<(usize, usize)> { vec![(1, 3)] }
///     fn build<T: Tensor>(&self, g: &mut Graph<T>, leaves: &[Var]) -> Result<Var> {
///         let t = g.tanh(leaves[0]);
///         let s = g.square(t);
///         Ok(g.sum(s))
///     }
/// }
/// let x = [0.1, -0.2, 0.3];
/// let (f, grad) = imreg_ad::grad(&F, &x).unwrap();
/// let hv = imreg_ad::hvp(&F, &x, &[1.0, 0.0, 0.0]).unwrap();
/// assert!((f - x.iter().map(|v: &f64| v.tanh().powi(2)).sum::<f64>()).abs() < 1e-15);
/// assert_eq!(grad.len(), 3);
/// assert!(hv[1] == 0.0 && hv[2] == 0.0);
/// ```
pub trait Program: Sync {
    /// Shapes of the differentiable leaves, in the order `build` receives them.
    fn leaf_shapes(&self) -> Vec<(usize, usize)>;
    /// Records the computation and returns the `1 × 1` output node.
    fn build<T: Tensor>(&self, g: &mut Graph<T>, leaves: &[Var]) -> Result<Var>;

    /// Total number of scalar inputs.
    fn n_inputs(&self) -> usize {
        self.leaf_shapes().iter().map(|(r, c)| r * c).sum()
    }
}

/// Splits a flat vector into matrices of the given shapes (row-major).
pub fn unflatten(x: &[f64], shapes: &[(usize, usize)]) -> Result<Vec<Mat>> {
    check_len("flat input", shapes, x)?;
    let mut out = Vec::with_capacity(shapes.len());
    let mut off = 0;
    for &(r, c) in shapes {
        out.push(Mat::from_shape_vec((r, c), x[off..off + r * c].to_vec()).expect("length checked"));
        off += r * c;
    }
    Ok(out)
}

/// Concatenates matrices row-major into `out`.
pub fn flatten_into(ms: &[Mat], out: &mut [f64]) {
    let shapes: Vec<(usize, usize)> = ms.iter().map(Mat::dim).collect();
    put_flat(ms.iter().map(Some), &shapes, out, false);
}

/// Concatenates matrices row-major.
pub fn flatten(ms: &[Mat]) -> Vec<f64> {
    let mut out = vec![0.0; ms.iter().map(|m| m.len()).sum()];
    flatten_into(ms, &mut out);
    out
}

/// `x` has the total length of `shapes`.
fn check_len(what: &'static str, shapes: &[(usize, usize)], x: &[f64]) -> Result<()> {
    let expected = shapes.iter().map(|(r, c)| r * c).sum();
    if x.len() != expected {
        return Err(AdError::Length {
            what,
            expected,
            got: x.len(),
        });
    }
    Ok(())
}

fn check_finite(what: &'static str, x: &[f64]) -> Result<()> {
    match crate::fastmath::first_non_finite(x) {
        Some(index) => Err(AdError::NonFinite {
            what,
            index,
            value: x[index],
        }),
        None => Ok(()),
    }
}

/// Runs the program on leaves built by `make` and returns the graph and output node.
fn record<P: Program + ?Sized, T: Tensor>(p: &P, leaves: Vec<T>) -> Result<(Graph<T>, Var)> {
    let mut g = Graph::new();
    let vars: Vec<Var> = leaves.into_iter().map(|l| g.leaf(l)).collect();
    let out = p.build(&mut g, &vars)?;
    let (r, c) = g.shape(out);
    if (r, c) != (1, 1) {
        return Err(AdError::NotScalar { rows: r, cols: c });
    }
    Ok((g, out))
}

fn duals(x: &[f64], v: Option<&[f64]>, shapes: &[(usize, usize)]) -> Result<Vec<Dual<Mat>>> {
    let xs = unflatten(x, shapes)?;
    match v {
        Some(v) => {
            let vs = unflatten(v, shapes).map_err(|_| AdError::Length {
                what: "direction",
                expected: x.len(),
                got: v.len(),
            })?;
            Ok(xs
                .into_iter()
                .zip(vs)
                .map(|(p, t)| Dual::new(p, Some(t)))
                .collect())
        }
        None => Ok(xs.into_iter().map(|p| Dual::new(p, None)).collect()),
    }
}

/// `f(x)`.
pub fn value<P: Program + ?Sized>(p: &P, x: &[f64]) -> Result<f64> {
    check_finite("input", x)?;
    let (g, out) = record::<P, Mat>(p, unflatten(x, &p.leaf_shapes())?)?;
    Ok(g.value(out)[(0, 0)])
}

/// `(f(x), ∇f(x))` by reverse mode.
pub fn grad<P: Program + ?Sized>(p: &P, x: &[f64]) -> Result<(f64, Vec<f64>)> {
    let mut out = vec![0.0; x.len()];
    let f = grad_into(p, x, &mut out)?;
    Ok((f, out))
}

/// Writes `∇f(x)` into `out` and returns `f(x)`.
pub fn grad_into<P: Program + ?Sized>(p: &P, x: &[f64], out: &mut [f64]) -> Result<f64> {
    if out.len() != x.len() {
        return Err(AdError::Length {
            what: "gradient buffer",
            expected: x.len(),
            got: out.len(),
        });
    }
    let at = Point::new(&p.leaf_shapes(), x)?;
    let (f, leaves) = grad_leaves(p, &at)?;
    put_flat(leaves.iter().map(Some), &at.shapes, out, false);
    Ok(f)
}

/// A point `x` — and, for HVPs, a direction `v` — checked (length, finite) once, so that a family of programs
/// with the same leaves (one per chunk of a batch, say) can be evaluated at it many times without
/// re-validating the flat vectors. It borrows them: each evaluation copies `x` (and `v`) straight into its
/// tape's leaves, the only copy.
#[derive(Clone, Debug)]
pub struct Point<'a> {
    shapes: Vec<(usize, usize)>,
    x: &'a [f64],
    v: Option<&'a [f64]>,
    len: usize,
}

impl<'a> Point<'a> {
    /// The point `x` for leaves of the given shapes.
    pub fn new(shapes: &[(usize, usize)], x: &'a [f64]) -> Result<Self> {
        check_len("flat input", shapes, x)?;
        check_finite("input", x)?;
        Ok(Point {
            shapes: shapes.to_vec(),
            x,
            v: None,
            len: x.len(),
        })
    }

    /// The point `x` with the tangent direction `v` (for [`hvp_acc`]).
    pub fn with_direction(shapes: &[(usize, usize)], x: &'a [f64], v: &'a [f64]) -> Result<Self> {
        let mut at = Point::new(shapes, x)?;
        check_len("direction", shapes, v)?;
        check_finite("direction", v)?;
        at.v = Some(v);
        Ok(at)
    }

    /// The leaf matrices of `x`.
    fn leaves(&self) -> Result<Vec<Mat>> {
        unflatten(self.x, &self.shapes)
    }

    /// Number of scalar inputs.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the point has no inputs.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check<P: Program + ?Sized>(&self, p: &P) -> Result<()> {
        if p.leaf_shapes() != self.shapes {
            return Err(AdError::Invalid {
                what: "point",
                reason: format!(
                    "leaf shapes {:?} differ from the program's {:?}",
                    self.shapes,
                    p.leaf_shapes()
                ),
            });
        }
        Ok(())
    }

    fn check_acc<P: Program + ?Sized>(&self, p: &P, acc: &[f64]) -> Result<()> {
        self.check(p)?;
        if acc.len() != self.len {
            return Err(AdError::Length {
                what: "accumulator",
                expected: self.len,
                got: acc.len(),
            });
        }
        Ok(())
    }
}

/// Writes (`add = false`) or adds (`add = true`) the leaf matrices, row-major, into `out`; an absent (exactly
/// zero) block leaves its part of `out` as it is.
fn put_flat<'a>(
    ms: impl Iterator<Item = Option<&'a Mat>>,
    shapes: &[(usize, usize)],
    out: &mut [f64],
    add: bool,
) {
    let mut off = 0;
    for (m, &(r, c)) in ms.zip(shapes) {
        if let Some(m) = m {
            let dst = &mut out[off..off + r * c];
            // Row-major blocks (all of the tape's) as slices, which vectorize; ndarray's element iterator
            // did not (it was 5% of a tiny MLP's gradient).
            match (m.as_slice(), add) {
                (Some(src), true) => crate::fastmath::vectorized(
                    #[inline(always)]
                    || dst.iter_mut().zip(src).for_each(|(o, &v)| *o += v),
                ),
                (Some(src), false) => dst.copy_from_slice(src),
                (None, true) => dst.iter_mut().zip(m.iter()).for_each(|(o, &v)| *o += v),
                (None, false) => dst.iter_mut().zip(m.iter()).for_each(|(o, &v)| *o = v),
            }
        }
        off += r * c;
    }
}

/// `f(x)` at a prepared point.
pub fn value_at<P: Program + ?Sized>(p: &P, at: &Point) -> Result<f64> {
    at.check(p)?;
    let (g, out) = record::<P, Mat>(p, at.leaves()?)?;
    Ok(g.value(out)[(0, 0)])
}

/// `f(x)` and the leaf gradients by reverse mode at a prepared point.
fn grad_leaves<P: Program + ?Sized>(p: &P, at: &Point) -> Result<(f64, Vec<Mat>)> {
    at.check(p)?;
    let (g, y) = record::<P, Mat>(p, at.leaves()?)?;
    Ok((g.value(y)[(0, 0)], g.backward(y)?))
}

/// Per-example gradients by batched reverse mode, for a program whose output is a sum `f = Σ_i ℓ_i` over `n`
/// examples held one per row of its batched nodes (the layout of [`crate::layout`]): writes `∇ℓ_i(x)` into
/// row `i` of `rows` (`n × len(x)`) from one forward and one reverse pass over the whole batch, and returns
/// `Some(f(x))`. Every op that reads a leaf must have a per-example rule (the built-in linear layer, matmul
/// and bias add; a [`Primitive`](crate::Primitive) by its
/// [`vjp_per_example`](crate::Primitive::vjp_per_example)); where one does not, nothing is written and the
/// result is `None`, and the caller differentiates one tape per example instead ([`grad_acc`] on each
/// example's program). The per-example results equal those tapes' to rounding (the same products, formed per
/// example). The examples must not be coupled (no batch statistics): `ℓ_i` may depend on row `i` only.
pub fn per_example_grads_into<P: Program + ?Sized>(
    p: &P,
    at: &Point,
    rows: ArrayViewMut2<'_, f64>,
) -> Result<Option<f64>> {
    per_example_grads(p, at, rows, false)
}

/// [`per_example_grads_into`], adding `∇ℓ_i(x)` to row `i` of `rows` instead of writing it (for rows that
/// are already zero, it saves their zeroing); `None` leaves `rows` unchanged.
pub fn per_example_grads_acc<P: Program + ?Sized>(
    p: &P,
    at: &Point,
    rows: ArrayViewMut2<'_, f64>,
) -> Result<Option<f64>> {
    per_example_grads(p, at, rows, true)
}

fn per_example_grads<P: Program + ?Sized>(
    p: &P,
    at: &Point,
    mut rows: ArrayViewMut2<'_, f64>,
    accumulate: bool,
) -> Result<Option<f64>> {
    at.check(p)?;
    if rows.ncols() != at.len {
        return Err(AdError::Length {
            what: "per-example gradient row",
            expected: at.len,
            got: rows.ncols(),
        });
    }
    if rows.ncols() > 1 && rows.strides()[1] != 1 {
        return Err(AdError::Invalid {
            what: "per-example gradient rows",
            reason: "each row must be contiguous".into(),
        });
    }
    let (g, y) = record::<P, Mat>(p, at.leaves()?)?;
    if !g.per_example_ready(y, rows.nrows()) {
        return Ok(None);
    }
    if !accumulate {
        rows.fill(0.0);
    }
    g.per_example_backward(y, rows)?;
    Ok(Some(g.value(y)[(0, 0)]))
}

/// Whether [`per_example_grads_into`] applies to `p` on a tape of `n` examples (recorded at `at`, forward
/// only): every op that reads a leaf has a per-example rule. A cheap probe on a one-example program lets a
/// caller choose between the batched pass and one tape per example before doing either.
pub fn per_example_supported<P: Program + ?Sized>(p: &P, at: &Point, n: usize) -> Result<bool> {
    at.check(p)?;
    let (g, y) = record::<P, Mat>(p, at.leaves()?)?;
    Ok(g.per_example_ready(y, n))
}

/// `acc += ∇f(x)` at a prepared point; returns `f(x)`.
pub fn grad_acc<P: Program + ?Sized>(p: &P, at: &Point, acc: &mut [f64]) -> Result<f64> {
    at.check_acc(p, acc)?;
    let (f, leaves) = grad_leaves(p, at)?;
    put_flat(leaves.iter().map(Some), &at.shapes, acc, true);
    Ok(f)
}

/// The leaf tangents of the reverse pass at a prepared point with a direction: `∇²f(x) v`, leaf by leaf
/// (`None` for an exactly zero block).
fn hvp_leaves<P: Program + ?Sized>(p: &P, at: &Point) -> Result<Vec<Option<Mat>>> {
    at.check(p)?;
    let Some(v) = at.v else {
        return Err(AdError::Invalid {
            what: "point",
            reason: "an HVP needs a point with a direction (Point::with_direction)".into(),
        });
    };
    let (g, y) = record(p, duals(at.x, Some(v), &at.shapes)?)?;
    Ok(g.backward_tangents(y)?.into_iter().map(|d| d.t).collect())
}

/// `acc += ∇²f(x) v` at a prepared point with a direction (see [`hvp`]).
pub fn hvp_acc<P: Program + ?Sized>(p: &P, at: &Point, acc: &mut [f64]) -> Result<()> {
    at.check_acc(p, acc)?;
    let leaves = hvp_leaves(p, at)?;
    put_flat(leaves.iter().map(Option::as_ref), &at.shapes, acc, true);
    Ok(())
}

/// `∇²f(x)` as a reusable linear map, JAX's `linearize(grad(f), x)`: the program is recorded once at `x`
/// (the primal forward pass, whose values are kept) and differentiated once (the primal cotangents of every
/// node, kept too); each [`Linearized::hvp_acc`] then runs only the tangent halves of forward-over-reverse:
/// the tangents forward (`Graph::retangent`) and the tangents of the cotangents backward
/// (`Graph::reverse_tangents`). Many HVPs at one point (Lanczos, power iteration, Hutchinson probes) skip all
/// primal work.
pub struct Linearized {
    graph: Graph<Dual<Mat>>,
    /// The primal cotangent of every node at the recorded point.
    cotangents: Vec<Option<Mat>>,
    out: Var,
    shapes: Vec<(usize, usize)>,
    len: usize,
}

/// Records `p` at the prepared point `at` for repeated HVPs (see [`Linearized`]).
pub fn linearize<P: Program + ?Sized>(p: &P, at: &Point) -> Result<Linearized> {
    at.check(p)?;
    let (graph, out) = record(p, duals(at.x, None, &at.shapes)?)?;
    let cotangents = graph
        .cotangents(out)?
        .into_iter()
        .map(|c| c.map(|d| d.p))
        .collect();
    Ok(Linearized {
        graph,
        cotangents,
        out,
        shapes: at.shapes.clone(),
        len: at.len,
    })
}

impl Linearized {
    /// Number of scalar inputs.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the program has no inputs.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `acc += ∇²f(x) v`, equal to [`hvp_acc`] at the recorded point (to rounding: the same operations on
    /// the same primal values).
    pub fn hvp_acc(&mut self, v: &[f64], acc: &mut [f64]) -> Result<()> {
        check_finite("direction", v)?;
        for (what, got) in [("direction", v.len()), ("accumulator", acc.len())] {
            if got != self.len {
                return Err(AdError::Length {
                    what,
                    expected: self.len,
                    got,
                });
            }
        }
        let vs = unflatten(v, &self.shapes)?;
        self.graph.retangent(vs.into_iter().map(Some).collect());
        let leaves = self.graph.reverse_tangents(self.out, &self.cotangents);
        put_flat(leaves.iter().map(Option::as_ref), &self.shapes, acc, true);
        Ok(())
    }
}

/// `(f(x), ∇f(x)·v)` by forward mode (no reverse pass).
pub fn jvp<P: Program + ?Sized>(p: &P, x: &[f64], v: &[f64]) -> Result<(f64, f64)> {
    check_finite("input", x)?;
    check_finite("direction", v)?;
    let (g, y) = record(p, duals(x, Some(v), &p.leaf_shapes())?)?;
    let out = g.value(y);
    Ok((out.p[(0, 0)], out.t.as_ref().map_or(0.0, |t| t[(0, 0)])))
}

/// Gradient and Hessian-vector product `(f(x), ∇f(x), ∇²f(x) v)`, exactly, by forward-over-reverse: the
/// reverse pass runs on dual values whose tangent is seeded with `v`, so the tangent of the gradient is `Hv`.
pub fn grad_hvp<P: Program + ?Sized>(p: &P, x: &[f64], v: &[f64]) -> Result<(f64, Vec<f64>, Vec<f64>)> {
    check_finite("input", x)?;
    check_finite("direction", v)?;
    let (g, y) = record(p, duals(x, Some(v), &p.leaf_shapes())?)?;
    let grads = g.backward(y)?;
    let mut gx = vec![0.0; x.len()];
    let mut hv = vec![0.0; x.len()];
    let primals: Vec<Mat> = grads.iter().map(|d| d.p.clone()).collect();
    let tangents: Vec<Mat> = grads.iter().map(|d| d.tangent_or_zero()).collect();
    flatten_into(&primals, &mut gx);
    flatten_into(&tangents, &mut hv);
    Ok((g.value(y).p[(0, 0)], gx, hv))
}

/// The Hessian-vector product `∇²f(x) v` (see [`grad_hvp`]). The primal gradient is not formed: the reverse
/// pass skips the products that would only produce it.
pub fn hvp<P: Program + ?Sized>(p: &P, x: &[f64], v: &[f64]) -> Result<Vec<f64>> {
    let at = Point::with_direction(&p.leaf_shapes(), x, v)?;
    let leaves = hvp_leaves(p, &at)?;
    let mut out = vec![0.0; x.len()];
    put_flat(leaves.iter().map(Option::as_ref), &at.shapes, &mut out, false);
    Ok(out)
}

/// The third-order directional derivative `T3[u, v] = ∇(uᵀ ∇²f(x) v)`, i.e. `Σ_jk ∂³f/∂x_i∂x_j∂x_k u_j v_k`,
/// by running the reverse pass on `Dual<Dual<_>>` values seeded with `u` (inner) and `v` (outer).
pub fn third_order<P: Program + ?Sized>(p: &P, x: &[f64], u: &[f64], v: &[f64]) -> Result<Vec<f64>> {
    check_finite("input", x)?;
    check_finite("direction u", u)?;
    check_finite("direction v", v)?;
    let shapes = p.leaf_shapes();
    let inner = duals(x, Some(u), &shapes)?;
    let outer_t = unflatten(v, &shapes).map_err(|_| AdError::Length {
        what: "direction v",
        expected: x.len(),
        got: v.len(),
    })?;
    let leaves: Vec<Dual<Dual<Mat>>> = inner
        .into_iter()
        .zip(outer_t)
        .map(|(p, t)| Dual::new(p, Some(Dual::new(t, None))))
        .collect();
    let (g, y) = record(p, leaves)?;
    let grads = g.backward(y)?;
    let parts: Vec<Mat> = grads
        .iter()
        .map(|d| match &d.t {
            Some(t) => t.tangent_or_zero(),
            None => Mat::zeros(d.p.p.dim()),
        })
        .collect();
    Ok(flatten(&parts))
}

/// The gradient of `φ(∇f(x))` for a scalar function `φ` of the gradient: `∇_x φ(∇f(x)) = ∇²f(x) ∇φ(∇f(x))`.
/// `dphi` maps the gradient `g` to `∇φ(g)`. Returns `(∇f(x), ∇_x φ(∇f(x)))`.
pub fn grad_of_grad_fn<P: Program + ?Sized>(
    p: &P,
    x: &[f64],
    dphi: impl Fn(&[f64]) -> Vec<f64>,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let (_, g) = grad(p, x)?;
    let w = dphi(&g);
    if w.len() != g.len() {
        return Err(AdError::Length {
            what: "∇φ",
            expected: g.len(),
            got: w.len(),
        });
    }
    let hv = hvp(p, x, &w)?;
    Ok((g, hv))
}

/// `‖∇_S f(x)‖²` and its gradient with respect to **all** of `x`, where `∇_S f` is the part of the gradient on
/// the input positions `block` (a range of the flat input).
///
/// With `block` the whole input this is `∇‖∇f‖² = 2 H ∇f`. With `block` the data leaf of a model whose other
/// leaves are its parameters, the parameter part of the result is `∇_θ ‖∇_x L‖²` (the input-gradient penalty):
/// by the symmetry of mixed partials it equals `2 (∂²L/∂θ∂x) ∇_x L`, one Hessian-vector product with the
/// direction `(0, ∇_x L)`.
pub fn grad_of_block_grad_norm<P: Program + ?Sized>(
    p: &P,
    x: &[f64],
    block: std::ops::Range<usize>,
) -> Result<(f64, Vec<f64>)> {
    if block.end > x.len() || block.start > block.end {
        return Err(AdError::Invalid {
            what: "block",
            reason: format!("{block:?} for {} inputs", x.len()),
        });
    }
    let (_, g) = grad(p, x)?;
    let mut dir = vec![0.0; x.len()];
    dir[block.clone()].copy_from_slice(&g[block.clone()]);
    let norm2 = dir.iter().map(|v| v * v).sum();
    let mut hv = hvp(p, x, &dir)?;
    hv.iter_mut().for_each(|v| *v *= 2.0);
    Ok((norm2, hv))
}

/// The dense Hessian by **forward-over-forward** differentiation: entry `(i, j)` is the mixed second
/// directional derivative `∂²f(x + s e_i + t e_j)/∂s∂t` from one forward pass on `Dual<Dual<_>>` values. No
/// reverse pass is involved, so this is an oracle independent of [`hvp`]. Costs `p(p+1)/2` forward passes:
/// for small `p` only. Returned row-major, `p × p`.
pub fn dense_hessian_forward<P: Program + ?Sized>(p: &P, x: &[f64]) -> Result<Vec<f64>> {
    check_finite("input", x)?;
    let shapes = p.leaf_shapes();
    let n = x.len();
    let xs = unflatten(x, &shapes)?;
    let unit = |i: usize| {
        let mut e = vec![0.0; n];
        e[i] = 1.0;
        unflatten(&e, &shapes)
    };
    let mut h = vec![0.0; n * n];
    for i in 0..n {
        let ei = unit(i)?;
        for j in i..n {
            let ej = unit(j)?;
            let leaves: Vec<Dual<Dual<Mat>>> = xs
                .iter()
                .zip(ei.iter().zip(&ej))
                .map(|(x, (a, b))| {
                    Dual::new(
                        Dual::new(x.clone(), Some(a.clone())),
                        Some(Dual::new(b.clone(), None)),
                    )
                })
                .collect();
            let (g, y) = record(p, leaves)?;
            let v = g
                .value(y)
                .t
                .as_ref()
                .and_then(|t| t.t.as_ref())
                .map_or(0.0, |t| t[(0, 0)]);
            h[i * n + j] = v;
            h[j * n + i] = v;
        }
    }
    Ok(h)
}
