//! The open op set: a [`Primitive`] keeps an op's forward, tangent (JVP) and cotangent (VJP) rules together in
//! one `impl`, written once against the [`Tensor`] trait, and joins the tape through [`Graph::apply`].
//!
//! Because the rules are generic over the value type, the engine runs them on plain matrices (reverse mode), on
//! [`Dual`] values (forward-over-reverse: the VJP run on dual numbers *is* the tangent of the VJP, so the HVP
//! needs no fourth rule) and on `Dual<Dual<_>>` values (third order). On the tape a primitive is stored behind
//! the object-safe adapter [`DynPrimitive`], implemented for every `Primitive`; the tape's match arms have one
//! `Custom` case each.
use crate::dual::Dual;
use crate::error::{AdError, Result};
use crate::graph::{Graph, Var};
use crate::tensor::{Mat, Tensor};
use ndarray::ArrayViewMut2;
use std::fmt::Debug;

/// An op of the tape defined by its calculus: `y = f(x_1, …, x_k)` with
///
/// * [`forward`](Primitive::forward): `y`;
/// * [`jvp`](Primitive::jvp): `ẏ = Σ_i ∂f/∂x_i · ẋ_i` (forward mode; used by `jvp`, `hvp`, `third_order`,
///   the dense forward-over-forward Hessian and the tangent replay of [`crate::linearize`]);
/// * [`vjp`](Primitive::vjp): `x̄_i = (∂f/∂x_i)ᵀ ȳ` (reverse mode; used by `grad`, and on dual values by every
///   second- and third-order transformation).
///
/// The rules must be written through [`Tensor`] operations (including [`Tensor::linear_map`] for gathers,
/// scatters and reshapes, and constants derived from the innermost primal value, such as a ReLU mask or
/// max-pool indices), never by reading the primal matrix and computing a result from it, so that they can be
/// run on dual values. `check_grads` then checks all three rules: the JVP against central differences, the
/// VJP against the JVP (dot-product identity), and their derivatives (HVP, third order) in the same way.
///
/// A user-defined op, SiLU `y = x σ(x)` with `y' = σ(x)(1 + x(1 − σ(x)))`:
///
/// ```
/// use imreg_ad::{Graph, Primitive, Program, Result, Tensor, Var};
///
/// #[derive(Debug)]
/// struct Silu;
///
/// /// `y'(x) = σ(x) (1 + x (1 − σ(x)))`, through tensor ops so that it is differentiable itself.
/// fn silu_slope<T: Tensor>(x: &T) -> T {
///     let s = x.sigmoid();
///     s.mul(&x.mul(&s.affine(-1.0, 1.0)).affine(1.0, 1.0))
/// }
///
/// impl Primitive for Silu {
///     fn name(&self) -> &'static str {
///         "silu"
///     }
///     fn output_shape(&self, inputs: &[(usize, usize)]) -> Result<(usize, usize)> {
///         imreg_ad::primitive::expect_inputs(self.name(), inputs, 1)?;
///         Ok(inputs[0])
///     }
///     fn forward<T: Tensor>(&self, x: &[&T]) -> T {
///         x[0].mul(&x[0].sigmoid())
///     }
///     fn jvp<T: Tensor>(&self, x: &[&T], _y: &T, dx: &[Option<&T>]) -> Option<T> {
///         dx[0].map(|d| d.mul(&silu_slope(x[0])))
///     }
///     fn vjp<T: Tensor>(&self, x: &[&T], _y: &T, g: &T, _wants: &[bool]) -> Vec<Option<T>> {
///         vec![Some(g.mul(&silu_slope(x[0])))]
///     }
/// }
///
/// /// f(w) = Σ silu(w)
/// struct F;
/// impl Program for F {
///     fn leaf_shapes(&self) -> Vec<(usize, usize)> {
///         vec![(1, 3)]
///     }
///     fn build<T: Tensor>(&self, g: &mut Graph<T>, leaves: &[Var]) -> Result<Var> {
///         let y = g.apply(Silu, &[leaves[0]])?;
///         Ok(g.sum(y))
///     }
/// }
///
/// let x = [0.3, -1.2, 2.0];
/// let report = imreg_ad::check_grads(&imreg_ad::ScalarFn(&F), &x, &Default::default()).unwrap();
/// assert!(report.passed, "{report:?}");
/// let hv = imreg_ad::hvp(&F, &x, &[1.0, 0.0, 0.0]).unwrap();
/// // y'' = σ'(x) (2 + x (1 − 2σ(x))) at x = 0.3
/// let s = 1.0 / (1.0 + (-0.3f64).exp());
/// assert!((hv[0] - s * (1.0 - s) * (2.0 + 0.3 * (1.0 - 2.0 * s))).abs() < 1e-14);
/// assert_eq!((hv[1], hv[2]), (0.0, 0.0));
/// ```
pub trait Primitive: Debug + Send + Sync + 'static {
    /// The op's name, used in error messages.
    fn name(&self) -> &'static str;
    /// Checks the number and the shapes of the inputs and returns the output's shape; a mismatch is an
    /// [`AdError::Shape`] naming the op, the expected and the found shapes. The rules below may assume it.
    fn output_shape(&self, inputs: &[(usize, usize)]) -> Result<(usize, usize)>;
    /// `y = f(x)`.
    fn forward<T: Tensor>(&self, x: &[&T]) -> T;
    /// `ẏ = Σ_i ∂f/∂x_i · ẋ_i` at `x` (with `y = f(x)`), for the input tangents `dx` (`None` is an exactly zero
    /// tangent; at least one is present). `None` means `ẏ = 0`.
    fn jvp<T: Tensor>(&self, x: &[&T], y: &T, dx: &[Option<&T>]) -> Option<T>;
    /// The input cotangents `x̄_i = (∂f/∂x_i)ᵀ g` for the output cotangent `g`, one entry per input; entries
    /// whose `wants[i]` is false (constants) may be `None`, as may exactly zero ones.
    fn vjp<T: Tensor>(&self, x: &[&T], y: &T, g: &T, wants: &[bool]) -> Vec<Option<T>>;

    /// The tangent of the reverse rule alone, `d/dε vjp(x + εẋ, g + εġ)` at `ε = 0` (`ġ` = `dg`, `None` for
    /// zero), for the tangent replay of a linearized tape ([`crate::linearize`]), which already holds the primal
    /// cotangents: entries follow [`Primitive::vjp`]'s. The default runs [`Primitive::vjp`] on dual values and
    /// drops the primal parts; a primitive whose reverse rule is a product can skip those primal products
    /// (`(AB)˙ = ȦB + AḂ` without `AB`). An override must equal the default in value (conv2d's is tested bit
    /// for bit against it).
    fn vjp_tangent(
        &self,
        x: &[&Dual<Mat>],
        y: &Dual<Mat>,
        g: &Mat,
        dg: Option<&Mat>,
        wants: &[bool],
    ) -> Vec<Option<Mat>> {
        let g = Dual::new(g.clone(), dg.cloned());
        Primitive::vjp(self, x, y, &g, wants)
            .into_iter()
            .map(|d| d.and_then(|d| d.t))
            .collect()
    }

    /// Whether [`Primitive::vjp_per_example`] is implemented for the parameter input `input`. The default, no
    /// input, makes [`crate::per_example_grads_into`] decline a tape on which this primitive consumes a
    /// parameter leaf, and its callers then run one tape per example, so a primitive without the rule keeps
    /// working (only slower).
    fn has_vjp_per_example(&self, input: usize) -> bool {
        let _ = input;
        false
    }

    /// The per-example cotangents of the parameter input `input` (a leaf shared by every example), for
    /// batched per-example gradients: with the inputs and output holding one example per row and `g` the
    /// output cotangent of `Σ_i ℓ_i`, row `i` of `acc` (`n × len(x_input)`, the parameter's entries row-major)
    /// gets `(∂f/∂x_input)ᵀ g` restricted to example `i`'s rows added to it. For a linear layer that is
    /// `W̄_i = g_iᵀ x_i`; for a convolution `W̄_i = G_i P_iᵀ` over example `i`'s output positions only. Summed
    /// over `i` it is [`Primitive::vjp`]'s cotangent of that input. Called only when
    /// [`Primitive::has_vjp_per_example`] says so (the default is never called and reports an error).
    fn vjp_per_example(
        &self,
        x: &[&Mat],
        y: &Mat,
        g: &Mat,
        input: usize,
        acc: ArrayViewMut2<'_, f64>,
    ) -> Result<()> {
        let _ = (x, y, g, acc);
        Err(AdError::Invalid {
            what: self.name(),
            reason: format!("no per-example reverse rule for input {input}"),
        })
    }
}

