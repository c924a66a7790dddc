//! Bring your own model: a network with an activation of its own (SiLU, `y = x σ(x)`, written as a
//! `Primitive` with its forward, tangent and cotangent rules side by side) and a loss of its own (log-cosh),
//! then the sharpness λ_max, the exact trace of the Hessian and batch sharpness — through the public API only.
//!
//! `cargo run --release --example custom_model`
use imreg::ad::primitive::expect_inputs;
use imreg::ad::{Graph, Primitive, Result as AdResult, Tensor, Var};
use imreg::objective::models::{ChunkTargets, Loss, Network, NetworkObjective, Parameter, TargetData};
use imreg::objective::{Batch, Objective};
use imreg::spectra::{
    batch_sharpness, binomial, exact_trace, sharpness, BatchExpectation, HessianOperator, LanczosOptions,
};
use rand::{Rng, SeedableRng};

/// `y = x σ(x)`, `y' = σ(x) (1 + x (1 − σ(x)))`: the JVP is `y' ⊙ ẋ`, the VJP `y' ⊙ ȳ`.
#[derive(Debug)]
struct Silu;
fn silu_slope<T: Tensor>(x: &T) -> T {
    let s = x.sigmoid();
    s.mul(&x.mul(&s.affine(-1.0, 1.0)).affine(1.0, 1.0))
}
impl Primitive for Silu {
    fn name(&self) -> &'static str {
        "silu"
    }
    fn output_shape(&self, inputs: &[(usize, usize)]) -> AdResult<(usize, usize)> {
        expect_inputs(self.name(), inputs, 1)?;
        Ok(inputs[0])
    }
    fn forward<T: Tensor>(&self, x: &[&T]) -> T {
        x[0].mul(&x[0].sigmoid())
    }
    fn jvp<T: Tensor>(&self, x: &[&T], _y: &T, dx: &[Option<&T>]) -> Option<T> {
        dx[0].map(|d| silu_slope(x[0]).mul(d))
    }
    fn vjp<T: Tensor>(&self, x: &[&T], _y: &T, g: &T, _wants: &[bool]) -> Vec<Option<T>> {
        vec![Some(silu_slope(x[0]).mul(g))]
    }
}

/// `x ↦ W₂ silu(W₁x + b₁) + b₂`, parameters named as PyTorch's `nn.Sequential` would name them.
struct SiluNet;
impl Network for SiluNet {
    fn name(&self) -> String {
        "silu-mlp".into()
    }
    fn parameters(&self) -> Vec<Parameter> {
        let p = |n: &str, s: &[usize]| Parameter::new(n, s.to_vec());
        vec![
            p("0.weight", &[16, 4]),
            p("0.bias", &[16]),
            p("2.weight", &[2, 16]),
            p("2.bias", &[2]),
        ]
    }
    fn input_dim(&self) -> usize {
        4
    }
    fn output_dim(&self) -> usize {
        2
    }
    fn forward<T: Tensor>(&self, g: &mut Graph<T>, l: &[Var], x: Var) -> AdResult<Var> {
        let a = g.linear(x, l[0], Some(l[1]))?;
        let h = g.apply(Silu, &[a])?;
        g.linear(h, l[2], Some(l[3]))
    }
}

/// `ℓ(f, y) = Σ_c log cosh(f_c − y_c)`, written with `log cosh d = softplus(2d) − d − ln 2`.
struct LogCosh;
impl Loss for LogCosh {
    fn name(&self) -> String {
        "log-cosh".into()
    }
    fn label_classes(&self, _outputs: usize) -> Option<usize> {
        None
    }
    fn per_example<T: Tensor>(&self, g: &mut Graph<T>, f: Var, y: &ChunkTargets<'_>) -> AdResult<Var> {
        let y = g.constant(y.values("log-cosh")?.clone());
        let d = g.sub(f, y)?;
        let two_d = g.scale(d, 2.0);
        let sp = g.softplus(two_d);
        let lc = g.sub(sp, d)?;
        let lc = g.affine(lc, 1.0, -std::f64::consts::LN_2);
        g.sum_axis(lc, 1)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut draw =
        |r: usize, c: usize| ndarray::Array2::from_shape_fn((r, c), |_| rng.random_range(-1.0..1.0));
    let (x, y) = (draw(40, 4), draw(40, 2));
    let obj = NetworkObjective::new(SiluNet, LogCosh, x, TargetData::Values(y))?;
    let theta: Vec<f64> = draw(obj.dim(), 1).into_iter().map(|t| 0.5 * t).collect();
    let top = sharpness(&obj, &theta, Batch::Full, &LanczosOptions::default())?;
    let trace = exact_trace(&HessianOperator::new(&obj, &theta, Batch::Full)?)?;
    let bs = batch_sharpness(&obj, &theta, Batch::Full, 4, &BatchExpectation::Exact)?;
    println!("p = {}, loss = {:.6}", obj.dim(), obj.loss(&theta, Batch::Full)?);
    println!(
        "λ_max = {:.10} (Lanczos converged: {})",
        top.value, top.report.converged
    );
    println!("Tr H  = {trace:.10} (exact, p Hessian-vector products)");
    let batches = binomial(40, 4).unwrap_or(0);
    let bs = bs.mean_of_ratios.value;
    println!("batch sharpness (b = 4) = {bs:.10} (exact: the mean over all {batches} batches)");
    Ok(())
}
