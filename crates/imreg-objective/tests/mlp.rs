//! The autodiff-backed MLP against independent oracles: num-dual dense Hessians, the hand-derived deep linear
//! network (identity activation), per-example identities, thread-count determinism and typed errors.
use imreg_objective::models::{Activation, Mlp, MlpSpec};
use imreg_objective::{Batch, LossKind, Objective, ObjectiveError, Supervised, Targets};
use nalgebra::DVector;
use ndarray::Array2;
use num_dual::{hessian, Dual2DVec64, DualNum};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn data(n: usize, d: usize, c: usize, seed: u64) -> (Array2<f64>, Array2<f64>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = Array2::from_shape_fn((n, d), |_| rng.random::<f64>() * 2.0 - 1.0);
    let y = Array2::from_shape_fn((n, c), |_| rng.random::<f64>() * 2.0 - 1.0);
    let labels = (0..n).map(|i| (i * 7 + 3) % c).collect();
    (x, y, labels)
}

fn spec(widths: Vec<usize>, activation: Activation, loss: LossKind) -> MlpSpec {
    MlpSpec {
        widths,
        activation,
        bias: true,
        loss,
    }
}

fn random_vec(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect()
}

fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    d / b.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300)
}

/// The same network written with num-dual scalars (the dense oracle).
fn loss_dual(m: &Mlp, y: &Array2<f64>, labels: &[usize], theta: &[Dual2DVec64]) -> Dual2DVec64 {
    let s = m.spec();
    let act = |v: Dual2DVec64| match s.activation {
        Activation::Tanh => v.tanh(),
        Activation::Sigmoid => ((-v).exp() + 1.0).recip(),
        Activation::Softplus => (v.exp() + 1.0).ln(),
        Activation::Identity => v,
        _ => unreachable!("no oracle for this activation"),
    };
    let x = m.inputs();
    let layers = s.widths.len() - 1;
    let mut total = Dual2DVec64::from_re(0.0);
    for i in 0..x.nrows() {
        let mut h: Vec<Dual2DVec64> = x.row(i).iter().map(|&v| Dual2DVec64::from_re(v)).collect();
        let mut off = 0;
        for k in 0..layers {
            let (din, dout) = (s.widths[k], s.widths[k + 1]);
            let w = &theta[off..off + din * dout];
            let b = &theta[off + din * dout..off + din * dout + dout];
            off += din * dout + dout;
            let z: Vec<Dual2DVec64> = (0..dout)
                .map(|o| (0..din).fold(b[o].clone(), |acc, j| acc + w[o * din + j].clone() * h[j].clone()))
                .collect();
            h = if k + 1 < layers {
                z.into_iter().map(act).collect()
            } else {
                z
            };
        }
        total += match s.loss {
            LossKind::CrossEntropy => {
                h.iter().fold(Dual2DVec64::from_re(0.0), |a, v| a + v.exp()).ln() - h[labels[i]].clone()
            }
            LossKind::Mse { half } => {
                let c = if half { 0.5 } else { 1.0 };
                h.iter()
                    .zip(y.row(i))
                    .fold(Dual2DVec64::from_re(0.0), |a, (f, &t)| {
                        a + (f.clone() - t).powi(2) * c
                    })
            }
        };
    }
    total / x.nrows() as f64
}

#[test]
fn hvp_equals_dense_hessian_times_v_for_every_loss_and_activation() {
    let cases = [
        (Activation::Tanh, LossKind::Mse { half: true }),
        (Activation::Sigmoid, LossKind::Mse { half: false }),
        (Activation::Softplus, LossKind::CrossEntropy),
        (Activation::Tanh, LossKind::CrossEntropy),
    ];
    for (k, (act, loss)) in cases.into_iter().enumerate() {
        let (x, y, labels) = data(6, 3, 3, k as u64);
        let sp = spec(vec![3, 4, 3], act, loss);
        let m = match loss {
            LossKind::CrossEntropy => Mlp::classification(sp, x, labels.clone()).unwrap(),
            _ => Mlp::regression(sp, x, y.clone()).unwrap(),
        };
        let theta = m.init_params(k as u64, 2.0);
        let (f, g, h) = hessian(
            |t: DVector<Dual2DVec64>| loss_dual(&m, &y, &labels, t.as_slice()),
            DVector::from_vec(theta.clone()),
        );
        assert!((m.loss(&theta, Batch::Full).unwrap() - f).abs() <= 1e-14 * f.abs().max(1.0));
        assert!(rel_err(&m.grad(&theta, Batch::Full).unwrap(), g.as_slice()) < 1e-13);
        for s in 0..3 {
            let v = random_vec(theta.len(), 40 + s);
            let dense: Vec<f64> = (&h * DVector::from_vec(v.clone())).iter().copied().collect();
            let e = rel_err(&m.hvp_vec(&theta, Batch::Full, &v).unwrap(), &dense);
            assert!(e <= 1e-10, "{act:?} {loss:?}: {e:e}");
            let mut lin = vec![0.0; theta.len()];
            m.hessian_at(&theta, Batch::Full)
                .unwrap()
                .hvp(&v, &mut lin)
                .unwrap();
            let e = rel_err(&lin, &dense);
            assert!(e <= 1e-10, "linearized, {act:?} {loss:?}: {e:e}");
        }
    }
}

