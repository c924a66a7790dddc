//! A primitive and a loss defined outside the engine, through the public API only: a gated unit
//! `y = a ⊙ σ(b)` (two inputs) and the log-cosh loss `(1/n) Σ_ij log cosh(z_ij − t_ij)`. Both work in `grad`,
//! `hvp`, `linearize`, `third_order`, per-example gradients and `check_grads` without touching the engine.
use imreg::ad::primitive::{expect_inputs, expect_shape};
use imreg::ad::{
    add_opt, check_grads, dense_hessian_forward, CheckGradsOptions, GradientMap, Graph, Mat, Primitive,
    Program, Result, ScalarFn, Tensor, Var,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `y = a ⊙ σ(b)`: `ẏ = ȧ ⊙ σ(b) + a ⊙ σ'(b) ⊙ ḃ`, `ā = g ⊙ σ(b)`, `b̄ = g ⊙ a ⊙ σ'(b)`, `σ' = σ(1 − σ)`.
#[derive(Debug)]
struct Gate;

fn sigmoid_slope<T: Tensor>(b: &T) -> T {
    let s = b.sigmoid();
    s.mul(&s.affine(-1.0, 1.0))
}

impl Primitive for Gate {
    fn name(&self) -> &'static str {
        "gate"
    }
    fn output_shape(&self, inputs: &[(usize, usize)]) -> Result<(usize, usize)> {
        expect_inputs(self.name(), inputs, 2)?;
        expect_shape(self.name(), "gate input b", inputs[1], inputs[0])?;
        Ok(inputs[0])
    }
    fn forward<T: Tensor>(&self, x: &[&T]) -> T {
        x[0].mul(&x[1].sigmoid())
    }
    fn jvp<T: Tensor>(&self, x: &[&T], _y: &T, dx: &[Option<&T>]) -> Option<T> {
        add_opt(
            dx[0].map(|da| da.mul(&x[1].sigmoid())),
            dx[1].map(|db| x[0].mul(&sigmoid_slope(x[1])).mul(db)),
        )
    }
    fn vjp<T: Tensor>(&self, x: &[&T], _y: &T, g: &T, wants: &[bool]) -> Vec<Option<T>> {
        vec![
            wants[0].then(|| g.mul(&x[1].sigmoid())),
            wants[1].then(|| g.mul(x[0]).mul(&sigmoid_slope(x[1]))),
        ]
    }
}

/// `L(z) = (1/n) Σ_ij log cosh(z_ij − t_ij)` over the `n` rows, with `log cosh d = softplus(2d) − d − ln 2`:
/// `L̇ = (1/n) Σ tanh(d) ⊙ ż`, `z̄ = (g/n) tanh(d)` for the `1 × 1` cotangent `g`.
#[derive(Debug)]
struct LogCosh {
    target: Mat,
}

impl LogCosh {
    fn residual<T: Tensor>(&self, z: &T) -> T {
        z.add_constant(&(-&self.target))
    }
}

impl Primitive for LogCosh {
    fn name(&self) -> &'static str {
        "log_cosh"
    }
    fn output_shape(&self, inputs: &[(usize, usize)]) -> Result<(usize, usize)> {
        expect_inputs(self.name(), inputs, 1)?;
        expect_shape(self.name(), "prediction", inputs[0], self.target.dim())?;
        Ok((1, 1))
    }
    fn forward<T: Tensor>(&self, x: &[&T]) -> T {
        let d = self.residual(x[0]);
        let n = self.target.nrows() as f64;
        d.affine(2.0, 0.0)
            .softplus()
            .sub(&d)
            .sum_all()
            .affine(1.0 / n, -(self.target.len() as f64) * std::f64::consts::LN_2 / n)
    }
    fn jvp<T: Tensor>(&self, x: &[&T], _y: &T, dx: &[Option<&T>]) -> Option<T> {
        let n = self.target.nrows() as f64;
        dx[0].map(|dz| self.residual(x[0]).tanh().mul(dz).sum_all().affine(1.0 / n, 0.0))
    }
    fn vjp<T: Tensor>(&self, x: &[&T], _y: &T, g: &T, _wants: &[bool]) -> Vec<Option<T>> {
        let n = self.target.nrows() as f64;
        vec![Some(
            self.residual(x[0]).tanh().mul_scalar(g).affine(1.0 / n, 0.0),
        )]
    }
}

