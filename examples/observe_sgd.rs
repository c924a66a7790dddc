//! Observe batch sharpness and λ_max along SGD (Andreyev & Beneventano's edge of stochastic stability): a tanh
//! MLP on 256 UCI digits (initialized at 0.2× PyTorch's scale, as the registered EoSS check does), SGD with
//! batch 8, and three observers on one loop — the full loss, the warm-started Lanczos sharpness λ_max, and
//! batch sharpness E_B[g_BᵀH_Bg_B / ‖g_B‖²] (a Monte Carlo estimate, printed with its standard error) —
//! next to the stability threshold 2/η. Batch sharpness rises towards 2/η while λ_max stays well below it.
//!
//! `cargo run --release --example observe_sgd`
use imreg::eos::edge_of_stability::DigitsMlp;
use imreg::objective::Remainder;
use imreg::sgd::observe::{BatchSharpnessProbe, Cadence, FullLoss, Scheduled, SharpnessProbe};
use imreg::sgd::sampler::Sampler;
use imreg::sgd::train::{train, Optimizer, Seeds, TrainOptions};
use imreg::spectra::MonteCarloOptions;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mlp, theta0) = DigitsMlp {
        init_scale: 0.2,
        ..DigitsMlp::cohen(256)
    }
    .build()?;
    let (lr, batch) = (0.75, 8);
    let method = Optimizer::sgd(Sampler::reshuffling(batch, Remainder::Drop));
    let opts = TrainOptions {
        lr,
        steps: 1_500,
        seeds: Seeds::from_seed(7),
        ..Default::default()
    };
    let every = Cadence::Every(150);
    let mut loss = FullLoss::train();
    let mut lambda = SharpnessProbe::new(50, 1e-8, 1);
    let mc = MonteCarloOptions {
        seed: 2,
        rel_se_tol: 0.01,
        ..Default::default()
    };
    let mut bs = BatchSharpnessProbe::new(batch, mc);
    let run: imreg::sgd::Result<_> = train(
        &mlp,
        &theta0,
        &method,
        &opts,
        &mut [
            Scheduled::new(every, &mut loss),
            Scheduled::new(every, &mut lambda),
            Scheduled::new(every, &mut bs),
        ],
    );
    println!(
        "SGD η = {lr}, b = {batch}: {:?}; 2/η = {:.1}",
        run?.outcome,
        2.0 / lr
    );
    println!(
        "{:>6} {:>12} {:>10} {:>22}",
        "step", "loss", "λ_max", "batch sharpness ± SE"
    );
    for ((l, s), b) in loss.records.iter().zip(&lambda.records).zip(&bs.records) {
        let m = b.1.mean_of_ratios;
        println!(
            "{:>6} {:>12.5e} {:>10.3} {:>14.3} ± {:.3}",
            l.0, l.1, s.1.value, m.value, m.std_error
        );
    }
    Ok(())
}
