//! Dense oracles: HVPs of small networks equal (num-dual Hessian) × v; HVP symmetry and `check_grads` as
//! proptests over random shapes; gradients of gradient norms against finite differences; typed errors.
use imreg_ad::nn::{DenseLoss, Head};
use imreg_ad::{Dense, Graph, Mat, Program, Result, Tensor, Unary, Var};
use nalgebra::DVector;
use num_dual::{hessian, Dual2DVec64, DualNum};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A tanh MLP with PyTorch `nn.Linear` layers on fixed data, MSE (½) or cross-entropy.
struct Mlp {
    prog: DenseLoss,
    widths: Vec<usize>,
    x: Mat,
    y: Mat,
    labels: Vec<usize>,
    ce: bool,
}

impl Mlp {
    fn new(widths: Vec<usize>, n: usize, ce: bool, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let d = widths[0];
        let c = *widths.last().unwrap();
        let x = Mat::from_shape_fn((n, d), |_| rng.random::<f64>() * 2.0 - 1.0);
        let y = Mat::from_shape_fn((n, c), |_| rng.random::<f64>() * 2.0 - 1.0);
        let labels: Vec<usize> = (0..n).map(|i| i % c).collect();
        let head = if ce {
            Head::CrossEntropy {
                labels: labels.clone(),
            }
        } else {
            Head::Mse {
                y: y.clone(),
                half: true,
            }
        };
        let prog = DenseLoss {
            net: Dense {
                widths: widths.clone(),
                activation: Unary::Tanh,
                bias: true,
            },
            x: x.clone(),
            head,
        };
        Mlp {
            prog,
            widths,
            x,
            y,
            labels,
            ce,
        }
    }
}

impl Program for Mlp {
    fn leaf_shapes(&self) -> Vec<(usize, usize)> {
        self.prog.leaf_shapes()
    }
    fn build<T: Tensor>(&self, g: &mut Graph<T>, l: &[Var]) -> Result<Var> {
        self.prog.build(g, l)
    }
}

/// The same network written with num-dual scalars, for the dense Hessian oracle.
fn mlp_loss_dual(m: &Mlp, theta: &[Dual2DVec64]) -> Dual2DVec64 {
    let n = m.x.nrows();
    let layers = m.widths.len() - 1;
    let mut total = Dual2DVec64::from_re(0.0);
    for i in 0..n {
        let mut h: Vec<Dual2DVec64> = m.x.row(i).iter().map(|&v| Dual2DVec64::from_re(v)).collect();
        let mut off = 0;
        for k in 0..layers {
            let (din, dout) = (m.widths[k], m.widths[k + 1]);
            let w = &theta[off..off + din * dout];
            let b = &theta[off + din * dout..off + din * dout + dout];
            off += din * dout + dout;
            let mut z: Vec<Dual2DVec64> = (0..dout)
                .map(|o| (0..din).fold(b[o].clone(), |acc, j| acc + w[o * din + j].clone() * h[j].clone()))
                .collect();
            if k + 1 < layers {
                z = z.into_iter().map(|v| v.tanh()).collect();
            }
            h = z;
        }
        let li = if m.ce {
            let lse = h
                .iter()
                .fold(Dual2DVec64::from_re(0.0), |acc, v| acc + v.exp())
                .ln();
            lse - h[m.labels[i]].clone()
        } else {
            h.iter()
                .zip(m.y.row(i))
                .fold(Dual2DVec64::from_re(0.0), |acc, (f, &y)| {
                    acc + (f.clone() - y).powi(2) * 0.5
                })
        };
        total += li;
    }
    total / n as f64
}

fn random_vec(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| scale * (rng.random::<f64>() * 2.0 - 1.0))
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    d / dot(b, b).sqrt().max(1e-300)
}

#[test]
fn hvp_equals_dense_num_dual_hessian_times_v() {
    for (k, ce) in [(0u64, false), (1, true)] {
        let m = Mlp::new(vec![3, 4, 3], 5, ce, k);
        let p = m.n_inputs();
        let theta = random_vec(p, 10 + k, 0.8);
        let (f, grad, h) = hessian(
            |t: DVector<Dual2DVec64>| mlp_loss_dual(&m, t.as_slice()),
            DVector::from_vec(theta.clone()),
        );
        let (f_ad, g_ad) = imreg_ad::grad(&m, &theta).unwrap();
        assert!((f - f_ad).abs() <= 1e-14 * f.abs().max(1.0));
        assert!(rel_err(&g_ad, grad.as_slice()) < 1e-13);
        for s in 0..3 {
            let v = random_vec(p, 100 + s, 1.0);
            let hv_dense: Vec<f64> = (&h * DVector::from_vec(v.clone())).iter().copied().collect();
            let hv = imreg_ad::hvp(&m, &theta, &v).unwrap();
            let e = rel_err(&hv, &hv_dense);
            assert!(e <= 1e-10, "ce={ce}: relative error {e:e}");
        }
    }
}