/// `x ↦ W₃ gate(W₁x + b₁, W₂x)` with the log-cosh loss, on fixed data; leaves `W₁, b₁, W₂, W₃`.
struct GatedNet {
    x: Mat,
    target: Mat,
    hidden: usize,
}

impl GatedNet {
    fn new(n: usize, d: usize, hidden: usize, c: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        GatedNet {
            x: Mat::from_shape_fn((n, d), |_| rng.random::<f64>() * 2.0 - 1.0),
            target: Mat::from_shape_fn((n, c), |_| rng.random::<f64>() * 2.0 - 1.0),
            hidden,
        }
    }

    fn rows(&self, i: usize) -> GatedNet {
        GatedNet {
            x: self.x.slice(ndarray::s![i..i + 1, ..]).to_owned(),
            target: self.target.slice(ndarray::s![i..i + 1, ..]).to_owned(),
            hidden: self.hidden,
        }
    }

    /// The forward pass with the parameters as given nodes; `probes` (zero leaves) are added to the first
    /// pre-activation and to the output, so their gradients are those nodes' per-row cotangents.
    fn forward<T: Tensor>(
        &self,
        g: &mut Graph<T>,
        l: &[Var],
        probes: Option<(Var, Var)>,
    ) -> Result<(Var, Var)> {
        let x = g.constant(self.x.clone());
        let mut a = g.linear(x, l[0], Some(l[1]))?;
        if let Some((pa, _)) = probes {
            a = g.add(a, pa)?;
        }
        let b = g.linear(x, l[2], None)?;
        let h = g.apply(Gate, &[a, b])?;
        let mut z = g.linear(h, l[3], None)?;
        if let Some((_, pz)) = probes {
            z = g.add(z, pz)?;
        }
        let loss = g.apply(
            LogCosh {
                target: self.target.clone(),
            },
            &[z],
        )?;
        Ok((loss, h))
    }
}

impl Program for GatedNet {
    fn leaf_shapes(&self) -> Vec<(usize, usize)> {
        let (d, c) = (self.x.ncols(), self.target.ncols());
        vec![
            (self.hidden, d),
            (1, self.hidden),
            (self.hidden, d),
            (c, self.hidden),
        ]
    }
    fn build<T: Tensor>(&self, g: &mut Graph<T>, l: &[Var]) -> Result<Var> {
        Ok(self.forward(g, l, None)?.0)
    }
}

fn random_vec(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect()
}

fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(1e-300_f64, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0.0_f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn user_primitive_and_loss_pass_check_grads_to_order_two() {
    let net = GatedNet::new(5, 3, 4, 2, 1);
    let theta = random_vec(net.n_inputs(), 2);
    let opts = CheckGradsOptions {
        seed: 3,
        ..Default::default()
    };
    // value and gradient, then the HVP against differences of the gradient
    let r = check_grads(&ScalarFn(&net), &theta, &opts).unwrap();
    assert!(r.passed, "{r:?}");
    // the HVP (double backward), then the third-order derivative against differences of the HVP
    let r = check_grads(&GradientMap(&net), &theta, &opts).unwrap();
    assert!(r.passed, "{r:?}");
}

#[test]
fn user_primitive_hvp_equals_the_dense_hessian_times_v_also_when_prepared() {
    let net = GatedNet::new(4, 3, 3, 2, 5);
    let n = net.n_inputs();
    let theta = random_vec(n, 6);
    let h = dense_hessian_forward(&net, &theta).unwrap();
    let at = imreg::ad::Point::new(&net.leaf_shapes(), &theta).unwrap();
    let mut lin = imreg::ad::linearize(&net, &at).unwrap();
    for k in 0..3 {
        let v = random_vec(n, 10 + k);
        let want: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|j| h[i * n + j] * v[j]).sum())
            .collect();
        let hv = imreg::ad::hvp(&net, &theta, &v).unwrap();
        assert!(
            rel_err(&hv, &want) < 1e-12,
            "hvp vs dense: {:e}",
            rel_err(&hv, &want)
        );
        let mut prepared = vec![0.0; n];
        lin.hvp_acc(&v, &mut prepared).unwrap();
        assert!(
            rel_err(&prepared, &want) < 1e-12,
            "prepared: {:e}",
            rel_err(&prepared, &want)
        );
    }
    // The dense Hessian is symmetric (forward-over-forward through the user's JVP rules).
    for i in 0..n {
        for j in 0..n {
            assert!((h[i * n + j] - h[j * n + i]).abs() <= 1e-13 * (1.0 + h[i * n + j].abs()));
        }
    }
}

