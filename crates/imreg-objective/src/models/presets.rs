//! The networks of our sources as [`NetworkSpec`]s, with PyTorch's module names, for any input shape and class
//! count (the defaults are the sources' datasets):
//!
//! | preset | network | names |
//! |---|---|---|
//! | `fc-tanh`, `fc-relu` | Cohen et al.'s fully connected nets: flatten, two hidden layers of 200, linear | `1.weight`, `3.weight`, `5.weight` |
//! | `cnn-relu`, `cnn-tanh`, `cnn-elu` | Cohen et al.'s CNNs: 2 × (conv 3×3 width 32 padding 1, act, max-pool 2), flatten, linear | `0.weight`, `3.weight`, `7.weight` |
//! | `resnet20`, `resnet20-nobn` | He et al.'s CIFAR ResNet-20: conv 16, 3 stages × 3 basic blocks (16, 32, 64; 1×1 projection shortcuts when the shape changes), global average pool, linear | `conv1.weight`, `layer1.0.conv1.weight`, `layer2.0.shortcut.0.weight`, `fc.weight` |
//! | `vgg-small` | VGG-style: (conv 32, relu) × 2, max-pool, (conv 64, relu) × 2, max-pool, flatten, linear 128, relu, linear | `features.0.weight`, `classifier.2.weight` |
//! | `cnn-mnist`, `cnn-cifar`, `cnn-cifar-tanh`, `resnet-small` | the benchmark anchors (`conv1`, `conv2`, `fc`; `stem`, `block0.conv_a`, …, `fc`) | as in the anchors |
//!
//! Without batch norm, convolutions carry biases; with it, they do not (as in PyTorch's ResNets).
use super::spec::{LayerSpec, NetworkSpec, Size2, SpecError};

/// A preset's name, what it is, and the input shape and class count of its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PresetInfo {
    pub name: &'static str,
    pub description: &'static str,
    pub input: [usize; 3],
    pub classes: usize,
}

/// Every preset.
pub const PRESETS: &[PresetInfo] = &[
    PresetInfo {
        name: "fc-tanh",
        description: "Cohen et al.'s fully connected tanh net (2 hidden layers of 200)",
        input: [3, 32, 32],
        classes: 10,
    },
    PresetInfo {
        name: "fc-relu",
        description: "Cohen et al.'s fully connected ReLU net (2 hidden layers of 200)",
        input: [3, 32, 32],
        classes: 10,
    },
    PresetInfo {
        name: "cnn-relu",
        description: "Cohen et al.'s CNN, ReLU: 2 × (conv 32, max-pool 2), linear",
        input: [3, 32, 32],
        classes: 10,
    },
    PresetInfo {
        name: "cnn-tanh",
        description: "Cohen et al.'s CNN, tanh: 2 × (conv 32, max-pool 2), linear",
        input: [3, 32, 32],
        classes: 10,
    },
    PresetInfo {
        name: "cnn-elu",
        description: "Cohen et al.'s CNN, ELU: 2 × (conv 32, max-pool 2), linear",
        input: [3, 32, 32],
        classes: 10,
    },
    PresetInfo {
        name: "resnet20",
        description: "CIFAR ResNet-20 with batch norm (3 stages × 3 basic blocks, widths 16/32/64)",
        input: [3, 32, 32],
        classes: 10,
    },
    PresetInfo {
        name: "resnet20-nobn",
        description: "CIFAR ResNet-20 without batch norm (biased convolutions)",
        input: [3, 32, 32],
        classes: 10,
    },
    PresetInfo {
        name: "vgg-small",
        description: "a small VGG: (conv 32) × 2, pool, (conv 64) × 2, pool, linear 128, linear",
        input: [3, 32, 32],
        classes: 10,
    },
    PresetInfo {
        name: "cnn-mnist",
        description: "benchmark anchor: conv 16, pool, conv 32, pool, linear (1×28×28)",
        input: [1, 28, 28],
        classes: 10,
    },
    PresetInfo {
        name: "cnn-cifar",
        description: "benchmark anchor: conv 32, pool, conv 64, pool, linear (3×32×32)",
        input: [3, 32, 32],
        classes: 10,
    },
    PresetInfo {
        name: "cnn-cifar-tanh",
        description: "benchmark anchor: cnn-cifar with tanh",
        input: [3, 32, 32],
        classes: 10,
    },
    PresetInfo {
        name: "resnet-small",
        description:
            "benchmark anchor: conv 16, 2 residual blocks without batch norm, global average pool, linear",
        input: [3, 32, 32],
        classes: 10,
    },
];

