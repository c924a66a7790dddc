//! Every penalty on a CNN preset (`cnn-relu`: conv, ReLU, max-pool, linear) and on the MLP: gradients against
//! central differences in random directions, and bitwise determinism over thread counts.
use imreg_objective::models::StandardLoss;
use imreg_objective::{rng, Batch};
use imreg_sgd::reg_checks::{all_penalties, check_cnn, check_nets, penalty_fd_error};

#[test]
fn every_penalty_on_a_cnn_passes_central_differences() {
    let (cls, tc) = check_cnn(8, StandardLoss::CrossEntropy, 11).unwrap();
    let (reg, tr) = check_cnn(8, StandardLoss::HalfMse, 12).unwrap();
    let batch: Vec<usize> = (0..8).collect();
    let part = imreg_flow::Partition::consecutive(8, 2, imreg_flow::Remainder::Error).unwrap();
    let penalties = all_penalties((&cls, &tc), (&reg, &tr), [2, 4, 4], &part).unwrap();
    assert_eq!(penalties.len(), 15);
    for (p, th) in &penalties {
        let err = penalty_fd_error(p.as_ref(), th, &batch, 31, 3, 1e-5).unwrap();
        println!("{}: {err:.2e}", p.name());
        assert!(err <= 1e-6, "{}: relative error {err:.3e}", p.name());
        // a penalty is not trivially zero (weight decay aside, every one is a squared gradient norm)
        let v = p.value_grad(th, Batch::Full, &mut rng::stream(1, 1)).unwrap();
        assert!(v.value > 0.0 && v.grad.iter().any(|g| *g != 0.0), "{}", p.name());
    }
}

#[test]
fn penalties_are_bitwise_identical_at_one_and_two_threads() {
    let (cls, reg, tc, tr) = check_nets(24, 3).unwrap();
    let part = imreg_flow::Partition::consecutive(24, 6, imreg_flow::Remainder::Error).unwrap();
    let (c, r) = (cls.objective(), reg.objective());
    let penalties = all_penalties((c, &tc), (r, &tr), [4, 3, 6], &part).unwrap();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            penalties
                .iter()
                .map(|(p, th)| {
                    let v = p.value_grad(th, Batch::Full, &mut rng::stream(5, 0)).unwrap();
                    (
                        v.value.to_bits(),
                        v.grad.iter().map(|g| g.to_bits()).collect::<Vec<_>>(),
                    )
                })
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(run(1), run(2));
}
