//! Per-op tests: value, gradient, HVP and third-order derivative of every tape op against central
//! differences (through `check_grads` at order 2, whose second level checks the HVP against differences of
//! the gradient and the third-order derivative against differences of the HVP), plus the VJP/JVP identity.
use imreg_ad::{check_grads, CheckGradsOptions, GradientMap, Graph, Program, Result, Tensor, Var};
mod common;
use common::{assert_passes_check_grads, random_point};

#[derive(Clone, Copy, Debug)]
enum OpCase {
    MatMul(bool, bool),
    /// `x Wᵀ + 1 bᵀ`, with or without the bias.
    Linear(bool),
    AddRow,
    Add,
    Sub,
    Mul,
    Affine,
    Tanh,
    Relu,
    Softplus,
    Sigmoid,
    Gelu,
    Exp,
    Ln,
    Square,
    SumAxis0,
    SumAxis1,
    MeanAxis0,
    Mean,
    MulScalar,
    LogSoftmax,
    Pick,
    MseHalf,
    MseFull,
    SoftmaxCe,
}

const N: usize = 3;
const C: usize = 4;

impl Program for OpCase {
    fn leaf_shapes(&self) -> Vec<(usize, usize)> {
        match self {
            OpCase::MatMul(ta, tb) => {
                let a = if *ta { (C, N) } else { (N, C) };
                let b = if *tb { (2, C) } else { (C, 2) };
                vec![a, b]
            }
            OpCase::Linear(true) => vec![(N, C), (2, C), (1, 2)],
            OpCase::Linear(false) => vec![(N, C), (2, C)],
            OpCase::AddRow => vec![(N, C), (1, C)],
            OpCase::Add | OpCase::Sub | OpCase::Mul => vec![(N, C), (N, C)],
            OpCase::MulScalar => vec![(N, C), (1, 1)],
            _ => vec![(N, C)],
        }
    }

    fn build<T: Tensor>(&self, g: &mut Graph<T>, l: &[Var]) -> Result<Var> {
        let labels = [1usize, 3, 0];
        let target = imreg_ad::Mat::from_shape_fn((N, C), |(i, j)| 0.3 * i as f64 - 0.2 * j as f64);
        let y = match self {
            OpCase::MatMul(ta, tb) => g.matmul_t(l[0], *ta, l[1], *tb)?,
            OpCase::Linear(bias) => g.linear(l[0], l[1], bias.then(|| l[2]))?,
            OpCase::AddRow => g.add_row(l[0], l[1])?,
            OpCase::Add => g.add(l[0], l[1])?,
            OpCase::Sub => g.sub(l[0], l[1])?,
            OpCase::Mul => g.mul(l[0], l[1])?,
            OpCase::Affine => g.affine(l[0], -1.7, 0.4),
            OpCase::Tanh => g.tanh(l[0]),
            OpCase::Relu => g.relu(l[0]),
            OpCase::Softplus => g.softplus(l[0]),
            OpCase::Sigmoid => g.sigmoid(l[0]),
            OpCase::Gelu => g.gelu(l[0]),
            OpCase::Exp => g.exp(l[0]),
            OpCase::Ln => {
                let e = g.exp(l[0]);
                let e1 = g.affine(e, 1.0, 0.5);
                g.ln(e1)
            }
            OpCase::Square => g.square(l[0]),
            OpCase::SumAxis0 => g.sum_axis(l[0], 0)?,
            OpCase::SumAxis1 => g.sum_axis(l[0], 1)?,
            OpCase::MeanAxis0 => g.mean_axis(l[0], 0)?,
            OpCase::Mean => g.mean(l[0]),
            OpCase::MulScalar => g.mul_scalar(l[0], l[1])?,
            OpCase::LogSoftmax => g.log_softmax(l[0]),
            OpCase::Pick => g.pick(l[0], &labels)?,
            OpCase::MseHalf => return g.mse(l[0], &target, true).map(|v| cube_head(g, v)),
            OpCase::MseFull => return g.mse(l[0], &target, false).map(|v| cube_head(g, v)),
            OpCase::SoftmaxCe => return g.softmax_cross_entropy(l[0], &labels).map(|v| cube_head(g, v)),
        };
        common::head(g, y, None)
    }
}

/// For scalar losses: `v + v³` so that the third derivative of the loss itself is exercised.
fn cube_head<T: Tensor>(g: &mut Graph<T>, v: Var) -> Var {
    let v2 = g.square(v);
    let v3 = g.mul(v2, v).expect("scalar shapes");
    g.add(v, v3).expect("scalar shapes")
}

fn all_cases() -> Vec<OpCase> {
    use OpCase::*;
    let mut cases: Vec<OpCase> = [(false, false), (false, true), (true, false), (true, true)]
        .map(|(ta, tb)| MatMul(ta, tb))
        .into();
    cases.extend([true, false].map(Linear));
    cases.extend([
        AddRow, Add, Sub, Mul, Affine, Tanh, Relu, Softplus, Sigmoid, Gelu, Exp, Ln, Square, SumAxis0,
        SumAxis1, MeanAxis0, Mean, MulScalar, LogSoftmax, Pick, MseHalf, MseFull, SoftmaxCe,
    ]);
    cases
}

