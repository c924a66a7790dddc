//! Networks with heavy rows (a row's tape at least as large as the parameter vector, as in the CNNs) on
//! batches larger than one working set: the chunks stay within [`HEAVY_CHUNK_BYTES`], the per-call passes
//! (loss, gradient, HVP, third order) are bitwise identical at 1 and 2 threads and sum like the batch's
//! parts; and the partially prepared Hessian of [`NetworkObjective::hessian_within`] (the chunks that fit the
//! budget recorded, the others streamed) equals the per-call HVP, is symmetric, is bitwise identical at 1 and
//! 2 threads and never records more than its budget.
mod common;

use common::{dot, randn, rel};
use imreg_objective::models::{
    preset, Network, NetworkObjective, NetworkSpec, SpecNetwork, StandardLoss, TapePlan, HEAVY_CHUNK_BYTES,
    PREPARED_HESSIAN_BYTES,
};
use imreg_objective::{threads, At, Batch, Objective};
use ndarray::Array2;

/// A conv (`kernel`, `channels`) → tanh → max-pool (`pool`) → linear (3 classes) net on `side × side` images,
/// on `n` seeded Gaussian images with labels `i mod 3`.
fn conv_net(
    side: usize,
    channels: usize,
    kernel: usize,
    pool: usize,
    n: usize,
) -> NetworkObjective<SpecNetwork> {
    let spec = NetworkSpec::from_toml(&format!(
        r#"
input = [1, {side}, {side}]
[[layers]]
type = "conv2d"
out_channels = {channels}
kernel_size = {kernel}
padding = {pad}
[[layers]]
type = "tanh"
[[layers]]
type = "max_pool"
kernel_size = {pool}
[[layers]]
type = "flatten"
[[layers]]
type = "linear"
out_features = 3
"#,
        pad = kernel / 2
    ))
    .unwrap();
    let net = SpecNetwork::new(spec).unwrap();
    let x = Array2::from_shape_vec((n, side * side), randn(7, 0, n * side * side)).unwrap();
    let labels = (0..n).map(|i| i % 3).collect();
    NetworkObjective::classification(net, StandardLoss::CrossEntropy, x, labels).unwrap()
}

/// The tape estimate of one row, in bytes (four `f64`s per kept activation).
fn row_bytes(obj: &NetworkObjective<SpecNetwork>) -> usize {
    obj.network().tape_floats_per_example() * 32
}