#[test]
fn parameter_count_matches_the_pytorch_layout_with_and_without_biases() {
    for bias in [true, false] {
        let (x, y, _) = data(7, 3, 2, 5);
        let sp = MlpSpec {
            bias,
            ..spec(vec![3, 4, 6, 2], Activation::Tanh, LossKind::Mse { half: true })
        };
        let m = Mlp::regression(sp, x, y).unwrap();
        let from_shapes: usize = m.param_shapes().iter().map(|s| s.iter().product::<usize>()).sum();
        assert_eq!(m.dim(), from_shapes, "bias = {bias}");
        assert_eq!(m.init_params(1, 1.0).len(), m.dim());
        assert!(m.loss(&m.init_params(1, 1.0), Batch::Full).is_ok());
    }
}

#[test]
fn per_example_gradients_sum_to_n_times_the_batch_gradient() {
    let (x, _, labels) = data(300, 4, 3, 9);
    let m = Mlp::classification(
        spec(vec![4, 5, 3], Activation::Tanh, LossKind::CrossEntropy),
        x,
        labels,
    )
    .unwrap();
    let theta = m.init_params(1, 1.0);
    let batch: Vec<usize> = (0..300).rev().step_by(2).collect();
    let b = Batch::Indices(&batch);
    let mut sum = vec![0.0; m.dim()];
    let mut rows = Vec::new();
    m.per_example_grads(&theta, b, 64, &mut |start, g| {
        assert_eq!(start, rows.len());
        for r in g.rows() {
            sum.iter_mut().zip(r).for_each(|(s, v)| *s += v);
            rows.push(r.to_vec());
        }
        Ok(())
    })
    .unwrap();
    let g = m.grad(&theta, b).unwrap();
    let scaled: Vec<f64> = g.iter().map(|v| v * batch.len() as f64).collect();
    assert!(rel_err(&sum, &scaled) < 1e-13);
    for (k, &i) in batch.iter().enumerate().step_by(37) {
        let gi = m.grad(&theta, Batch::Indices(&[i])).unwrap();
        assert!(rel_err(&rows[k], &gi) < 1e-14, "example {i}");
    }
}

#[test]
fn results_are_bitwise_identical_at_one_and_two_threads() {
    let (x, y, _) = data(700, 5, 2, 2);
    let m = Mlp::regression(
        spec(vec![5, 8, 2], Activation::Tanh, LossKind::Mse { half: true }),
        x,
        y,
    )
    .unwrap();
    let theta = m.init_params(4, 1.0);
    let v = random_vec(theta.len(), 8);
    let run = |threads: usize| {
        imreg_objective::threads::on_threads(threads, || {
            let (mut g, mut hv) = (vec![0.0; theta.len()], vec![0.0; theta.len()]);
            let l = m.loss_grad(&theta, Batch::Full, &mut g).unwrap();
            m.hvp(&theta, Batch::Full, &v, &mut hv).unwrap();
            let mut lin = vec![0.0; theta.len()];
            m.hessian_at(&theta, Batch::Full)
                .unwrap()
                .hvp(&v, &mut lin)
                .unwrap();
            let o = m.outputs(&theta, Batch::Full).unwrap();
            let bits = |a: &[f64]| a.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            (l.to_bits(), bits(&g), bits(&hv), bits(&lin), o)
        })
        .unwrap()
    };
    assert_eq!(run(1), run(2));
}

