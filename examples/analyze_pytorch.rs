//! Analyze PyTorch weights from Rust: a `cnn-relu` whose `state_dict` was saved by
//! `safetensors.torch.save_file` (the fixture of `scripts/torch_fixture.py`), loaded by name and shape into the
//! preset, then the top-3 Hessian eigenvalues, the exact trace and batch sharpness, next to PyTorch's numbers.
//!
//! `cargo run --release --example analyze_pytorch`
use imreg::objective::models::{preset, read_state_dict, NetworkObjective, SpecNetwork, StandardLoss};
use imreg::objective::{Batch, Objective};
use imreg::spectra::{
    batch_sharpness, exact_trace, lanczos, BatchExpectation, HessianOperator, LanczosOptions,
};
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/imreg-objective/tests/fixtures/torch");
    let torch: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("cnn-relu.json"))?)?;
    // The model: the preset for 1 × 12 × 12 inputs and 4 classes, its weights from PyTorch.
    let mut net = SpecNetwork::new(preset("cnn-relu", &[1, 12, 12], 4)?)?;
    let theta = net.load_state_dict(&read_state_dict(&std::fs::read(
        dir.join("cnn-relu.safetensors"),
    )?)?)?;
    // The data: images `x [n, 1, 12, 12]` (flattened to rows) and labels, stored beside the weights.
    let data = read_state_dict(&std::fs::read(dir.join("cnn-relu.data.safetensors"))?)?;
    let tensor = |name: &str| {
        data.iter()
            .find(|t| t.0 == name)
            .ok_or(format!("no tensor {name}"))
    };
    let (_, shape, x) = tensor("x")?;
    let x = ndarray::Array2::from_shape_vec((shape[0], x.len() / shape[0]), x.clone())?;
    let labels: Vec<usize> = tensor("labels")?.2.iter().map(|&y| y as usize).collect();
    let obj = NetworkObjective::classification(net, StandardLoss::CrossEntropy, x, labels)?;

    let h = HessianOperator::new(&obj, &theta, Batch::Full)?;
    let opts = LanczosOptions {
        k_top: 3,
        max_iter: 300,
        tol: 1e-12,
        ..Default::default()
    };
    let top = lanczos(&h, &opts)?;
    let trace = exact_trace(&h)?;
    let bs = batch_sharpness(&obj, &theta, Batch::Full, 2, &BatchExpectation::Exact)?;

    let rel = |a: f64, key: &str| (a - torch[key].as_f64().unwrap_or(f64::NAN)).abs() / a.abs();
    let row =
        |name: &str, a: f64, key: &str| println!("{name:<24} {a:>22.14e}   rel. diff {:.1e}", rel(a, key));
    println!("{:<24} {:>22}   vs PyTorch (f64)", "quantity", "imreg");
    row("loss", obj.loss(&theta, Batch::Full)?, "loss");
    let g = obj.grad(&theta, Batch::Full)?;
    row("‖∇C‖", g.iter().map(|v| v * v).sum::<f64>().sqrt(), "grad_norm");
    row("λ_max", top.max(), "lambda_max");
    for (k, pair) in top.top.iter().enumerate() {
        let want = torch["lambda_top"][k].as_f64().unwrap_or(f64::NAN);
        println!(
            "λ_{:<22} {:>22.14e}   rel. diff {:.1e}",
            k + 1,
            pair.value,
            (pair.value - want).abs() / want.abs()
        );
    }
    row("Tr H (exact)", trace, "hessian_trace");
    row(
        "batch sharpness (b = 2)",
        bs.mean_of_ratios.value,
        "batch_sharpness",
    );
    println!(
        "Lanczos converged: {} after {} steps",
        top.report.converged, top.report.iterations
    );
    Ok(())
}