/// The object-safe face of a [`Primitive`] on a tape of `T` values (implemented for every primitive).
pub trait DynPrimitive<T: Tensor>: Debug + Send + Sync {
    /// [`Primitive::vjp`] on the tape's values.
    fn vjp(&self, x: &[&T], y: &T, g: &T, wants: &[bool]) -> Vec<Option<T>>;
    /// [`Primitive::jvp`] on plain values (the tangent replay of a linearized tape).
    fn jvp_plain(&self, x: &[&Mat], y: &Mat, dx: &[Option<&Mat>]) -> Option<Mat>;
    /// [`Primitive::vjp_tangent`]: the tangent of the reverse rule, for a linearized tape.
    fn vjp_tangent(
        &self,
        x: &[&Dual<Mat>],
        y: &Dual<Mat>,
        g: &Mat,
        dg: Option<&Mat>,
        wants: &[bool],
    ) -> Vec<Option<Mat>>;
    /// [`Primitive::has_vjp_per_example`].
    fn has_vjp_per_example(&self, input: usize) -> bool;
    /// [`Primitive::vjp_per_example`] on plain values.
    fn vjp_per_example(
        &self,
        x: &[&Mat],
        y: &Mat,
        g: &Mat,
        input: usize,
        acc: ArrayViewMut2<'_, f64>,
    ) -> Result<()>;
}