#[test]
fn output_jacobian_products_satisfy_the_dot_product_identity() {
    let (x, _, labels) = data(9, 3, 4, 6);
    let m = Mlp::classification(
        spec(vec![3, 5, 4], Activation::Gelu, LossKind::CrossEntropy),
        x,
        labels.clone(),
    )
    .unwrap();
    let theta = m.init_params(2, 1.0);
    let v = random_vec(theta.len(), 3);
    let u = Array2::from_shape_vec((9, 4), random_vec(36, 4)).unwrap();
    let jv = m.output_jvp(&theta, Batch::Full, &v).unwrap();
    let mut jtu = vec![0.0; theta.len()];
    m.output_vjp(&theta, Batch::Full, u.view(), &mut jtu).unwrap();
    let a: f64 = (&jv * &u).sum();
    let b: f64 = jtu.iter().zip(&v).map(|(x, y)| x * y).sum();
    assert!((a - b).abs() < 1e-12 * a.abs().max(1.0));
    // Explicit targets equal to the dataset's reproduce the ordinary gradient.
    let mut g1 = vec![0.0; theta.len()];
    m.loss_grad_with_targets(&theta, Batch::Full, Targets::Labels(&labels), &mut g1)
        .unwrap();
    assert!(rel_err(&g1, &m.grad(&theta, Batch::Full).unwrap()) < 1e-15);
}

#[test]
fn bad_input_gives_typed_errors() {
    let (x, y, labels) = data(4, 3, 2, 1);
    let sp = spec(vec![3, 4, 2], Activation::Relu, LossKind::CrossEntropy);
    assert!(matches!(
        Mlp::classification(sp.clone(), x.clone(), vec![0, 1, 2, 0]),
        Err(ObjectiveError::LabelOutOfRange {
            index: 2,
            label: 2,
            classes: 2
        })
    ));
    assert!(matches!(
        Mlp::classification(sp.clone(), x.clone(), vec![0]),
        Err(ObjectiveError::Length { .. })
    ));
    assert!(matches!(
        Mlp::regression(
            spec(vec![2, 4, 2], Activation::Tanh, LossKind::Mse { half: true }),
            x.clone(),
            y.clone()
        ),
        Err(ObjectiveError::Shape { .. })
    ));
    let mut bad_x = x.clone();
    bad_x[(1, 2)] = f64::NAN;
    assert!(matches!(
        Mlp::classification(sp.clone(), bad_x, labels.clone()),
        Err(ObjectiveError::NonFinite { .. })
    ));
    let m = Mlp::classification(sp, x, labels).unwrap();
    assert!(matches!(
        m.loss(&vec![0.0; m.dim() + 1], Batch::Full),
        Err(ObjectiveError::Length { .. })
    ));
    let mut theta = m.init_params(0, 1.0);
    assert!(matches!(
        m.loss(&theta, Batch::Indices(&[7])),
        Err(ObjectiveError::IndexOutOfRange { index: 7, n: 4 })
    ));
    theta[0] = f64::INFINITY;
    assert!(matches!(
        m.loss(&theta, Batch::Full),
        Err(ObjectiveError::NonFinite { .. })
    ));
}

#[test]
fn hessian_at_equals_hvp_over_chunks_for_every_direction() {
    let cases = [
        (Activation::Tanh, LossKind::Mse { half: true }),
        (Activation::Relu, LossKind::Mse { half: false }),
        (Activation::Gelu, LossKind::CrossEntropy),
    ];
    for (k, (act, loss)) in cases.into_iter().enumerate() {
        let (x, y, labels) = data(400, 5, 3, 10 + k as u64);
        let sp = spec(vec![5, 7, 6, 3], act, loss);
        let m = match loss {
            LossKind::CrossEntropy => Mlp::classification(sp, x, labels).unwrap(),
            _ => Mlp::regression(sp, x, y).unwrap(),
        };
        let theta = m.init_params(k as u64, 1.5);
        // 300 batch positions in an arbitrary order: two chunks of 150.
        let ix: Vec<usize> = (0..300).map(|i| (i * 37 + 11) % 400).collect();
        for batch in [Batch::Full, Batch::Indices(&ix)] {
            let h = m.hessian_at(&theta, batch).unwrap();
            for s in 0..2 {
                let v = random_vec(theta.len(), 70 + s);
                let want = m.hvp_vec(&theta, batch, &v).unwrap();
                let mut got = vec![0.0; theta.len()];
                h.hvp(&v, &mut got).unwrap();
                let e = rel_err(&got, &want);
                assert!(e <= 1e-14, "{act:?} {loss:?} direction {s}: {e:e}");
            }
            let mut out = vec![0.0; theta.len()];
            assert!(matches!(
                h.hvp(&vec![0.0; theta.len() - 1], &mut out),
                Err(ObjectiveError::Length { .. })
            ));
            assert!(matches!(
                h.hvp(&vec![f64::NAN; theta.len()], &mut out),
                Err(ObjectiveError::NonFinite { .. })
            ));
        }
        assert!(m.hessian_at(&theta[1..], Batch::Full).is_err());
        assert!(m.hessian_at(&theta, Batch::Indices(&[400])).is_err());
    }
}
