//! The support trainer's network against independent oracles: the closed-form gradient of the two-layer linear
//! net `f = wᵀW x` under both loss conventions, central differences for a deep ReLU net, and divergence as a
//! typed outcome with its step.
use imreg_objective::data::Regression;
use imreg_sgd::reg_error::RegError;
use imreg_sgd::support::{he_init, train_support, SupportConfig, SupportLoss, SupportNet};
use ndarray::Array2;

fn data(n: usize, d: usize) -> Regression {
    let x = Array2::from_shape_fn((n, d), |(i, j)| ((i * 7 + j * 3) as f64 * 0.61).sin());
    let y = Array2::from_shape_fn((n, 1), |(i, _)| ((i * 5) as f64 * 0.37).cos());
    Regression::new(x, y).unwrap()
}

fn rel(a: &[f64], b: &[f64]) -> f64 {
    let d: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt();
    d / b.iter().map(|y| y * y).sum::<f64>().sqrt()
}

/// `L = c · mean_B (wᵀW x_i − y_i)²`: `∇W = (2c/|B|) Σ r_i w x_iᵀ`, `∇w = (2c/|B|) Σ r_i W x_i`, with
/// `c = 1` (torch `MSELoss`) or `½`; θ is `W` (`h × d`, row-major) then `wᵀ` (`1 × h`).
#[test]
fn two_layer_linear_gradient_is_the_closed_form() {
    let (n, d, h) = (9, 4, 3);
    let data = data(n, d);
    let theta = he_init(&[d, h, 1], 5);
    let (w1, w2) = theta.split_at(h * d);
    let rows = [0, 3, 3, 7, 8];
    for (loss, c) in [(SupportLoss::TorchMse, 1.0), (SupportLoss::HalfMse, 0.5)] {
        let net = SupportNet::new(&data, &[d, h, 1], false, loss).unwrap();
        let (mut want, mut want_loss) = (vec![0.0; theta.len()], 0.0);
        let m = rows.len() as f64;
        for &i in &rows {
            let x = data.x.row(i);
            let hid: Vec<f64> = (0..h)
                .map(|o| (0..d).map(|j| w1[o * d + j] * x[j]).sum())
                .collect();
            let r = hid.iter().zip(w2).map(|(a, b)| a * b).sum::<f64>() - data.y[(i, 0)];
            want_loss += c * r * r / m;
            for o in 0..h {
                for j in 0..d {
                    want[o * d + j] += 2.0 * c * r * w2[o] * x[j] / m;
                }
                want[h * d + o] += 2.0 * c * r * hid[o] / m;
            }
        }
        let mut got = vec![0.0; theta.len()];
        let l = net.loss_grad(&theta, &rows, &mut got).unwrap();
        assert!(
            (l - want_loss).abs() <= 1e-14 * want_loss,
            "{loss:?}: {l} vs {want_loss}"
        );
        assert!(rel(&got, &want) <= 1e-14, "{loss:?}: {:e}", rel(&got, &want));
    }
}

/// A deep ReLU net's gradient against central differences in random directions (a generic point is away
/// from the kinks, where the loss is smooth).
#[test]
fn deep_relu_gradient_matches_central_differences() {
    let widths = [5, 6, 4, 1];
    let data = data(20, 5);
    let net = SupportNet::new(&data, &widths, true, SupportLoss::TorchMse).unwrap();
    let theta = he_init(&widths, 11);
    let rows: Vec<usize> = (0..20).step_by(3).collect();
    let mut g = vec![0.0; net.dim()];
    net.loss_grad(&theta, &rows, &mut g).unwrap();
    let mut scratch = vec![0.0; net.dim()];
    for k in 0..4 {
        let v = he_init(&widths, 100 + k);
        let mut at = |s: f64| {
            let t: Vec<f64> = theta.iter().zip(&v).map(|(a, b)| a + s * b).collect();
            net.loss_grad(&t, &rows, &mut scratch).unwrap()
        };
        let h = 1e-5;
        let fd = (at(h) - at(-h)) / (2.0 * h);
        let dir: f64 = g.iter().zip(&v).map(|(a, b)| a * b).sum();
        assert!(
            (fd - dir).abs() <= 1e-7 * dir.abs().max(1.0),
            "direction {k}: {fd} vs {dir}"
        );
    }
}

#[test]
fn divergence_is_reported_with_its_step() {
    let data = data(16, 4);
    let cfg = SupportConfig {
        widths: vec![4, 8, 8, 1],
        r: 2,
        lr: 1e6,
        clip: None,
        ..SupportConfig::paper(Some(4), 100, 0)
    };
    match train_support(&data, &cfg, None) {
        Err(RegError::Diverged { step, .. }) => assert!((1..=100).contains(&step)),
        other => panic!("expected divergence, got {other:?}"),
    }
    assert!(matches!(
        SupportNet::new(&data, &[3, 1], false, SupportLoss::HalfMse),
        Err(RegError::Invalid { field: "widths", .. })
    ));
}

/// Full batches of more than one chunk are reduced in parallel, in a fixed order: runs are bitwise identical
/// at one and two threads.
#[test]
fn runs_are_bitwise_identical_at_one_and_two_threads() {
    let data = data(700, 4);
    let cfg = SupportConfig {
        widths: vec![4, 6, 6, 1],
        r: 2,
        record_every: 10,
        ..SupportConfig::paper(None, 30, 3)
    };
    let run = |threads: usize| {
        imreg_objective::threads::on_threads(threads, || train_support(&data, &cfg, None).unwrap()).unwrap()
    };
    let (one, two) = (run(1), run(2));
    assert_eq!(one, two);
    assert!(one.loss[3] < one.loss[0]);
}
