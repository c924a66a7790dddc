//! imreg's side of the CNN-on-MNIST speed comparison with PyTorch (`scripts/anchor_cnn_mnist.py` is the
//! other side; both print one JSON line). On the 10,000 shipped MNIST digits (pixels in `[0, 1]`), with
//! `cnn-relu` on `[1, 28, 28]` (p = 25 258), mean cross-entropy, f64, PyTorch's default initialization:
//!
//! * `epoch`: one epoch of SGD, 100 batches of 100 from a seeded permutation, `θ ← θ − η ∇L_B(θ)`, η = 0.05;
//! * `lambda_max`: one λ_max estimate on the first 1,000 digits at `θ₀`, Lanczos with exactly 20 Hessian–vector
//!   products (full reorthogonalization, no early stop), preparing the Hessian included.
//!
//! Each is run `REPS` times after one untimed warm-up; the median wall time is reported.
//!   RAYON_NUM_THREADS=2 cargo run --release -p imreg-cli --example anchor_cnn_mnist
use imreg_cli::network::pytorch_init;
use imreg_objective::data::{Part, ShippedDataset};
use imreg_objective::models::{preset, NetworkObjective, SpecNetwork, StandardLoss};
use imreg_objective::{rng, Batch, Objective};
use imreg_spectra::{lanczos, HessianOperator, LanczosOptions};
use rand::seq::SliceRandom;
use std::time::Instant;

#[global_allocator]
static ALLOC: imreg_objective::LargeBlockCache = imreg_objective::LargeBlockCache::new();

const REPS: usize = 3;
const BATCH: usize = 100;
const LR: f64 = 0.05;
const LANCZOS_N: usize = 1000;
const LANCZOS_STEPS: usize = 20;

fn median_seconds(
    mut f: impl FnMut() -> Result<f64, Box<dyn std::error::Error>>,
) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    let last = f()?; // warm-up
    let mut t: Vec<f64> = Vec::with_capacity(REPS);
    let mut value = last;
    for _ in 0..REPS {
        let start = Instant::now();
        value = f()?;
        t.push(start.elapsed().as_secs_f64());
    }
    t.sort_by(f64::total_cmp);
    Ok((t[REPS / 2], value))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    imreg_objective::reuse_large_buffers();
    let data = ShippedDataset::Mnist.load(Part::All)?;
    let net = SpecNetwork::new(preset("cnn-relu", &[1, 28, 28], 10)?)?;
    let theta0 = pytorch_init(&net, 0, 1.0);
    let p = theta0.len();

    let all = NetworkObjective::classification(
        net.clone(),
        StandardLoss::CrossEntropy,
        data.x.clone(),
        data.labels.clone(),
    )?;
    let mut perm: Vec<usize> = (0..all.n_examples()).collect();
    perm.shuffle(&mut rng::stream(0, 0));
    let mut grad = vec![0.0; p];
    let (epoch, final_loss) = median_seconds(|| {
        let mut theta = theta0.clone();
        let mut loss = 0.0;
        for b in perm.chunks(BATCH) {
            loss = all.loss_grad(&theta, Batch::Indices(b), &mut grad)?;
            theta.iter_mut().zip(&grad).for_each(|(t, g)| *t -= LR * g);
        }
        Ok(loss)
    })?;

    let first: Vec<usize> = (0..LANCZOS_N).collect();
    let sub = data.subset(&first)?;
    let obj = NetworkObjective::classification(net, StandardLoss::CrossEntropy, sub.x, sub.labels)?;
    let opts = LanczosOptions {
        max_iter: LANCZOS_STEPS,
        k_top: 1,
        k_bottom: 0,
        tol: 0.0,
        ritz_vectors: false,
        ..LanczosOptions::default()
    };
    let (lanczos_s, lambda_max) = median_seconds(|| {
        let h = HessianOperator::new(&obj, &theta0, Batch::Full)?;
        let r = lanczos(&h, &opts)?;
        Ok(r.top.first().map_or(f64::NAN, |t| t.value))
    })?;
    println!(
        "{{\"impl\": \"imreg\", \"threads\": {}, \"p\": {p}, \"epoch_s\": {epoch:.4}, \"epoch_last_batch_loss\": {final_loss:.6}, \"lanczos20_s\": {lanczos_s:.4}, \"lambda_max_20\": {lambda_max:.6}}}",
        rayon::current_num_threads()
    );
    Ok(())
}
