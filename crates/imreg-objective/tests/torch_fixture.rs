//! Our network objectives against PyTorch (f64) on fixed weights and data: the fixture in `tests/fixtures/torch`
//! is written by `scripts/torch_fixture.py` (Cohen et al.'s `cnn-relu`, and a tiny ResNet with batch norm in
//! evaluation and in training mode). Loss, gradient, HVP, per-example gradient norms and (where the dense
//! Hessian is small) λ_max agree to ≤ 1e-10 relative.
use imreg_objective::models::{
    read_state_dict, Network, NetworkObjective, NetworkSpec, SpecNetwork, StandardLoss,
};
use imreg_objective::{Batch, Objective};
use ndarray::Array2;
use serde_json::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/torch");

fn close(what: &str, ours: f64, torch: f64, scale: f64) {
    let err = (ours - torch).abs() / scale.max(1e-300);
    assert!(
        err <= 1e-10,
        "{what}: ours {ours:e}, PyTorch {torch:e}, relative error {err:e}"
    );
}

fn check_case(case: &str) {
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/{case}.json")).unwrap()).unwrap();
    let spec = NetworkSpec::from_json(&record["spec"].to_string()).unwrap();
    let mut net = SpecNetwork::new(spec).unwrap();
    let state = read_state_dict(&std::fs::read(format!("{DIR}/{case}.safetensors")).unwrap()).unwrap();
    let theta = net.load_state_dict(&state).unwrap();
    let data = read_state_dict(&std::fs::read(format!("{DIR}/{case}.data.safetensors")).unwrap()).unwrap();
    let get = |name: &str| data.iter().find(|t| t.0 == name).unwrap();
    let (_, xs, xd) = get("x");
    let x = Array2::from_shape_vec((xs[0], xd.len() / xs[0]), xd.clone()).unwrap();
    let labels: Vec<usize> = get("labels").2.iter().map(|&l| l as usize).collect();
    let obj = NetworkObjective::classification(net, StandardLoss::CrossEntropy, x, labels).unwrap();
    assert_eq!(obj.dim() as u64, record["n_params"].as_u64().unwrap());
    let num = |k: &str| record[k].as_f64().unwrap();

    close(
        &format!("{case} loss"),
        obj.loss(&theta, Batch::Full).unwrap(),
        num("loss"),
        num("loss"),
    );
    let g = obj.grad(&theta, Batch::Full).unwrap();
    let gn = g.iter().map(|v| v * v).sum::<f64>().sqrt();
    close(&format!("{case} ‖g‖"), gn, num("grad_norm"), num("grad_norm"));
    for (i, want) in record["grad_entries"].as_object().unwrap() {
        let i: usize = i.parse().unwrap();
        close(&format!("{case} g[{i}]"), g[i], want.as_f64().unwrap(), gn);
    }
    let v: Vec<f64> = (0..obj.dim()).map(|k| (0.5 * k as f64 + 1.0).sin()).collect();
    let mut hv = vec![0.0; obj.dim()];
    obj.hessian_at(&theta, Batch::Full)
        .unwrap()
        .hvp(&v, &mut hv)
        .unwrap();
    let vhv: f64 = v.iter().zip(&hv).map(|(a, b)| a * b).sum();
    close(&format!("{case} vᵀHv"), vhv, num("vhv"), num("vhv").abs());
    let hn = hv.iter().map(|v| v * v).sum::<f64>().sqrt();
    for (i, want) in record["hvp_entries"].as_object().unwrap() {
        let i: usize = i.parse().unwrap();
        close(&format!("{case} (Hv)[{i}]"), hv[i], want.as_f64().unwrap(), hn);
    }
    let want: Vec<f64> = record["per_example_grad_norms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let mut norms = Vec::new();
    obj.per_example_grads(&theta, Batch::Full, 4, &mut |_, rows| {
        norms.extend(
            rows.rows()
                .into_iter()
                .map(|r| r.iter().map(|v| v * v).sum::<f64>().sqrt()),
        );
        Ok(())
    })
    .unwrap();
    for (k, (a, b)) in norms.iter().zip(&want).enumerate() {
        close(&format!("{case} ‖∇ℓ_{k}‖"), *a, *b, *b);
    }
    if record["lambda_max_method"].as_str().unwrap().starts_with("dense") {
        let h = obj.dense_hessian(&theta, Batch::Full).unwrap();
        let lam = nalgebra::SymmetricEigen::new(h).eigenvalues.max();
        close(
            &format!("{case} λ_max"),
            lam,
            num("lambda_max"),
            num("lambda_max").abs(),
        );
    }
    assert_eq!(obj.network().couples_examples(), case.ends_with("train"));
}

#[test]
fn cnn_relu_agrees_with_pytorch() {
    check_case("cnn-relu");
}

#[test]
fn small_resnet_with_eval_mode_batch_norm_agrees_with_pytorch() {
    check_case("resnet-bn-eval");
}

#[test]
fn small_resnet_with_training_mode_batch_norm_agrees_with_pytorch() {
    check_case("resnet-bn-train");
}
