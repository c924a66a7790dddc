//! Networks from specs and presets as objectives, against independent oracles: `check_grads` (central
//! differences and the dot-product identity, to order 2) on the whole-batch program, the forward-over-forward
//! dense Hessian, HVP symmetry, per-example gradients averaging to the batch gradient, input gradients against
//! differences, bitwise determinism at 1 and 2 threads, the MLP built through a spec against `Mlp`, and
//! safetensors state dicts by name and shape.
use imreg_ad::{check_grads, CheckGradsOptions, GradientMap, Graph, Program, ScalarFn, Tensor, Var};
use imreg_objective::models::{
    preset, preset_default, read_state_dict, write_state_dict, Activation, BatchNormStats, ChunkTargets,
    LayerSpec, Loss, Mlp, MlpSpec, Network, NetworkObjective, NetworkSpec, SpecError, SpecNetwork,
    StandardLoss, PRESETS,
};
use imreg_objective::{rng, Batch, LossKind, Objective};
use ndarray::Array2;

fn randn(seed: u64, stream: u64, n: usize) -> Vec<f64> {
    rng::normal_vec(&mut rng::stream(seed, stream), n)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `max_i |a_i − b_i| / max_i |b_i|`.
fn rel(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1e-300_f64, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0.0_f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// He-style weights `N(0, 1/fan_in)`, norm scales `1 + 0.1 z`, biases `0.1 z`, from a seeded stream.
fn init<N: Network>(net: &N, seed: u64) -> Vec<f64> {
    let mut theta = Vec::new();
    for (k, p) in net.parameters().iter().enumerate() {
        let z = randn(seed, k as u64, p.len());
        let fan_in: usize = p.shape[1..].iter().product();
        theta.extend(z.iter().map(|z| match p.shape.len() {
            1 if p.name.ends_with("weight") => 1.0 + 0.1 * z,
            1 => 0.1 * z,
            _ => z / (fan_in as f64).sqrt(),
        }));
    }
    theta
}

fn inputs(n: usize, d: usize, seed: u64) -> Array2<f64> {
    Array2::from_shape_vec((n, d), randn(seed, 99, n * d)).unwrap()
}

/// The mean loss of the whole batch as one program (the oracle's view of the objective).
struct Whole<'a, N, L>(&'a NetworkObjective<N, L>);

impl<N: Network, L: Loss> Program for Whole<'_, N, L> {
    fn leaf_shapes(&self) -> Vec<(usize, usize)> {
        self.0.network().leaf_shapes()
    }
    fn build<T: Tensor>(&self, g: &mut Graph<T>, leaves: &[Var]) -> imreg_ad::Result<Var> {
        let obj = self.0;
        let x = g.constant(obj.inputs().clone());
        let out = obj.network().forward(g, leaves, x)?;
        let n = obj.n_examples();
        let y = match obj.targets() {
            imreg_objective::models::TargetData::Values(y) => ChunkTargets::Values(y.clone()),
            imreg_objective::models::TargetData::Labels(l) => ChunkTargets::Labels(l),
        };
        let s = obj.loss_fn().sum(g, out, &y)?;
        Ok(g.scale(s, 1.0 / n as f64))
    }
}

/// log-cosh, a user-defined value loss: `ℓ = Σ_c [softplus(2d) − d − ln 2]`, `d = f − y`.
#[derive(Clone)]
struct LogCosh;

impl Loss for LogCosh {
    fn name(&self) -> String {
        "log-cosh".into()
    }
    fn label_classes(&self, _outputs: usize) -> Option<usize> {
        None
    }
    fn per_example<T: Tensor>(
        &self,
        g: &mut Graph<T>,
        f: Var,
        y: &ChunkTargets<'_>,
    ) -> imreg_ad::Result<Var> {
        let yc = g.constant(y.values("log-cosh")?.clone());
        let d = g.sub(f, yc)?;
        let d2 = g.scale(d, 2.0);
        let sp = g.softplus(d2);
        let e = g.sub(sp, d)?;
        let e = g.affine(e, 1.0, -std::f64::consts::LN_2);
        g.sum_axis(e, 1)
    }
}