impl<T: Tensor, P: Primitive> DynPrimitive<T> for P {
    fn vjp(&self, x: &[&T], y: &T, g: &T, wants: &[bool]) -> Vec<Option<T>> {
        Primitive::vjp(self, x, y, g, wants)
    }
    fn jvp_plain(&self, x: &[&Mat], y: &Mat, dx: &[Option<&Mat>]) -> Option<Mat> {
        Primitive::jvp(self, x, y, dx)
    }
    fn vjp_tangent(
        &self,
        x: &[&Dual<Mat>],
        y: &Dual<Mat>,
        g: &Mat,
        dg: Option<&Mat>,
        wants: &[bool],
    ) -> Vec<Option<Mat>> {
        Primitive::vjp_tangent(self, x, y, g, dg, wants)
    }
    fn has_vjp_per_example(&self, input: usize) -> bool {
        Primitive::has_vjp_per_example(self, input)
    }
    fn vjp_per_example(
        &self,
        x: &[&Mat],
        y: &Mat,
        g: &Mat,
        input: usize,
        acc: ArrayViewMut2<'_, f64>,
    ) -> Result<()> {
        Primitive::vjp_per_example(self, x, y, g, input, acc)
    }
}

/// `Ok(())` when a primitive received `expected` inputs, an [`AdError::Invalid`] naming the op otherwise.
pub fn expect_inputs(op: &'static str, inputs: &[(usize, usize)], expected: usize) -> Result<()> {
    if inputs.len() != expected {
        return Err(AdError::Invalid {
            what: op,
            reason: format!("takes {expected} inputs, got {}", inputs.len()),
        });
    }
    Ok(())
}

/// `Ok(())` when input `index` of `op` has the shape `expected`; an [`AdError::Shape`] naming the op, the input,
/// the expected and the found shapes otherwise.
pub fn expect_shape(
    op: &'static str,
    input: &'static str,
    found: (usize, usize),
    expected: (usize, usize),
) -> Result<()> {
    if found != expected {
        return Err(AdError::Shape {
            op,
            detail: format!(
                "{input}: expected {}×{}, found {}×{}",
                expected.0, expected.1, found.0, found.1
            ),
        });
    }
    Ok(())
}

impl<T: Tensor> Graph<T> {
    /// Records the primitive `prim` applied to `inputs`. Its [`Primitive::output_shape`] checks the input
    /// shapes first; a forward rule that returns another shape than it promised is an [`AdError::Shape`] too.
    pub fn apply<P: Primitive>(&mut self, prim: P, inputs: &[Var]) -> Result<Var> {
        let shapes: Vec<(usize, usize)> = inputs.iter().map(|&v| self.shape(v)).collect();
        let want = prim.output_shape(&shapes)?;
        let value = {
            let xs: Vec<&T> = inputs.iter().map(|&v| self.value(v)).collect();
            T::apply_primitive(&prim, &xs)
        };
        let got = value.shape();
        if got != want {
            return Err(AdError::Shape {
                op: prim.name(),
                detail: format!(
                    "the forward rule returned {}×{}, output_shape promised {}×{}",
                    got.0, got.1, want.0, want.1
                ),
            });
        }
        Ok(self.push_custom(value, std::sync::Arc::new(prim), inputs))
    }
}