fn bits(a: &[f64]) -> Vec<u64> {
    a.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn heavy_rows_run_in_chunks_within_the_working_set_bound() {
    // 128 × 128 images, 8 channels: ≈ 5.3 MB of tape per row, so 3 rows fit the bound: 34 chunks of 3 rows
    // (the last of 2)
    let obj = conv_net(128, 8, 1, 8, 101);
    let p = obj.dim();
    assert!(obj.network().tape_floats_per_example() >= p);
    let ix: Vec<usize> = (0..101).map(|i| (i * 31 + 3) % 101).collect();
    let chunk = obj.chunk_size(ix.len());
    assert!(
        chunk * row_bytes(&obj) <= HEAVY_CHUNK_BYTES,
        "chunk of {chunk} rows"
    );
    assert!(ix.len().div_ceil(chunk) >= 3, "chunk of {chunk} rows");

    let theta: Vec<f64> = randn(1, 0, p).iter().map(|z| 0.3 * z).collect();
    let (u, v) = (randn(2, 0, p), randn(3, 0, p));
    let run = |t: usize| {
        threads::on_threads(t, || {
            let b = Batch::Indices(&ix);
            let mut g = vec![0.0; p];
            let loss = obj.loss_grad(&theta, b, &mut g).unwrap();
            let hv = obj.hvp_vec(&theta, b, &v).unwrap();
            let mut t3 = vec![0.0; p];
            obj.third_order(&theta, b, &u, &v, &mut t3).unwrap();
            let mut prep = vec![0.0; p];
            obj.hessian_at(&theta, b).unwrap().hvp(&v, &mut prep).unwrap();
            (
                obj.loss(&theta, b).unwrap().to_bits(),
                loss.to_bits(),
                bits(&g),
                bits(&hv),
                bits(&t3),
                bits(&prep),
            )
        })
        .unwrap()
    };
    let one = run(1);
    assert_eq!(one, run(2));
    // the forward pass's loss is the loss of `loss_grad`, bitwise (`imreg run` records the former at rows
    // that track no gradient norm)
    assert_eq!(one.0, one.1);

    // the chunked sums are the batch's: |B| ∇C_B = |B₁| ∇C_B₁ + |B₂| ∇C_B₂ for a split of B into two
    // sub-batches (each cut into chunks of its own)
    let grad = |bb: &[usize]| obj.grad(&theta, Batch::Indices(bb)).unwrap();
    let (g1, g2) = (grad(&ix[..61]), grad(&ix[61..]));
    let parts: Vec<f64> = g1
        .iter()
        .zip(&g2)
        .map(|(a, c)| (61.0 * a + 40.0 * c) / 101.0)
        .collect();
    assert!(rel(&grad(&ix), &parts, 1e-300) <= 1e-12);
}

#[test]
fn the_partially_prepared_hessian_is_the_per_call_hvp_within_its_budget() {
    // heavy rows: a batch of 101 is two chunks (51 and 50 rows)
    let obj = conv_net(10, 2, 3, 2, 120);
    assert!(obj.network().tape_floats_per_example() >= obj.dim());
    let p = obj.dim();
    let ix: Vec<usize> = (0..101).map(|i| (i * 37 + 5) % 120).collect();
    let (len, row) = (ix.len(), row_bytes(&obj));
    let theta: Vec<f64> = randn(1, 1, p).iter().map(|z| 0.4 * z).collect();
    let (u, v) = (randn(2, 1, p), randn(3, 1, p));
    let at = At::checked(&theta, p, Batch::Indices(&ix), obj.n_examples()).unwrap();
    let want = obj.hvp_vec(&theta, Batch::Indices(&ix), &v).unwrap();

    let first = obj.tape_plan(len, usize::MAX).chunk * row;
    let all = len * row;
    let budgets = [
        (0, 0),
        (first - 1, 0),
        (first, 1),
        (all - 1, 1),
        (all, 2),
        (usize::MAX, 2),
    ];
    for (budget, prepared) in budgets {
        let plan = obj.tape_plan(len, budget);
        assert_eq!(plan.chunks, 2);
        assert_eq!(plan.prepared, prepared, "budget {budget}");
        assert!(plan.prepared_bytes <= budget);
        assert_eq!(plan.prepared_bytes, (plan.chunk * prepared).min(len) * row);

        let run = |t: usize| {
            threads::on_threads(t, || {
                let h = obj.hessian_within(at, budget).unwrap();
                let (mut hu, mut hv) = (vec![0.0; p], vec![0.0; p]);
                h.hvp(&u, &mut hu).unwrap();
                h.hvp(&v, &mut hv).unwrap();
                (hu, hv)
            })
            .unwrap()
        };
        let (hu, hv) = run(2);
        let (hu1, hv1) = run(1);
        assert_eq!(
            (bits(&hu), bits(&hv)),
            (bits(&hu1), bits(&hv1)),
            "budget {budget}"
        );
        let err = rel(&hv, &want, 1e-300);
        if prepared == 0 {
            assert_eq!(
                bits(&hv),
                bits(&want),
                "budget {budget}: streamed is the per-call HVP"
            );
        } else {
            assert!(err <= 1e-12, "budget {budget}: {err:e}");
        }
        let (uhv, vhu) = (dot(&u, &hv), dot(&v, &hu));
        let asym = (uhv - vhu).abs() / uhv.abs().max(vhu.abs());
        assert!(asym <= 1e-12, "budget {budget}: uᵀHv = {uhv}, vᵀHu = {vhu}");
    }
}

#[test]
fn tape_plans_of_the_anchor_networks_are_as_documented() {
    // `cnn-relu` on 1,000 MNIST-sized digits (≈ 3.3 MB of tape per row): 200 chunks of 5 rows
    // (HEAVY_CHUNK_BYTES), the first 129 prepared (PREPARED_HESSIAN_BYTES)
    let objective = |name: &str, input: [usize; 3], n: usize| {
        let net = SpecNetwork::new(preset(name, &input, 10).unwrap()).unwrap();
        let x = Array2::zeros((n, input.iter().product()));
        NetworkObjective::classification(net, StandardLoss::CrossEntropy, x, vec![0; n]).unwrap()
    };
    let cnn = objective("cnn-relu", [1, 28, 28], 1000);
    let plan = cnn.tape_plan(1000, PREPARED_HESSIAN_BYTES);
    assert_eq!((plan.chunk, plan.chunks, plan.prepared), (5, 200, 129));
    assert!(plan.chunk * row_bytes(&cnn) <= HEAVY_CHUNK_BYTES);
    assert_eq!(plan.prepared_bytes, 129 * 5 * row_bytes(&cnn));
    // `resnet-small` at n = 128 (≈ 23.5 MB per row, PREPARED_HESSIAN_BYTES): 128 chunks of 1 row, 91 of them
    // prepared
    let resnet = objective("resnet-small", [3, 32, 32], 128);
    let TapePlan {
        chunk,
        chunks,
        prepared,
        prepared_bytes,
    } = resnet.tape_plan(128, PREPARED_HESSIAN_BYTES);
    assert_eq!((chunk, chunks, prepared), (1, 128, 91));
    assert_eq!(prepared_bytes, 91 * row_bytes(&resnet));
}