/// Every oracle on one objective: `check_grads` of the whole-batch program (gradient, HVP, third order), the
/// objective's loss, gradient, HVP, prepared HVP and third order against the program's, HVP symmetry,
/// per-example gradients averaging to the batch gradient, input gradients against central differences.
fn assert_oracles<N: Network + Clone, L: Loss + Clone>(
    obj: &NetworkObjective<N, L>,
    theta: &[f64],
    seed: u64,
) {
    let name = obj.name();
    let prog = Whole(obj);
    let p = obj.dim();
    let opts = CheckGradsOptions {
        seed,
        directions: 3,
        ..Default::default()
    };
    let r = check_grads(&ScalarFn(&prog), theta, &opts).unwrap();
    assert!(r.passed, "{name}: {r:?}");
    let r = check_grads(&GradientMap(&prog), theta, &opts).unwrap();
    assert!(r.passed, "{name} (gradient map): {r:?}");

    let (f, g) = imreg_ad::grad(&prog, theta).unwrap();
    let loss = obj.loss(theta, Batch::Full).unwrap();
    assert!(
        (loss - f).abs() <= 1e-14 * f.abs().max(1.0),
        "{name}: loss {loss} vs {f}"
    );
    let og = obj.grad(theta, Batch::Full).unwrap();
    assert!(rel(&og, &g) <= 1e-13, "{name}: gradient {:e}", rel(&og, &g));
    let (u, v) = (randn(seed, 1, p), randn(seed, 2, p));
    let hv = obj.hvp_vec(theta, Batch::Full, &v).unwrap();
    assert!(
        rel(&hv, &imreg_ad::hvp(&prog, theta, &v).unwrap()) <= 1e-13,
        "{name}: HVP"
    );
    let hu = obj.hvp_vec(theta, Batch::Full, &u).unwrap();
    let (uhv, vhu) = (dot(&u, &hv), dot(&v, &hu));
    assert!(
        (uhv - vhu).abs() <= 1e-12 * uhv.abs().max(vhu.abs()).max(1e-300),
        "{name}: symmetry {uhv} {vhu}"
    );
    let h = obj.hessian_at(theta, Batch::Full).unwrap();
    for (dir, want) in [(&v, &hv), (&u, &hu)] {
        let mut prepared = vec![0.0; p];
        h.hvp(dir, &mut prepared).unwrap();
        assert!(
            rel(&prepared, want) <= 1e-13,
            "{name}: prepared HVP {:e}",
            rel(&prepared, want)
        );
    }
    let mut t3 = vec![0.0; p];
    obj.third_order(theta, Batch::Full, &u, &v, &mut t3).unwrap();
    let want = imreg_ad::third_order(&prog, theta, &u, &v).unwrap();
    assert!(
        rel(&t3, &want) <= 1e-12,
        "{name}: third order {:e}",
        rel(&t3, &want)
    );

    let n = obj.n_examples();
    let mut mean = vec![0.0; p];
    let mut rows = 0;
    obj.per_example_grads(theta, Batch::Full, 3, &mut |start, chunk| {
        assert_eq!(start, rows);
        rows += chunk.nrows();
        for r in chunk.rows() {
            mean.iter_mut().zip(r).for_each(|(m, x)| *m += x / n as f64);
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(rows, n);
    assert!(
        rel(&mean, &og) <= 1e-12,
        "{name}: per-example mean {:e}",
        rel(&mean, &og)
    );

    // ⟨∇ₓC, D⟩ against the central difference of C(X + sD), D supported on one example (a small step, so that
    // it crosses no kink of ReLU or max-pool)
    let gx = obj.input_grads(theta, Batch::Full).unwrap();
    let x = obj.inputs();
    let mut d = Array2::zeros(x.dim());
    d.row_mut(1)
        .assign(&ndarray::Array1::from(randn(seed, 3, x.ncols())));
    let h = 1e-6;
    let at = |s: f64| {
        let moved = NetworkObjective::new(
            obj.network().clone(),
            obj.loss_fn().clone(),
            x + &(&d * s),
            obj.targets().clone(),
        )
        .unwrap();
        moved.loss(theta, Batch::Full).unwrap()
    };
    let fd = (at(h) - at(-h)) / (2.0 * h);
    let an: f64 = gx.iter().zip(d.iter()).map(|(a, b)| a * b).sum();
    let scale =
        gx.row(1).iter().map(|v| v * v).sum::<f64>().sqrt() * d.iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!(
        (an - fd).abs() <= 1e-6 * scale.max(1e-12),
        "{name}: input gradient {an} vs {fd}"
    );
}

fn spec_objective(spec: NetworkSpec, n: usize, seed: u64) -> NetworkObjective<SpecNetwork> {
    let net = SpecNetwork::new(spec).unwrap();
    let c = net.output_dim();
    let x = inputs(n, net.input_dim(), seed);
    let labels = (0..n).map(|i| (i * 7 + 1) % c).collect();
    NetworkObjective::classification(net, StandardLoss::CrossEntropy, x, labels).unwrap()
}

/// A spec with every layer kind (both batch-norm modes are tested).
fn every_layer_spec() -> NetworkSpec {
    NetworkSpec::from_toml(
        r#"
name = "every-layer"
input = [2, 6, 6]
[[layers]]
type = "conv2d"
name = "conv"
in_channels = 2
out_channels = 4
kernel_size = 3
padding = 1
[[layers]]
type = "batch_norm"
name = "bn"
[[layers]]
type = "leaky_relu"
negative_slope = 0.1
[[layers]]
type = "residual"
name = "res"
body = [
  { type = "conv2d", name = "a", out_channels = 4, kernel_size = 3, padding = 2, dilation = 2 },
  { type = "elu" },
]
[[layers]]
type = "concat"
name = "cat"
branches = [
  [{ type = "conv2d", out_channels = 4, kernel_size = [3, 3], padding = 1, groups = 4 }, { type = "gelu" }],
  [{ type = "avg_pool", kernel_size = 3, stride = 1, padding = 1 }],
]
[[layers]]
type = "max_pool"
kernel_size = 2
[[layers]]
type = "residual"
name = "proj"
body = [{ type = "conv2d", name = "c", out_channels = 6, kernel_size = 3, stride = 2, padding = 1 }, { type = "softplus" }]
shortcut = [{ type = "conv2d", out_channels = 6, kernel_size = 1, stride = 2, bias = false }, { type = "batch_norm" }]
shortcut_name = "downsample"
[[layers]]
type = "layer_norm"
name = "ln"
[[layers]]
type = "concat"
name = "pools"
branches = [[{ type = "global_avg_pool" }], [{ type = "adaptive_avg_pool", output_size = 1 }, { type = "flatten" }]]
[[layers]]
type = "sigmoid"
[[layers]]
type = "sequential"
name = "head"
layers = [
  { type = "linear", out_features = 5 },
  { type = "tanh" },
  { type = "linear", in_features = 5, out_features = 3 },
  { type = "identity" },
  { type = "relu" },
]
"#,
    )
    .unwrap()
}

/// Tiny inputs for the presets: `(name, input)`.
const TINY: &[(&str, &[usize])] = &[
    ("fc-tanh", &[1, 4, 4]),
    ("fc-relu", &[1, 4, 4]),
    ("cnn-relu", &[1, 8, 8]),
    ("cnn-tanh", &[1, 8, 8]),
    ("cnn-elu", &[1, 8, 8]),
    ("resnet20", &[3, 8, 8]),
    ("resnet20-nobn", &[3, 8, 8]),
    ("vgg-small", &[1, 8, 8]),
    ("cnn-mnist", &[1, 8, 8]),
    ("cnn-cifar", &[3, 8, 8]),
    ("cnn-cifar-tanh", &[3, 8, 8]),
    ("resnet-small", &[3, 6, 6]),
];

#[test]
fn presets_have_pytorch_names_and_the_anchor_sizes() {
    assert_eq!(TINY.len(), PRESETS.len());
    let count = |name: &str| {
        SpecNetwork::new(preset_default(name).unwrap())
            .unwrap()
            .n_params()
    };
    // the anchors' parameter counts (conv 3×3 + bias, linear + bias)
    assert_eq!(
        count("cnn-mnist"),
        (16 * 9 + 16) + (32 * 16 * 9 + 32) + (10 * 32 * 7 * 7 + 10)
    );
    assert_eq!(
        count("cnn-cifar"),
        (32 * 27 + 32) + (64 * 32 * 9 + 64) + (10 * 64 * 8 * 8 + 10)
    );
    assert_eq!(
        count("resnet-small"),
        (16 * 27 + 16) + 4 * (16 * 16 * 9 + 16) + (10 * 16 + 10)
    );
    let names = |name: &str| -> Vec<String> {
        let net = SpecNetwork::new(preset_default(name).unwrap()).unwrap();
        net.parameters().into_iter().map(|p| p.name).collect()
    };
    assert_eq!(
        names("resnet-small"),
        [
            "stem.weight",
            "stem.bias",
            "block0.conv_a.weight",
            "block0.conv_a.bias",
            "block0.conv_b.weight",
            "block0.conv_b.bias",
            "block1.conv_a.weight",
            "block1.conv_a.bias",
            "block1.conv_b.weight",
            "block1.conv_b.bias",
            "fc.weight",
            "fc.bias"
        ]
    );
    assert_eq!(
        names("cnn-relu"),
        ["0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias"]
    );
    assert_eq!(
        names("fc-tanh"),
        ["1.weight", "1.bias", "3.weight", "3.bias", "5.weight", "5.bias"]
    );
    let r20 = names("resnet20");
    for n in [
        "conv1.weight",
        "bn1.weight",
        "layer1.0.conv1.weight",
        "layer1.2.bn2.bias",
        "layer2.0.shortcut.0.weight",
        "layer2.0.shortcut.1.weight",
        "layer3.2.conv2.weight",
        "fc.bias",
    ] {
        assert!(r20.iter().any(|x| x == n), "{n} missing from {r20:?}");
    }
    assert_eq!(r20[0], "conv1.weight");
    let vgg = names("vgg-small");
    assert_eq!(vgg[0], "features.0.weight");
    assert_eq!(vgg.last().unwrap(), "classifier.2.bias");
    for info in PRESETS {
        let net = SpecNetwork::new(preset_default(info.name).unwrap()).unwrap();
        eprintln!("{}: {} parameters", info.name, net.n_params());
    }
    let state: Vec<String> = SpecNetwork::new(preset_default("resnet20").unwrap())
        .unwrap()
        .state_dict_shapes()
        .into_iter()
        .map(|(n, _)| n)
        .take(5)
        .collect();
    assert_eq!(
        state,
        [
            "conv1.weight",
            "bn1.weight",
            "bn1.bias",
            "bn1.running_mean",
            "bn1.running_var"
        ]
    );
}

#[test]
fn every_preset_passes_the_oracles() {
    for (k, &(name, input)) in TINY.iter().enumerate() {
        let mut spec = preset(name, input, 3).unwrap();
        if name == "resnet20" {
            spec.batch_norm = BatchNormStats::Eval;
        }
        let obj = spec_objective(spec, 4, k as u64);
        let theta = init(obj.network(), k as u64);
        assert_oracles(&obj, &theta, k as u64);
    }
}

/// The batched per-example gradients (one forward and one reverse pass per task of rows) against one tape per
/// example, `∇ℓ_i` as the gradient of the one-example batch `{i}`, row by row.
fn assert_batched_per_example_equals_one_tape_per_example<N: Network, L: Loss>(
    obj: &NetworkObjective<N, L>,
    theta: &[f64],
    ix: &[usize],
) {
    let name = obj.name();
    let at = imreg_ad::Point::new(&obj.network().leaf_shapes(), theta).unwrap();
    assert!(
        imreg_ad::per_example_supported(&Whole(obj), &at, obj.n_examples()).unwrap(),
        "{name}: the batched per-example pass does not apply"
    );
    let mut rows = Vec::new();
    obj.per_example_grads(theta, Batch::Indices(ix), 2, &mut |_, chunk| {
        rows.extend(chunk.rows().into_iter().map(|r| r.to_vec()));
        Ok(())
    })
    .unwrap();
    assert_eq!(rows.len(), ix.len());
    for (row, &i) in rows.iter().zip(ix) {
        let one = obj.grad(theta, Batch::Indices(&[i])).unwrap();
        assert!(
            rel(row, &one) <= 1e-12,
            "{name}: example {i}: {:e}",
            rel(row, &one)
        );
    }
}

#[test]
fn batched_per_example_gradients_equal_one_tape_per_example_on_every_preset() {
    for (k, &(name, input)) in TINY.iter().enumerate() {
        let mut specs = vec![preset(name, input, 3).unwrap()];
        if name == "resnet20" {
            // batch norm with running statistics (evaluation mode): per-example by construction
            specs[0].batch_norm = BatchNormStats::Eval;
        }
        specs.push(NetworkSpec {
            batch_norm: BatchNormStats::Eval,
            ..every_layer_spec()
        });
        for spec in specs {
            let obj = spec_objective(spec, 7, k as u64);
            let theta = init(obj.network(), k as u64);
            assert_batched_per_example_equals_one_tape_per_example(&obj, &theta, &[3, 0, 6, 6, 1, 5, 2, 4]);
        }
    }
    // a user-defined loss and the value losses
    let net = SpecNetwork::new(NetworkSpec {
        batch_norm: BatchNormStats::Eval,
        ..every_layer_spec()
    })
    .unwrap();
    let theta = init(&net, 4);
    let x = inputs(5, net.input_dim(), 5);
    let y = Array2::from_shape_vec((5, 3), randn(6, 0, 15)).unwrap();
    let obj = NetworkObjective::regression(net.clone(), LogCosh, x.clone(), y.clone()).unwrap();
    assert_batched_per_example_equals_one_tape_per_example(&obj, &theta, &[4, 2, 0, 1, 3]);
    let obj = NetworkObjective::regression(net, StandardLoss::Mse, x, y).unwrap();
    assert_batched_per_example_equals_one_tape_per_example(&obj, &theta, &[4, 2, 0, 1, 3]);
}

#[test]
fn resnet20_with_training_mode_batch_norm_passes_the_oracles_on_the_whole_batch() {
    let obj = spec_objective(preset("resnet20", &[3, 8, 8], 3).unwrap(), 5, 7);
    assert!(obj.network().couples_examples());
    let theta = init(obj.network(), 7);
    assert_oracles(&obj, &theta, 7);
}

#[test]
fn a_spec_with_every_layer_kind_passes_the_oracles_in_both_batch_norm_modes() {
    for (k, stats) in [BatchNormStats::Train, BatchNormStats::Eval]
        .into_iter()
        .enumerate()
    {
        let spec = NetworkSpec {
            batch_norm: stats,
            ..every_layer_spec()
        };
        let obj = spec_objective(spec, 5, 20 + k as u64);
        let theta = init(obj.network(), 3);
        assert_oracles(&obj, &theta, 11);
    }
    // a user-defined loss on the same network, and PyTorch's mean MSE and the logistic loss on others
    let net = SpecNetwork::new(every_layer_spec()).unwrap();
    let theta = init(&net, 4);
    let x = inputs(4, net.input_dim(), 5);
    let y = Array2::from_shape_vec((4, 3), randn(6, 0, 12)).unwrap();
    let obj = NetworkObjective::regression(net.clone(), LogCosh, x.clone(), y.clone()).unwrap();
    assert_oracles(&obj, &theta, 12);
    let obj = NetworkObjective::regression(net, StandardLoss::Mse, x, y).unwrap();
    assert_oracles(&obj, &theta, 13);
    let mut spec = preset("cnn-tanh", &[1, 6, 6], 1).unwrap();
    spec.name = "cnn-tanh logistic".into();
    let net = SpecNetwork::new(spec).unwrap();
    let theta = init(&net, 8);
    let obj = NetworkObjective::classification(
        net,
        StandardLoss::Logistic,
        inputs(6, 36, 8),
        vec![0, 1, 1, 0, 1, 0],
    )
    .unwrap();
    assert_oracles(&obj, &theta, 14);
}

#[test]
fn hvp_equals_the_forward_over_forward_dense_hessian_on_tiny_specs() {
    let tiny = |stats: BatchNormStats| {
        NetworkSpec::from_json(&format!(
            r#"{{"name": "tiny", "input": [1, 4, 4], "batch_norm": "{}", "layers": [
                {{"type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1}},
                {{"type": "batch_norm"}}, {{"type": "elu"}}, {{"type": "max_pool", "kernel_size": 2}},
                {{"type": "layer_norm"}}, {{"type": "flatten"}}, {{"type": "linear", "out_features": 2}}]}}"#,
            if stats == BatchNormStats::Train {
                "train"
            } else {
                "eval"
            }
        ))
        .unwrap()
    };
    for stats in [BatchNormStats::Train, BatchNormStats::Eval] {
        let obj = spec_objective(tiny(stats), 4, 2);
        let theta = init(obj.network(), 2);
        let p = obj.dim();
        let dense = imreg_ad::dense_hessian_forward(&Whole(&obj), &theta).unwrap();
        let ours = obj.dense_hessian(&theta, Batch::Full).unwrap();
        let flat: Vec<f64> = (0..p * p).map(|k| ours[(k / p, k % p)]).collect();
        assert!(rel(&flat, &dense) <= 1e-12, "{stats:?}: {:e}", rel(&flat, &dense));
    }
}

/// Loss, gradient, HVP (per call and prepared), per-example and input gradients on the batch `ix` are bitwise
/// identical at one and two threads, and the chunked gradient equals the whole-batch program's.
fn assert_bitwise_at_one_and_two_threads(obj: &NetworkObjective<SpecNetwork>, ix: &[usize]) {
    let theta = init(obj.network(), 1);
    let v = randn(2, 0, obj.dim());
    let run = |threads: usize| {
        imreg_objective::threads::on_threads(threads, || {
            let b = Batch::Indices(ix);
            let bits = |a: &[f64]| a.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let g = obj.grad(&theta, b).unwrap();
            let hv = obj.hvp_vec(&theta, b, &v).unwrap();
            let mut prep = vec![0.0; obj.dim()];
            obj.hessian_at(&theta, b).unwrap().hvp(&v, &mut prep).unwrap();
            let mut per = Vec::new();
            obj.per_example_grads(&theta, b, 64, &mut |_, rows| {
                per.extend(rows.iter().map(|x| x.to_bits()));
                Ok(())
            })
            .unwrap();
            let gx = obj.input_grads(&theta, b).unwrap();
            (
                obj.loss(&theta, b).unwrap().to_bits(),
                bits(&g),
                bits(&hv),
                bits(&prep),
                per,
                bits(gx.as_slice().unwrap()),
            )
        })
        .unwrap()
    };
    assert_eq!(run(1), run(2));
    // and the chunked reductions equal one whole-batch program
    let g = obj.grad(&theta, Batch::Full).unwrap();
    assert!(rel(&g, &imreg_ad::grad(&Whole(obj), &theta).unwrap().1) <= 1e-13);
    let hv = obj.hvp_vec(&theta, Batch::Full, &v).unwrap();
    assert!(rel(&hv, &imreg_ad::hvp(&Whole(obj), &theta, &v).unwrap()) <= 1e-13);
}

fn conv_tanh_linear(side: usize, channels: usize, outputs: usize) -> NetworkSpec {
    NetworkSpec::from_toml(&format!(
        r#"
input = [1, {side}, {side}]
[[layers]]
type = "conv2d"
out_channels = {channels}
kernel_size = 3
padding = 1
[[layers]]
type = "tanh"
[[layers]]
type = "flatten"
[[layers]]
type = "linear"
out_features = {outputs}
"#
    ))
    .unwrap()
}

#[test]
fn chunked_batches_are_bitwise_identical_at_one_and_two_threads() {
    // light rows (a row's tape is smaller than the parameter vector): chunks of at least 128 rows
    let obj = spec_objective(conv_tanh_linear(3, 3, 40), 300, 1);
    assert!(obj.network().tape_floats_per_example() < obj.dim());
    let ix: Vec<usize> = (0..290).map(|i| (i * 37 + 5) % 300).collect();
    assert_bitwise_at_one_and_two_threads(&obj, &ix);
    // heavy rows, as in the CNNs: a batch below 256 rows is split in two halves
    let obj = spec_objective(conv_tanh_linear(10, 2, 3), 120, 2);
    assert!(obj.network().tape_floats_per_example() >= obj.dim());
    let ix: Vec<usize> = (0..101).map(|i| (i * 37 + 5) % 120).collect();
    assert_bitwise_at_one_and_two_threads(&obj, &ix);
}

#[test]
fn the_mlp_built_through_a_spec_equals_the_mlp() {
    let x = inputs(200, 4, 3);
    let labels: Vec<usize> = (0..200).map(|i| i % 3).collect();
    let mlp = Mlp::classification(
        MlpSpec {
            widths: vec![4, 6, 5, 3],
            activation: Activation::Tanh,
            bias: true,
            loss: LossKind::CrossEntropy,
        },
        x.clone(),
        labels.clone(),
    )
    .unwrap();
    let spec = NetworkSpec::from_json(
        r#"{"input": [4], "layers": [
            {"type": "linear", "out_features": 6}, {"type": "tanh"},
            {"type": "linear", "out_features": 5}, {"type": "tanh"},
            {"type": "linear", "out_features": 3}]}"#,
    )
    .unwrap();
    let net = SpecNetwork::new(spec).unwrap();
    let names: Vec<String> = net.parameters().into_iter().map(|p| p.name).collect();
    assert_eq!(names, mlp.param_names());
    let obj = NetworkObjective::classification(net, StandardLoss::CrossEntropy, x, labels).unwrap();
    let theta = mlp.init_params(5, 1.0);
    let (u, v) = (randn(1, 0, theta.len()), randn(2, 0, theta.len()));
    let b = Batch::Full;
    assert_eq!(
        obj.loss(&theta, b).unwrap().to_bits(),
        mlp.loss(&theta, b).unwrap().to_bits()
    );
    assert_eq!(obj.grad(&theta, b).unwrap(), mlp.grad(&theta, b).unwrap());
    assert_eq!(
        obj.hvp_vec(&theta, b, &v).unwrap(),
        mlp.hvp_vec(&theta, b, &v).unwrap()
    );
    let (mut t1, mut t2) = (vec![0.0; theta.len()], vec![0.0; theta.len()]);
    obj.third_order(&theta, b, &u, &v, &mut t1).unwrap();
    mlp.third_order(&theta, b, &u, &v, &mut t2).unwrap();
    assert_eq!(t1, t2);
    let collect = |o: &dyn Objective| {
        let mut rows = Vec::new();
        o.per_example_grads(&theta, b, 50, &mut |_, r| {
            rows.extend(r.iter().copied());
            Ok(())
        })
        .unwrap();
        rows
    };
    // the MLP's probe path and the generic per-example tapes: the same numbers up to rounding
    assert!(rel(&collect(&obj), &collect(&mlp)) <= 1e-14);
}