fn conv(
    name: Option<String>,
    out: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    bias: bool,
) -> LayerSpec {
    LayerSpec::Conv2d {
        name,
        in_channels: None,
        out_channels: out,
        kernel_size: Size2::Square(kernel),
        stride: Size2::Square(stride),
        padding: Size2::Square(padding),
        dilation: Size2::Square(1),
        groups: 1,
        bias,
    }
}

fn conv3(name: &str, out: usize, stride: usize, bias: bool) -> LayerSpec {
    conv(Some(name.into()), out, 3, stride, 1, bias)
}

fn linear(name: Option<&str>, out: usize) -> LayerSpec {
    LayerSpec::Linear {
        name: name.map(Into::into),
        in_features: None,
        out_features: out,
        bias: true,
    }
}

fn bn(name: &str) -> LayerSpec {
    LayerSpec::BatchNorm {
        name: Some(name.into()),
        eps: 1e-5,
    }
}

fn pool2() -> LayerSpec {
    LayerSpec::MaxPool {
        kernel_size: Size2::Square(2),
        stride: None,
        padding: Size2::Square(0),
    }
}

fn activation_layer(name: &str) -> LayerSpec {
    match name {
        "tanh" => LayerSpec::Tanh,
        "elu" => LayerSpec::Elu { alpha: 1.0 },
        _ => LayerSpec::Relu,
    }
}

/// Cohen et al.'s fully connected net: `nn.Sequential(Flatten, Linear(d, 200), act, Linear(200, 200), act,
/// Linear(200, C))`.
fn fully_connected(act: &str, classes: usize) -> Vec<LayerSpec> {
    let mut layers = vec![LayerSpec::Flatten];
    for _ in 0..2 {
        layers.extend([linear(None, 200), activation_layer(act)]);
    }
    layers.push(linear(None, classes));
    layers
}

/// Cohen et al.'s CNN: `nn.Sequential` of (conv 3×3 padding 1, act, max-pool 2) per width, flatten, linear.
fn cohen_cnn(act: &str, widths: &[usize], classes: usize) -> Vec<LayerSpec> {
    let mut layers = Vec::new();
    for &w in widths {
        layers.extend([conv(None, w, 3, 1, 1, true), activation_layer(act), pool2()]);
    }
    layers.extend([LayerSpec::Flatten, linear(None, classes)]);
    layers
}

/// The two-conv benchmark anchor: `conv1`, act, pool, `conv2`, act, pool, flatten, `fc`.
fn anchor_cnn(act: &str, widths: (usize, usize), classes: usize) -> Vec<LayerSpec> {
    vec![
        conv3("conv1", widths.0, 1, true),
        activation_layer(act),
        pool2(),
        conv3("conv2", widths.1, 1, true),
        activation_layer(act),
        pool2(),
        LayerSpec::Flatten,
        linear(Some("fc"), classes),
    ]
}

/// The residual benchmark anchor: `stem` conv 16, relu, two blocks `x ← relu(x + conv_b(relu(conv_a(x))))`,
/// global average pool, `fc`.
fn anchor_resnet(classes: usize) -> Vec<LayerSpec> {
    let mut layers = vec![conv3("stem", 16, 1, true), LayerSpec::Relu];
    for b in 0..2 {
        layers.push(LayerSpec::Residual {
            name: Some(format!("block{b}")),
            body: vec![
                conv3("conv_a", 16, 1, true),
                LayerSpec::Relu,
                conv3("conv_b", 16, 1, true),
            ],
            shortcut: Vec::new(),
            shortcut_name: "shortcut".into(),
        });
        layers.push(LayerSpec::Relu);
    }
    layers.extend([LayerSpec::GlobalAvgPool, linear(Some("fc"), classes)]);
    layers
}