#[test]
fn every_op_passes_check_grads_to_order_two() {
    for (k, case) in all_cases().into_iter().enumerate() {
        let x = random_point(case.n_inputs(), k as u64);
        assert_passes_check_grads(&case, &x, 100 + k as u64);
    }
}

#[test]
fn values_match_direct_formulas() {
    let x = random_point(N * C, 7);
    let a = imreg_ad::Mat::from_shape_vec((N, C), x.clone()).unwrap();
    // softmax cross-entropy value against the definition
    let labels = [1usize, 3, 0];
    let mut g = Graph::<imreg_ad::Mat>::new();
    let v = g.leaf(a.clone());
    let ce = g.softmax_cross_entropy(v, &labels).unwrap();
    let want: f64 = (0..N)
        .map(|i| {
            let lse = a.row(i).iter().map(|z| z.exp()).sum::<f64>().ln();
            lse - a[(i, labels[i])]
        })
        .sum::<f64>()
        / N as f64;
    assert!((g.value(ce)[(0, 0)] - want).abs() < 1e-15);
    // MSE with and without the ½
    let t = imreg_ad::Mat::zeros((N, C));
    let h = g.mse(v, &t, true).unwrap();
    let f = g.mse(v, &t, false).unwrap();
    let ss: f64 = x.iter().map(|z| z * z).sum::<f64>() / N as f64;
    assert!((g.value(h)[(0, 0)] - 0.5 * ss).abs() < 1e-15);
    assert!((g.value(f)[(0, 0)] - ss).abs() < 1e-15);
    // nn.Linear: x Wᵀ + 1 bᵀ entry by entry, and typed errors for mismatched weight or bias shapes
    let w = imreg_ad::Mat::from_shape_fn((2, C), |(i, j)| 0.5 - 0.3 * i as f64 + 0.1 * j as f64);
    let b = imreg_ad::Mat::from_shape_vec((1, 2), vec![0.25, -1.5]).unwrap();
    let (wv, bv) = (g.leaf(w.clone()), g.leaf(b.clone()));
    let lin = g.linear(v, wv, Some(bv)).unwrap();
    for ((i, o), got) in g.value(lin).indexed_iter() {
        let want = b[(0, o)] + (0..C).map(|j| a[(i, j)] * w[(o, j)]).sum::<f64>();
        assert!((got - want).abs() < 1e-15, "({i}, {o}): {got} vs {want}");
    }
    assert!(g.linear(v, bv, None).is_err());
    assert!(g.linear(v, wv, Some(wv)).is_err());
    // GELU(1) = Φ(1)
    let one = g.constant(imreg_ad::Mat::from_elem((1, 1), 1.0));
    let ge = g.gelu(one);
    assert!((g.value(ge)[(0, 0)] - 0.8413447460685429).abs() < 1e-15);
}

#[test]
fn stable_cross_entropy_at_huge_logits() {
    let mut g = Graph::<imreg_ad::Mat>::new();
    let z = g.leaf(imreg_ad::Mat::from_shape_vec((1, 3), vec![1000.0, -1000.0, 0.0]).unwrap());
    let ce = g.softmax_cross_entropy(z, &[0]).unwrap();
    assert!(g.value(ce)[(0, 0)].abs() < 1e-300);
    let grads = g.backward(ce).unwrap();
    assert!(grads[0].iter().all(|v| v.is_finite()));
}