#[test]
fn safetensors_state_dicts_round_trip_by_name() {
    let spec = NetworkSpec {
        batch_norm: BatchNormStats::Eval,
        ..preset("resnet20", &[3, 8, 8], 4).unwrap()
    };
    let net = SpecNetwork::new(spec.clone()).unwrap();
    let theta = init(&net, 3);
    // running statistics from a file: set them through a state dict with non-default buffers
    let mut tensors = net.state_dict(&theta).unwrap();
    for (name, _, data) in tensors.iter_mut() {
        if name.ends_with("running_mean") {
            data.iter_mut().enumerate().for_each(|(k, v)| *v = 0.1 * k as f64);
        } else if name.ends_with("running_var") {
            data.iter_mut()
                .enumerate()
                .for_each(|(k, v)| *v = 1.0 + 0.05 * k as f64);
        }
    }
    let bytes = write_state_dict(&tensors).unwrap();
    let mut read = read_state_dict(&bytes).unwrap();
    // PyTorch also stores an int64 step count per batch norm; it is accepted and ignored
    read.push(("bn1.num_batches_tracked".into(), vec![], vec![7.0]));
    let mut loaded = SpecNetwork::new(spec).unwrap();
    let theta2 = loaded.load_state_dict(&read).unwrap();
    assert_eq!(theta2, theta);
    assert_eq!(loaded.state_dict(&theta2).unwrap(), tensors);
    let x = inputs(3, 3 * 64, 1);
    let a = NetworkObjective::classification(loaded, StandardLoss::CrossEntropy, x.clone(), vec![0, 1, 2])
        .unwrap();
    let b = NetworkObjective::classification(net, StandardLoss::CrossEntropy, x, vec![0, 1, 2]).unwrap();
    // the running statistics changed the eval-mode function
    assert_ne!(
        a.loss(&theta, Batch::Full).unwrap(),
        b.loss(&theta, Batch::Full).unwrap()
    );
}