#[test]
fn gradient_of_squared_gradient_norm_is_two_h_g() {
    let m = Mlp::new(vec![2, 3, 2], 4, true, 5);
    let theta = random_vec(m.n_inputs(), 6, 0.9);
    let p = theta.len();
    let (n2, grad_n2) = imreg_ad::grad_of_block_grad_norm(&m, &theta, 0..p).unwrap();
    let (_, g) = imreg_ad::grad(&m, &theta).unwrap();
    assert!((n2 - dot(&g, &g)).abs() < 1e-15);
    // central differences of θ ↦ ‖∇L(θ)‖² in random directions
    let h = 1e-5;
    for s in 0..3 {
        let v = random_vec(p, 50 + s, 1.0);
        let norm2_at = |t: &[f64]| {
            let (_, g) = imreg_ad::grad(&m, t).unwrap();
            dot(&g, &g)
        };
        let tp: Vec<f64> = theta.iter().zip(&v).map(|(a, b)| a + h * b).collect();
        let tm: Vec<f64> = theta.iter().zip(&v).map(|(a, b)| a - h * b).collect();
        let fd = (norm2_at(&tp) - norm2_at(&tm)) / (2.0 * h);
        let ad = dot(&grad_n2, &v);
        assert!((fd - ad).abs() <= 1e-7 * ad.abs().max(1e-3), "{fd} vs {ad}");
    }
}

/// A network whose input is a leaf too, to differentiate through the input gradient: ∇_θ ‖∇_x L‖².
struct WithInput(Mlp);

impl Program for WithInput {
    fn leaf_shapes(&self) -> Vec<(usize, usize)> {
        let mut s = self.0.leaf_shapes();
        s.push(self.0.x.dim());
        s
    }
    fn build<T: Tensor>(&self, g: &mut Graph<T>, l: &[Var]) -> Result<Var> {
        let (params, x) = l.split_at(l.len() - 1);
        let (out, _) = self.0.prog.net.forward(g, params, x[0], &[])?;
        g.softmax_cross_entropy(out, &self.0.labels)
    }
}

#[test]
fn gradient_through_the_input_gradient_matches_differences() {
    let m = Mlp::new(vec![3, 4, 3], 4, true, 8);
    let p = m.n_inputs();
    let x_flat: Vec<f64> = m.x.iter().copied().collect();
    let theta = random_vec(p, 9, 0.9);
    let prog = WithInput(m);
    let z: Vec<f64> = theta.iter().chain(&x_flat).copied().collect();
    let (_, grad_pen) = imreg_ad::grad_of_block_grad_norm(&prog, &z, p..z.len()).unwrap();
    // θ ↦ ‖∇_x L(θ, x)‖² by central differences
    let pen = |t: &[f64]| {
        let zz: Vec<f64> = t.iter().chain(&x_flat).copied().collect();
        let (_, g) = imreg_ad::grad(&prog, &zz).unwrap();
        dot(&g[p..], &g[p..])
    };
    let h = 1e-5;
    for s in 0..3 {
        let v = random_vec(p, 70 + s, 1.0);
        let tp: Vec<f64> = theta.iter().zip(&v).map(|(a, b)| a + h * b).collect();
        let tm: Vec<f64> = theta.iter().zip(&v).map(|(a, b)| a - h * b).collect();
        let fd = (pen(&tp) - pen(&tm)) / (2.0 * h);
        let ad = dot(&grad_pen[..p], &v);
        assert!((fd - ad).abs() <= 1e-7 * ad.abs().max(1e-3), "{fd} vs {ad}");
    }
}