/// `check_grads` must catch a wrong derivative at each level: a JVP off by 1e-4, a VJP that is not the
/// transpose, and a second derivative that is wrong.
#[test]
fn check_grads_detects_wrong_derivatives() {
    use imreg_ad::Differentiable;
    struct Cubic {
        jvp_bias: f64,
        vjp_bias: f64,
        second_bias: f64,
    }
    // f(x) = (Σ x³, x₀x₁); J = [[3x₀², 3x₁²], [x₁, x₀]]
    impl Differentiable for Cubic {
        fn dim_in(&self) -> usize {
            2
        }
        fn dim_out(&self) -> usize {
            2
        }
        fn eval(&self, x: &[f64]) -> Result<Vec<f64>> {
            Ok(vec![x[0].powi(3) + x[1].powi(3), x[0] * x[1]])
        }
        fn jvp(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>> {
            Ok(vec![
                3.0 * x[0] * x[0] * v[0] + 3.0 * x[1] * x[1] * v[1] + self.jvp_bias,
                x[1] * v[0] + x[0] * v[1],
            ])
        }
        fn vjp(&self, x: &[f64], u: &[f64]) -> Result<Vec<f64>> {
            Ok(vec![
                3.0 * x[0] * x[0] * u[0] + x[1] * u[1] + self.vjp_bias,
                3.0 * x[1] * x[1] * u[0] + x[0] * u[1],
            ])
        }
        fn directional(&self, v: &[f64]) -> Option<Box<dyn Differentiable + '_>> {
            let inner = Cubic {
                jvp_bias: 0.0,
                vjp_bias: 0.0,
                second_bias: 0.0,
            };
            Some(Box::new(Along {
                f: inner,
                v: v.to_vec(),
                bias: self.second_bias,
            }))
        }
    }
    struct Along {
        f: Cubic,
        v: Vec<f64>,
        bias: f64,
    }
    // x ↦ J(x) v; its Jacobian: [[6x₀v₀, 6x₁v₁], [v₁, v₀]]
    impl Differentiable for Along {
        fn dim_in(&self) -> usize {
            2
        }
        fn dim_out(&self) -> usize {
            2
        }
        fn eval(&self, x: &[f64]) -> Result<Vec<f64>> {
            self.f.jvp(x, &self.v)
        }
        fn jvp(&self, x: &[f64], w: &[f64]) -> Result<Vec<f64>> {
            let v = &self.v;
            Ok(vec![
                6.0 * x[0] * v[0] * w[0] + 6.0 * x[1] * v[1] * w[1] * (1.0 + self.bias),
                v[1] * w[0] + v[0] * w[1],
            ])
        }
        fn vjp(&self, x: &[f64], u: &[f64]) -> Result<Vec<f64>> {
            let v = &self.v;
            Ok(vec![
                6.0 * x[0] * v[0] * u[0] + v[1] * u[1],
                6.0 * x[1] * v[1] * u[0] * (1.0 + self.bias) + v[0] * u[1],
            ])
        }
    }
    let x = [0.7, -0.4];
    let opts = CheckGradsOptions::default();
    let ok = Cubic {
        jvp_bias: 0.0,
        vjp_bias: 0.0,
        second_bias: 0.0,
    };
    assert!(check_grads(&ok, &x, &opts).unwrap().passed);
    for bad in [
        Cubic {
            jvp_bias: 1e-4,
            vjp_bias: 0.0,
            second_bias: 0.0,
        },
        Cubic {
            jvp_bias: 0.0,
            vjp_bias: 1e-6,
            second_bias: 0.0,
        },
        Cubic {
            jvp_bias: 0.0,
            vjp_bias: 0.0,
            second_bias: 1e-4,
        },
    ] {
        assert!(!check_grads(&bad, &x, &opts).unwrap().passed);
    }
}

#[test]
fn check_grads_errors_are_near_rounding() {
    // The tolerance of 1e-6 is not hiding large errors: the measured errors are ~1e-9 or smaller.
    let case = OpCase::SoftmaxCe;
    let x = random_point(case.n_inputs(), 3);
    let r = check_grads(&GradientMap(&case), &x, &CheckGradsOptions::default()).unwrap();
    assert!(r.jvp_fd_rel_err < 1e-8, "{r:?}");
    assert!(r.vjp_identity_rel_err < 1e-13, "{r:?}");
    let s = r.second.unwrap();
    assert!(s.jvp_fd_rel_err < 1e-8 && s.vjp_identity_rel_err < 1e-13, "{s:?}");
}

#[test]
fn tangent_only_hvp_equals_the_full_forward_over_reverse_pass_bitwise() {
    for (k, case) in all_cases().into_iter().enumerate() {
        let x = random_point(case.n_inputs(), 500 + k as u64);
        let v = random_point(case.n_inputs(), 900 + k as u64);
        let (_, _, hv_full) = imreg_ad::grad_hvp(&case, &x, &v).unwrap();
        let hv = imreg_ad::hvp(&case, &x, &v).unwrap();
        let bits = |a: &[f64]| a.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&hv), bits(&hv_full), "{case:?}");
    }
}

#[test]
fn linearized_hvp_equals_hvp_for_every_op_and_every_direction() {
    for (k, case) in all_cases().into_iter().enumerate() {
        let n = case.n_inputs();
        let x = random_point(n, 1500 + k as u64);
        let at = imreg_ad::Point::new(&case.leaf_shapes(), &x).unwrap();
        let mut lin = imreg_ad::linearize(&case, &at).unwrap();
        assert_eq!(lin.len(), n);
        // Two directions in a row: the second replay must not see the first one's tangents.
        for j in 0..2u64 {
            let v = random_point(n, 1900 + 10 * k as u64 + j);
            let want = imreg_ad::hvp(&case, &x, &v).unwrap();
            let mut got = vec![0.0; n];
            lin.hvp_acc(&v, &mut got).unwrap();
            let scale = want.iter().fold(1e-300_f64, |m, w| m.max(w.abs()));
            let err = want
                .iter()
                .zip(&got)
                .fold(0.0_f64, |m, (w, g)| m.max((w - g).abs()));
            // The same operations on the same primal values, up to the order of a few tangent sums.
            assert!(
                err <= 1e-14 * scale,
                "{case:?} direction {j}: {err:e} (scale {scale:e})"
            );
        }
        // Bad directions are typed errors, never panics.
        let mut out = vec![0.0; n];
        assert!(lin.hvp_acc(&vec![0.0; n + 1], &mut out).is_err());
        assert!(lin.hvp_acc(&vec![f64::NAN; n], &mut out).is_err());
        assert!(lin.hvp_acc(&vec![0.0; n], &mut vec![0.0; n + 1]).is_err());
    }
}
