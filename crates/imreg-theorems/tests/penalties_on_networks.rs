//! Every penalty on a CNN preset (`cnn-relu`: conv, ReLU, max-pool, linear) and on the MLP: gradients against
//! central differences in random directions, bitwise determinism over thread counts, and typed errors for bad
//! inputs.
use imreg_objective::models::StandardLoss;
use imreg_objective::{rng, Batch};
use imreg_sgd::reg_error::RegError;
use imreg_sgd::regularizers::fisher::{FisherPenalty, NormPower};
use imreg_sgd::regularizers::micro_batch::{FisherTrace, MicroBatchGradNorm};
use imreg_sgd::regularizers::smith::SmithStochastic;
use imreg_sgd::regularizers::{Penalty, WeightDecay};
use imreg_theorems::regularizers::{all_penalties, check_cnn, check_nets, penalty_fd_error};

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
        imreg_objective::threads::on_threads(threads, || {
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
        .unwrap()
    };
    assert_eq!(run(1), run(2));
}

#[test]
fn bad_inputs_are_typed_errors() {
    let (cls, reg, tc, _) = check_nets(12, 1).unwrap();
    // micro-batch size not dividing the batch
    let gn = MicroBatchGradNorm::new(&cls, 5, 0.1).unwrap();
    let err = gn
        .value_grad(&tc, Batch::Full, &mut rng::stream(0, 0))
        .unwrap_err();
    assert_eq!(err, RegError::MicroBatch { batch: 12, micro: 5 });
    // λ < 0
    assert!(matches!(
        SmithStochastic::new(&cls, -0.1),
        Err(RegError::NegativeCoefficient { name: "lambda", .. })
    ));
    assert!(matches!(
        WeightDecay::new(f64::NAN),
        Err(RegError::NegativeCoefficient { .. })
    ));
    // FT / FP on a regression model
    assert!(
        matches!(FisherTrace::new(reg.objective(), 4, 0.1), Err(RegError::Unsupported { penalty, .. }) if penalty.starts_with("FT"))
    );
    assert!(matches!(
        FisherPenalty::new(reg.objective(), NormPower::Squared, 0.1),
        Err(RegError::Unsupported { penalty: "FP", .. })
    ));
    // wrong θ length
    assert!(gn
        .value_grad(&tc[1..], Batch::Full, &mut rng::stream(0, 0))
        .is_err());
    // a bad micro-batch length for the network penalties, a non-finite θ
    let ft = FisherTrace::new(cls.objective(), 5, 0.1).unwrap();
    assert_eq!(
        ft.value_grad(&tc, Batch::Full, &mut rng::stream(0, 0))
            .unwrap_err(),
        RegError::MicroBatch { batch: 12, micro: 5 }
    );
    let mut nan = tc.clone();
    nan[0] = f64::NAN;
    assert!(ft.value_grad(&nan, Batch::Full, &mut rng::stream(0, 0)).is_err());
}