#[test]
fn state_dict_mismatches_name_the_tensor_and_its_shapes() {
    let mut net = SpecNetwork::new(preset("cnn-relu", &[1, 8, 8], 3).unwrap()).unwrap();
    let theta = init(&net, 1);
    let good = net.state_dict(&theta).unwrap();
    let mut wrong = good.clone();
    wrong[2].1 = vec![32, 3, 3, 32];
    assert_eq!(
        net.load_state_dict(&wrong),
        Err(SpecError::TensorShape {
            name: "3.weight".into(),
            expected: vec![32, 32, 3, 3],
            found: vec![32, 3, 3, 32]
        })
    );
    let missing: Vec<_> = good.iter().filter(|t| t.0 != "7.bias").cloned().collect();
    assert_eq!(
        net.load_state_dict(&missing),
        Err(SpecError::MissingTensor {
            name: "7.bias".into(),
            expected: vec![3]
        })
    );
    let mut extra = good.clone();
    extra.push(("fc.weight".into(), vec![3, 4], vec![0.0; 12]));
    let err = net.load_state_dict(&extra).unwrap_err();
    assert_eq!(
        err,
        SpecError::ExtraTensor {
            name: "fc.weight".into(),
            found: vec![3, 4]
        }
    );
    assert!(err.to_string().contains("fc.weight") && err.to_string().contains("[3, 4]"));
    let mut nan = good.clone();
    nan[0].2[4] = f64::NAN;
    assert!(
        matches!(net.load_state_dict(&nan), Err(SpecError::StateDict { what, .. }) if what == "0.weight")
    );
    assert!(read_state_dict(b"not a safetensors file").is_err());
    assert_eq!(net.load_state_dict(&good).unwrap(), theta);
}