/// He et al.'s CIFAR ResNet with `blocks` basic blocks per stage (3 for ResNet-20): torchvision's names
/// (`conv1`, `bn1`, `layer{s}.{b}.conv1`, …, `fc`), a 1×1 projection shortcut (`shortcut.0`, `shortcut.1`)
/// where the shape changes.
fn cifar_resnet(blocks: usize, batch_norm: bool, classes: usize) -> Vec<LayerSpec> {
    let bias = !batch_norm;
    let with_bn = |mut v: Vec<LayerSpec>, name: &str| {
        if batch_norm {
            v.push(bn(name));
        }
        v
    };
    let mut layers = with_bn(vec![conv3("conv1", 16, 1, bias)], "bn1");
    layers.push(LayerSpec::Relu);
    let mut width = 16;
    for (s, w) in [16, 32, 64].into_iter().enumerate() {
        let stage: Vec<LayerSpec> = (0..blocks)
            .map(|b| {
                let stride = if b == 0 && s > 0 { 2 } else { 1 };
                let mut body = with_bn(vec![conv3("conv1", w, stride, bias)], "bn1");
                body.push(LayerSpec::Relu);
                body.extend(with_bn(vec![conv3("conv2", w, 1, bias)], "bn2"));
                let shortcut = if stride != 1 || width != w {
                    with_bn(vec![conv(Some("0".into()), w, 1, stride, 0, bias)], "1")
                } else {
                    Vec::new()
                };
                width = w;
                LayerSpec::Sequential {
                    name: Some(b.to_string()),
                    layers: vec![
                        LayerSpec::Residual {
                            name: Some(String::new()),
                            body,
                            shortcut,
                            shortcut_name: "shortcut".into(),
                        },
                        LayerSpec::Relu,
                    ],
                }
            })
            .collect();
        layers.push(LayerSpec::Sequential {
            name: Some(format!("layer{}", s + 1)),
            layers: stage,
        });
    }
    layers.extend([LayerSpec::GlobalAvgPool, linear(Some("fc"), classes)]);
    layers
}

/// A small VGG: `features` = (conv 32, relu) × 2, pool, (conv 64, relu) × 2, pool; flatten; `classifier` =
/// linear 128, relu, linear.
fn vgg_small(classes: usize) -> Vec<LayerSpec> {
    let mut features = Vec::new();
    for w in [32, 64] {
        for _ in 0..2 {
            features.extend([conv(None, w, 3, 1, 1, true), LayerSpec::Relu]);
        }
        features.push(pool2());
    }
    vec![
        LayerSpec::Sequential {
            name: Some("features".into()),
            layers: features,
        },
        LayerSpec::Flatten,
        LayerSpec::Sequential {
            name: Some("classifier".into()),
            layers: vec![linear(None, 128), LayerSpec::Relu, linear(None, classes)],
        },
    ]
}

/// The preset `name` for inputs of shape `input` (`[C, H, W]` or `[d]` for the fully connected nets) and
/// `classes` outputs. Sizes are validated when the spec is compiled ([`super::SpecNetwork::new`]).
pub fn preset(name: &str, input: &[usize], classes: usize) -> Result<NetworkSpec, SpecError> {
    let layers = match name {
        "fc-tanh" | "fc-relu" => fully_connected(&name[3..], classes),
        "cnn-relu" | "cnn-tanh" | "cnn-elu" => cohen_cnn(&name[4..], &[32, 32], classes),
        "resnet20" => cifar_resnet(3, true, classes),
        "resnet20-nobn" => cifar_resnet(3, false, classes),
        "vgg-small" => vgg_small(classes),
        "cnn-mnist" => anchor_cnn("relu", (16, 32), classes),
        "cnn-cifar" => anchor_cnn("relu", (32, 64), classes),
        "cnn-cifar-tanh" => anchor_cnn("tanh", (32, 64), classes),
        "resnet-small" => anchor_resnet(classes),
        _ => {
            return Err(SpecError::UnknownPreset {
                name: name.into(),
                known: PRESETS.iter().map(|p| p.name).collect::<Vec<_>>().join(", "),
            })
        }
    };
    Ok(NetworkSpec {
        name: name.into(),
        input: input.to_vec(),
        batch_norm: Default::default(),
        layers,
    })
}

/// [`preset`] at the input shape and class count of its source ([`PRESETS`]).
pub fn preset_default(name: &str) -> Result<NetworkSpec, SpecError> {
    let info = PRESETS
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| SpecError::UnknownPreset {
            name: name.into(),
            known: PRESETS.iter().map(|p| p.name).collect::<Vec<_>>().join(", "),
        })?;
    preset(name, &info.input, info.classes)
}