/// Per-example gradients through the tape as the objective layer computes them: the parameters are constants,
/// zero "probe" leaves added to the first pre-activation `a = W₁x + b₁` and to the output `z = W₃h` give the
/// per-row cotangents `δᵃ_i`, `δᶻ_i` (through the user's primitives), and `∇_{W₁}ℓ_i = n δᵃ_i x_iᵀ`,
/// `∇_{b₁}ℓ_i = n δᵃ_i`, `∇_{W₃}ℓ_i = n δᶻ_i h_iᵀ` (the loss is the mean of the `ℓ_i`). Each must equal the
/// gradient of the same program on example `i` alone.
#[test]
fn per_example_gradients_through_user_primitives_match_single_example_gradients() {
    let (n, d, hidden, c) = (4, 3, 3, 2);
    let net = GatedNet::new(n, d, hidden, c, 8);
    let theta = random_vec(net.n_inputs(), 9);
    let params = imreg::ad::unflatten(&theta, &net.leaf_shapes()).unwrap();
    let mut g = Graph::<Mat>::new();
    let consts: Vec<Var> = params.iter().map(|p| g.constant(p.clone())).collect();
    let pa = g.leaf(Mat::zeros((n, hidden)));
    let pz = g.leaf(Mat::zeros((n, c)));
    let (loss, h) = net.forward(&mut g, &consts, Some((pa, pz))).unwrap();
    let deltas = g.backward(loss).unwrap();
    let scale = n as f64;
    for i in 0..n {
        let (_, want) = imreg::ad::grad(&net.rows(i), &theta).unwrap();
        let want = imreg::ad::unflatten(&want, &net.leaf_shapes()).unwrap();
        let w1 = Mat::from_shape_fn((hidden, d), |(o, j)| scale * deltas[0][(i, o)] * net.x[(i, j)]);
        let b1 = Mat::from_shape_fn((1, hidden), |(_, o)| scale * deltas[0][(i, o)]);
        let w3 = Mat::from_shape_fn((c, hidden), |(o, j)| {
            scale * deltas[1][(i, o)] * g.value(h)[(i, j)]
        });
        for (got, want, what) in [
            (&w1, &want[0], "W1"),
            (&b1, &want[1], "b1"),
            (&w3, &want[3], "W3"),
        ] {
            let err = rel_err(got.as_slice().unwrap(), want.as_slice().unwrap());
            assert!(err < 1e-13, "example {i}, {what}: {err:e}");
        }
    }
}

#[test]
fn bad_shapes_for_a_user_primitive_are_typed_errors_naming_it() {
    let mut g = Graph::<Mat>::new();
    let a = g.leaf(Mat::zeros((2, 3)));
    let b = g.leaf(Mat::zeros((2, 4)));
    let err = g.apply(Gate, &[a, b]).unwrap_err();
    assert!(
        err.to_string().contains("gate") && err.to_string().contains("2×3"),
        "{err}"
    );
    assert!(g.apply(Gate, &[a]).is_err());
    let loss = LogCosh {
        target: Mat::zeros((3, 3)),
    };
    assert!(g.apply(loss, &[a]).is_err());
}