#[test]
fn bad_specs_give_errors_naming_the_layer_and_field() {
    let layer_field = |toml_layers: &str, input: &str| -> (String, &'static str) {
        let text = format!("input = {input}\n{toml_layers}");
        match NetworkSpec::from_toml(&text).and_then(SpecNetwork::new) {
            Err(SpecError::Layer { layer, field, .. }) => (layer, field),
            other => panic!("{toml_layers}: {other:?}"),
        }
    };
    let lin = "[[layers]]\ntype = \"linear\"\nout_features = 2\n";
    assert_eq!(layer_field(lin, "[1, 4, 4]"), ("0".into(), "input"));
    let conv =
        "[[layers]]\ntype = \"conv2d\"\nname = \"c\"\nin_channels = 2\nout_channels = 2\nkernel_size = 3\n";
    assert_eq!(layer_field(conv, "[1, 4, 4]"), ("c".into(), "in_channels"));
    let big = "[[layers]]\ntype = \"conv2d\"\nname = \"c\"\nout_channels = 2\nkernel_size = 9\n";
    assert_eq!(layer_field(big, "[1, 4, 4]"), ("c".into(), "geometry"));
    let pool = "[[layers]]\ntype = \"max_pool\"\nkernel_size = 2\npadding = 2\n";
    assert_eq!(layer_field(pool, "[1, 4, 4]"), ("0".into(), "padding"));
    let res = "[[layers]]\ntype = \"residual\"\nname = \"r\"\nbody = [{ type = \"conv2d\", out_channels = 3, kernel_size = 1 }]\n";
    assert_eq!(layer_field(res, "[1, 4, 4]"), ("r".into(), "body"));
    let huge = "[[layers]]\ntype = \"flatten\"\n";
    assert_eq!(
        layer_field(huge, &format!("[{}, 65536, 65536]", usize::MAX / 4)),
        ("input".into(), "input")
    );
    let open = "[[layers]]\ntype = \"relu\"\n";
    assert_eq!(layer_field(open, "[1, 4, 4]"), ("output".into(), "layers"));
    assert!(matches!(
        NetworkSpec::from_toml("input = [3]\n[[layers]]\ntype = \"conv3d\"\n"),
        Err(SpecError::Parse(_))
    ));
    assert!(matches!(
        preset("resnet-1000", &[3, 8, 8], 2),
        Err(SpecError::UnknownPreset { .. })
    ));
    // a spec survives TOML and JSON round trips
    let spec = every_layer_spec();
    assert_eq!(NetworkSpec::from_toml(&spec.to_toml().unwrap()).unwrap(), spec);
    assert_eq!(
        NetworkSpec::from_json(&serde_json::to_string(&spec).unwrap()).unwrap(),
        spec
    );
    assert!(matches!(spec.layers[0], LayerSpec::Conv2d { .. }));
}