#[test]
fn bad_input_gives_typed_errors() {
    use imreg_ad::AdError;
    let m = Mlp::new(vec![2, 3, 2], 3, true, 1);
    let p = m.n_inputs();
    assert!(matches!(
        imreg_ad::grad(&m, &vec![0.0; p + 1]),
        Err(AdError::Length { .. })
    ));
    let mut nan = vec![0.1; p];
    nan[2] = f64::NAN;
    assert!(matches!(
        imreg_ad::grad(&m, &nan),
        Err(AdError::NonFinite { index: 2, .. })
    ));
    assert!(matches!(
        imreg_ad::hvp(&m, &vec![0.1; p], &[0.0; 3]),
        Err(AdError::Length { .. })
    ));
    let mut g = Graph::<Mat>::new();
    let a = g.leaf(Mat::zeros((2, 3)));
    let b = g.leaf(Mat::zeros((2, 3)));
    assert!(matches!(g.matmul(a, b), Err(AdError::Shape { op: "matmul", .. })));
    assert!(matches!(
        g.softmax_cross_entropy(a, &[0, 3]),
        Err(AdError::Label {
            row: 1,
            label: 3,
            classes: 3
        })
    ));
    assert!(matches!(
        g.softmax_cross_entropy(a, &[0]),
        Err(AdError::Length { .. })
    ));
    assert!(matches!(
        g.mse(a, &Mat::zeros((3, 2)), true),
        Err(AdError::Shape { op: "mse", .. })
    ));
    assert!(matches!(
        g.backward(a),
        Err(AdError::NotScalar { rows: 2, cols: 3 })
    ));
    assert!(matches!(g.sum_axis(a, 2), Err(AdError::Invalid { .. })));
}

proptest! {
    // Seeded ChaCha and no failure files: every run (CI included) draws the same cases.
    #![proptest_config(ProptestConfig {
        cases: 48,
        rng_algorithm: proptest::test_runner::RngAlgorithm::ChaCha,
        rng_seed: proptest::test_runner::RngSeed::Fixed(6864),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// ⟨u, Hv⟩ = ⟨Hu, v⟩ for random architectures, losses and points.
    #[test]
    fn hvp_is_symmetric(d in 1usize..5, h in 1usize..6, c in 2usize..4, n in 1usize..6, ce in any::<bool>(), seed in 0u64..1000) {
        let m = Mlp::new(vec![d, h, c], n, ce, seed);
        let p = m.n_inputs();
        let theta = random_vec(p, seed + 1, 1.0);
        let u = random_vec(p, seed + 2, 1.0);
        let v = random_vec(p, seed + 3, 1.0);
        let hu = imreg_ad::hvp(&m, &theta, &u).unwrap();
        let hv = imreg_ad::hvp(&m, &theta, &v).unwrap();
        let (a, b) = (dot(&u, &hv), dot(&hu, &v));
        prop_assert!((a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1e-3), "{} vs {}", a, b);
    }

    /// check_grads (order 2, on f and on ∇f) passes over random shapes.
    #[test]
    fn check_grads_over_random_shapes(d in 1usize..4, h in 1usize..5, c in 2usize..4, n in 1usize..5, ce in any::<bool>(), seed in 0u64..1000) {
        let m = Mlp::new(vec![d, h, c], n, ce, seed);
        let theta = random_vec(m.n_inputs(), seed + 7, 1.0);
        let opts = imreg_ad::CheckGradsOptions { seed, ..Default::default() };
        let r = imreg_ad::check_grads(&imreg_ad::ScalarFn(&m), &theta, &opts).unwrap();
        prop_assert!(r.passed, "{:?}", r);
        let r = imreg_ad::check_grads(&imreg_ad::GradientMap(&m), &theta, &opts).unwrap();
        prop_assert!(r.passed, "{:?}", r);
    }
}

/// The case CI once drew (d = 2, h = 4, c = 3, n = 3, cross-entropy, seed 89): one of the random directions is
/// nearly orthogonal to the gradient, so `∇f·v` is small while the central difference's error is not. Measured
/// against `‖Jv‖` alone that read as a 2.5e-6 "relative error"; against the derivative's size it is rounding.
#[test]
fn check_grads_scales_errors_by_the_derivative_not_the_direction() {
    let m = Mlp::new(vec![2, 4, 3], 3, true, 89);
    let theta = random_vec(m.n_inputs(), 89 + 7, 1.0);
    let opts = imreg_ad::CheckGradsOptions {
        seed: 89,
        ..Default::default()
    };
    let r = imreg_ad::check_grads(&imreg_ad::ScalarFn(&m), &theta, &opts).unwrap();
    assert!(r.passed && r.jvp_fd_rel_err < 1e-8, "{r:?}");
}
