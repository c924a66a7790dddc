//! The loss conventions by name (canonical and PyTorch's), and label-smoothed cross-entropy against
//! independent oracles: its value and gradient in closed form on a linear network, its Hessian there equal
//! to plain cross-entropy's (the logit Hessian `diag p − ppᵀ` does not depend on the targets and a linear
//! network has no residual term), and on a tanh MLP its gradient and HVP against central differences in
//! random directions, with HVP symmetry.
use imreg_objective::models::{NetworkObjective, NetworkSpec, SpecNetwork, StandardLoss};
use imreg_objective::{rng, Batch, Objective};
use ndarray::Array2;

fn net(layers: &str) -> SpecNetwork {
    let spec = format!(r#"{{"name": "t", "input": [4], "layers": {layers}}}"#);
    SpecNetwork::new(NetworkSpec::from_json(&spec).unwrap()).unwrap()
}

fn data(n: usize, seed: u64) -> (Array2<f64>, Vec<usize>) {
    let x = rng::normal_vec(&mut rng::stream(seed, 0), n * 4);
    (
        Array2::from_shape_vec((n, 4), x).unwrap(),
        (0..n).map(|i| (i * 7 + 1) % 3).collect(),
    )
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn names_match_pytorch_one_to_one() {
    let eps = StandardLoss::SmoothedCrossEntropy { epsilon: 0.1 };
    for (name, want) in [
        ("half_mse", StandardLoss::HalfMse),
        ("squared_error", StandardLoss::SquaredError),
        ("mse", StandardLoss::Mse),
        ("MSELoss()", StandardLoss::Mse),
        ("MSELoss", StandardLoss::Mse),
        ("MSELoss(reduction=\"mean\")", StandardLoss::Mse),
        ("MSELoss(reduction='mean')", StandardLoss::Mse),
        ("cross_entropy", StandardLoss::CrossEntropy),
        ("CrossEntropyLoss()", StandardLoss::CrossEntropy),
        (
            "CrossEntropyLoss(label_smoothing=0.0)",
            StandardLoss::CrossEntropy,
        ),
        ("CrossEntropyLoss(label_smoothing=0.1)", eps),
        ("cross_entropy(label_smoothing=0.1)", eps),
        ("BCEWithLogitsLoss()", StandardLoss::Logistic),
        ("logistic", StandardLoss::Logistic),
    ] {
        assert_eq!(StandardLoss::from_name(name), Ok(want), "{name}");
        // The canonical name round-trips through serde (configs keep their old spelling).
        let text = serde_json::to_string(&want).unwrap();
        assert_eq!(serde_json::from_str::<StandardLoss>(&text).unwrap(), want);
    }
    assert_eq!(
        serde_json::to_string(&StandardLoss::HalfMse).unwrap(),
        "\"half_mse\""
    );
    let sum = StandardLoss::from_name("MSELoss(reduction=\"sum\")").unwrap_err();
    assert!(
        sum.contains("squared_error") && sum.contains("batch size"),
        "{sum}"
    );
    for bad in [
        "CrossEntropyLoss(label_smoothing=1.5)",
        "CrossEntropyLoss(label_smoothing=x)",
        "MSELoss(reduction=\"none\")",
        "mse(reduction=\"mean\")",
        "huber",
        "full_mse",
    ] {
        let e = StandardLoss::from_name(bad).unwrap_err();
        assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
    }
    assert!(serde_json::from_str::<StandardLoss>("\"huber\"").is_err());
}

#[test]
fn label_smoothing_on_a_linear_network_matches_the_closed_form() {
    let (n, c, eps) = (9, 3, 0.2);
    let (x, labels) = data(n, 1);
    let lin = net(r#"[{"type": "linear", "out_features": 3}]"#);
    let smooth = NetworkObjective::classification(
        lin.clone(),
        StandardLoss::SmoothedCrossEntropy { epsilon: eps },
        x.clone(),
        labels.clone(),
    )
    .unwrap();
    let plain =
        NetworkObjective::classification(lin, StandardLoss::CrossEntropy, x.clone(), labels.clone()).unwrap();
    let p = smooth.dim();
    assert_eq!(p, 4 * 3 + 3);
    let theta = rng::normal_vec(&mut rng::stream(2, 0), p);
    // θ = [W (3 × 4, row-major), b (3)]: f_i = W x_i + b.
    let (mut loss, mut grad) = (0.0, vec![0.0; p]);
    for i in 0..n {
        let f: Vec<f64> = (0..c)
            .map(|k| (0..4).map(|j| theta[k * 4 + j] * x[(i, j)]).sum::<f64>() + theta[12 + k])
            .collect();
        let m = f.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + f.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        let q = |k: usize| (1.0 - eps) * f64::from(u8::from(k == labels[i])) + eps / c as f64;
        loss += (0..c).map(|k| -q(k) * (f[k] - lse)).sum::<f64>() / n as f64;
        for k in 0..c {
            let r = ((f[k] - lse).exp() - q(k)) / n as f64;
            for j in 0..4 {
                grad[k * 4 + j] += r * x[(i, j)];
            }
            grad[12 + k] += r;
        }
    }
    let mut g = vec![0.0; p];
    let l = smooth.loss_grad(&theta, Batch::Full, &mut g).unwrap();
    assert!((l - loss).abs() <= 1e-14 * loss.abs(), "{l} vs {loss}");
    let gmax = grad.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (a, b) in g.iter().zip(&grad) {
        assert!((a - b).abs() <= 1e-14 * gmax, "{a} vs {b}");
    }
    for k in 0..3 {
        let v = rng::normal_vec(&mut rng::stream(3, k), p);
        let hs = smooth.hvp_vec(&theta, Batch::Full, &v).unwrap();
        let hp = plain.hvp_vec(&theta, Batch::Full, &v).unwrap();
        let scale = hp.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (a, b) in hs.iter().zip(&hp) {
            assert!((a - b).abs() <= 1e-13 * scale, "{a} vs {b}");
        }
    }
}

#[test]
fn label_smoothing_on_an_mlp_agrees_with_central_differences() {
    let (x, labels) = data(7, 4);
    let mlp = net(
        r#"[{"type": "linear", "out_features": 5}, {"type": "tanh"}, {"type": "linear", "out_features": 3}]"#,
    );
    let obj = NetworkObjective::classification(
        mlp,
        StandardLoss::SmoothedCrossEntropy { epsilon: 0.1 },
        x,
        labels,
    )
    .unwrap();
    let p = obj.dim();
    let theta = rng::normal_vec(&mut rng::stream(5, 0), p);
    let h = 1e-5;
    let at = |s: f64, v: &[f64]| -> Vec<f64> { theta.iter().zip(v).map(|(t, d)| t + s * d).collect() };
    for k in 0..3 {
        let v = rng::normal_vec(&mut rng::stream(6, k), p);
        let u = rng::normal_vec(&mut rng::stream(7, k), p);
        // Directional derivative of the loss.
        let g = obj.grad(&theta, Batch::Full).unwrap();
        let fd = (obj.loss(&at(h, &v), Batch::Full).unwrap() - obj.loss(&at(-h, &v), Batch::Full).unwrap())
            / (2.0 * h);
        assert!(
            (dot(&g, &v) - fd).abs() <= 1e-8 * fd.abs().max(1.0),
            "{} vs {fd}",
            dot(&g, &v)
        );
        // HVP against differences of the gradient.
        let hv = obj.hvp_vec(&theta, Batch::Full, &v).unwrap();
        let gp = obj.grad(&at(h, &v), Batch::Full).unwrap();
        let gm = obj.grad(&at(-h, &v), Batch::Full).unwrap();
        let scale = hv.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        for i in 0..p {
            let fd = (gp[i] - gm[i]) / (2.0 * h);
            assert!(
                (hv[i] - fd).abs() <= 1e-7 * scale.max(1.0),
                "HVP entry {i}: {} vs {fd}",
                hv[i]
            );
        }
        let hu = obj.hvp_vec(&theta, Batch::Full, &u).unwrap();
        let (uhv, vhu) = (dot(&u, &hv), dot(&v, &hu));
        assert!((uhv - vhu).abs() <= 1e-12 * uhv.abs().max(vhu.abs()));
    }
}
