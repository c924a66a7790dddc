//! Networks from a description: a sequence of layers with PyTorch's module names (TOML or JSON through serde),
//! compiled once into a [`SpecNetwork`] (a [`Network`]) whose parameters are PyTorch's `state_dict` entries in
//! order and by name (`features.0.weight`, `layer1.0.conv1.weight`, `fc.bias`).
//!
//! ```
//! use imreg_objective::models::{Network, NetworkSpec, SpecNetwork};
//! let spec: NetworkSpec = toml::from_str(r#"
//!     name = "tiny-cnn"
//!     input = [1, 6, 6]
//!     [[layers]]
//!     type = "conv2d"
//!     out_channels = 4
//!     kernel_size = 3
//!     padding = 1
//!     [[layers]]
//!     type = "relu"
//!     [[layers]]
//!     type = "max_pool"
//!     kernel_size = 2
//!     [[layers]]
//!     type = "flatten"
//!     [[layers]]
//!     type = "linear"
//!     out_features = 3
//! "#).unwrap();
//! let net = SpecNetwork::new(spec)?;
//! let names: Vec<String> = net.parameters().into_iter().map(|p| p.name).collect();
//! assert_eq!(names, ["0.weight", "0.bias", "4.weight", "4.bias"]);
//! assert_eq!(net.n_params(), 4 * 9 + 4 + 3 * 36 + 3);
//! # Ok::<(), imreg_objective::models::SpecError>(())
//! ```
//!
//! **Names.** A layer's `state_dict` prefix is its `name` if given, otherwise its index in the enclosing list
//! (PyTorch's `nn.Sequential`); nested containers join prefixes with dots. A residual block's body layers are
//! named inside the block, its shortcut layers inside `<block>.<shortcut_name>` (default `shortcut`;
//! torchvision uses `downsample`); concat branch `k` is `<concat>.<k>`.
//!
//! **Shapes.** Activations are one example per row: an image `C × H × W` is its NCHW flattening. `conv2d`,
//! the pools and `batch_norm` on images need an image; `linear` needs a vector (`flatten` turns an image into
//! its `C·H·W` features, as `nn.Flatten`); `global_avg_pool` is `x.mean((2, 3))` (a vector of `C`);
//! `batch_norm` on a vector is `BatchNorm1d`. `in_channels`/`in_features` may be omitted (inferred) or given
//! (checked). Every size is validated with checked arithmetic; errors name the layer and the field.
//!
//! **Batch norm.** `batch_norm = "train"` (the default, as a fresh PyTorch module) uses the batch's statistics:
//! the network then couples examples ([`Network::couples_examples`]); `"eval"` uses the running statistics,
//! buffers `<name>.running_mean`, `<name>.running_var` set by [`SpecNetwork::load_state_dict`] (default 0 and 1).
use super::network::{Network, Parameter};
use crate::data::weights::NamedTensor;
use crate::error::ObjectiveError;
use imreg_ad::{BatchNormMode, Conv2d, Graph, Image, Pool2d, Tensor, Unary, Var};
use thiserror::Error;

/// Errors of specs and state dicts: each names the layer and field, or the tensor and its shapes.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SpecError {
    #[error("layer {layer}: invalid {field}: {reason}")]
    Layer {
        layer: String,
        field: &'static str,
        reason: String,
    },
    #[error("cannot parse the network spec: {0}")]
    Parse(String),
    #[error("tensor {name}: expected shape {expected:?}, found {found:?}")]
    TensorShape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("tensor {name} (expected shape {expected:?}) is missing from the state dict")]
    MissingTensor { name: String, expected: Vec<usize> },
    #[error("unexpected tensor {name} (shape {found:?}) in the state dict")]
    ExtraTensor { name: String, found: Vec<usize> },
    #[error("state dict {what}: {reason}")]
    StateDict { what: String, reason: String },
    #[error("unknown preset {name:?}; the presets are {known}")]
    UnknownPreset { name: String, known: String },
}

impl From<SpecError> for ObjectiveError {
    fn from(e: SpecError) -> Self {
        match e {
            SpecError::TensorShape {
                name,
                expected,
                found,
            } => ObjectiveError::Shape {
                what: format!("tensor {name}"),
                expected: format!("{expected:?}"),
                got: format!("{found:?}"),
            },
            e => ObjectiveError::invalid("network spec", e.to_string()),
        }
    }
}

type Result<T> = std::result::Result<T, SpecError>;

/// A side length or a pair `[h, w]` (PyTorch's `int or tuple`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Size2 {
    Square(usize),
    Pair([usize; 2]),
}

impl Size2 {
    pub fn pair(self) -> (usize, usize) {
        match self {
            Size2::Square(k) => (k, k),
            Size2::Pair([h, w]) => (h, w),
        }
    }
}

fn zero() -> Size2 {
    Size2::Square(0)
}
fn one() -> Size2 {
    Size2::Square(1)
}
fn yes() -> bool {
    true
}
fn one_usize() -> usize {
    1
}
fn norm_eps() -> f64 {
    1e-5
}
fn leaky_slope() -> f64 {
    0.01
}
fn unit() -> f64 {
    1.0
}
fn shortcut() -> String {
    "shortcut".into()
}

/// One layer of a [`NetworkSpec`], tagged by `type` (PyTorch's module, snake case).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    /// `nn.Conv2d`: weight `[out, in/groups, kh, kw]`, then bias `[out]`.
    Conv2d {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        in_channels: Option<usize>,
        out_channels: usize,
        kernel_size: Size2,
        #[serde(default = "one")]
        stride: Size2,
        #[serde(default = "zero")]
        padding: Size2,
        #[serde(default = "one")]
        dilation: Size2,
        #[serde(default = "one_usize")]
        groups: usize,
        #[serde(default = "yes")]
        bias: bool,
    },
    /// `nn.Linear`: weight `[out, in]`, then bias `[out]`.
    Linear {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        in_features: Option<usize>,
        out_features: usize,
        #[serde(default = "yes")]
        bias: bool,
    },
    /// `nn.MaxPool2d` (stride defaults to the kernel).
    MaxPool {
        kernel_size: Size2,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<Size2>,
        #[serde(default = "zero")]
        padding: Size2,
    },
    /// `nn.AvgPool2d` (`count_include_pad = True`; stride defaults to the kernel).
    AvgPool {
        kernel_size: Size2,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<Size2>,
        #[serde(default = "zero")]
        padding: Size2,
    },
    /// `nn.AdaptiveAvgPool2d(output_size)`.
    AdaptiveAvgPool {
        output_size: Size2,
    },
    /// `x.mean((2, 3))`: the mean of each channel, a vector of `C`.
    GlobalAvgPool,
    /// `nn.Flatten()`.
    Flatten,
    Identity,
    Relu,
    LeakyRelu {
        #[serde(default = "leaky_slope")]
        negative_slope: f64,
    },
    Elu {
        #[serde(default = "unit")]
        alpha: f64,
    },
    /// The exact (erf) GELU.
    Gelu,
    Tanh,
    Sigmoid,
    Softplus,
    /// `nn.LayerNorm(shape)` over each example's features, `γ, β` of the input's shape.
    LayerNorm {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default = "norm_eps")]
        eps: f64,
    },
    /// `nn.BatchNorm2d(C)` (`BatchNorm1d` on vectors): `γ, β` of `[C]`, buffers `running_mean`, `running_var`.
    BatchNorm {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default = "norm_eps")]
        eps: f64,
    },
    /// `nn.Sequential`: a named group of layers.
    Sequential {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        layers: Vec<LayerSpec>,
    },
    /// `x ↦ body(x) + shortcut(x)` (the shortcut is the identity when empty, or e.g. a 1×1 projection); follow it
    /// by an activation layer for `x ← act(x + block(x))`.
    Residual {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        body: Vec<LayerSpec>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        shortcut: Vec<LayerSpec>,
        #[serde(default = "shortcut")]
        shortcut_name: String,
    },
    /// `torch.cat([branch(x) for branch in branches], dim=1)`: branches of equal `H × W` (or all vectors).
    Concat {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        branches: Vec<Vec<LayerSpec>>,
    },
}

/// Batch norm's statistics (PyTorch's `model.train()` / `model.eval()`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchNormStats {
    /// The batch's statistics (couples the examples of a batch).
    #[default]
    Train,
    /// The running statistics.
    Eval,
}

/// A network description: input shape (`[d]` or `[C, H, W]`), batch-norm mode and layers.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    #[serde(default = "default_name")]
    pub name: String,
    pub input: Vec<usize>,
    #[serde(default)]
    pub batch_norm: BatchNormStats,
    pub layers: Vec<LayerSpec>,
}

fn default_name() -> String {
    "network".into()
}

impl NetworkSpec {
    /// Parses a TOML description.
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| SpecError::Parse(e.to_string()))
    }

    /// Parses a JSON description.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| SpecError::Parse(e.to_string()))
    }

    /// The description as TOML.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| SpecError::Parse(e.to_string()))
    }
}

/// The shape of one example's activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Vector(usize),
    Map(Image),
}

/// A compiled activation.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Act {
    Unary(Unary),
    LeakyRelu(f64),
    Elu(f64),
}

/// A compiled layer: geometry checked, parameter leaves indexed.
#[derive(Clone, Debug)]
enum Node {
    Conv {
        geo: Conv2d,
        w: usize,
        b: Option<usize>,
    },
    Linear {
        w: usize,
        b: Option<usize>,
    },
    MaxPool(Pool2d),
    AvgPool(Pool2d),
    AdaptiveAvgPool {
        input: Image,
        output: (usize, usize),
    },
    GlobalAvgPool(Image),
    Act(Act),
    LayerNorm {
        gamma: usize,
        eps: f64,
    },
    BatchNorm {
        gamma: usize,
        eps: f64,
        input: Image,
        stats: usize,
    },
    Residual {
        body: Vec<Node>,
        shortcut: Vec<Node>,
    },
    Concat(Vec<Vec<Node>>),
    Seq(Vec<Node>),
}

/// Running statistics of one batch norm (buffers of the `state_dict`).
#[derive(Clone, Debug, PartialEq)]
struct Running {
    name: String,
    mean: Vec<f64>,
    var: Vec<f64>,
}

/// The compiler's state: parameters and buffers found so far, and the tape-size estimate.
#[derive(Default)]
struct Compiler {
    params: Vec<Parameter>,
    /// The tape leaf of each parameter.
    leaves: Vec<(usize, usize)>,
    running: Vec<Running>,
    floats: usize,
}

/// `prefix.name`; an empty name is the prefix itself (a container that adds no level to the names).
fn join(prefix: &str, name: &str) -> String {
    if name.is_empty() {
        prefix.to_string()
    } else if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn checked(layer: &str, field: &'static str, v: Option<usize>) -> Result<usize> {
    v.ok_or_else(|| SpecError::Layer {
        layer: layer.into(),
        field,
        reason: "size overflows".into(),
    })
}

impl Shape {
    fn features(self, layer: &str) -> Result<usize> {
        match self {
            Shape::Vector(d) => Ok(d),
            Shape::Map(m) => checked(
                layer,
                "input",
                m.channels
                    .checked_mul(m.height)
                    .and_then(|x| x.checked_mul(m.width)),
            ),
        }
    }

    fn image(self, layer: &str, kind: &str) -> Result<Image> {
        match self {
            Shape::Map(m) => Ok(m),
            Shape::Vector(d) => Err(SpecError::Layer {
                layer: layer.into(),
                field: "input",
                reason: format!("{kind} needs a C × H × W input, found a vector of {d}"),
            }),
        }
    }
}

impl Compiler {
    fn param(&mut self, name: String, shape: Vec<usize>) -> Result<usize> {
        let len = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        checked(&name, "parameter shape", len)?;
        let p = Parameter::new(name, shape);
        self.leaves.push(p.leaf_shape());
        self.params.push(p);
        Ok(self.params.len() - 1)
    }

    /// A parameter held as one `1 × len` row on the tape (a layer norm's `γ, β` of shape `[C, H, W]`).
    fn param_row(&mut self, name: String, shape: Vec<usize>) -> Result<usize> {
        let k = self.param(name, shape)?;
        self.leaves[k] = (1, self.params[k].len());
        Ok(k)
    }

    fn keep(&mut self, layer: &str, features: usize) -> Result<()> {
        self.floats = checked(layer, "size", self.floats.checked_add(features))?;
        Ok(())
    }

    fn sequence(
        &mut self,
        layers: &[LayerSpec],
        prefix: &str,
        mut shape: Shape,
    ) -> Result<(Vec<Node>, Shape)> {
        let mut nodes = Vec::with_capacity(layers.len());
        for (k, layer) in layers.iter().enumerate() {
            let (node, out) = self.layer(layer, prefix, k, shape)?;
            nodes.extend(node);
            shape = out;
        }
        Ok((nodes, shape))
    }

    fn layer(
        &mut self,
        layer: &LayerSpec,
        prefix: &str,
        index: usize,
        shape: Shape,
    ) -> Result<(Option<Node>, Shape)> {
        let named = |name: &Option<String>| join(prefix, name.as_deref().unwrap_or(&index.to_string()));
        let here = named(&None);
        let bad = |layer: &str, field: &'static str, reason: String| SpecError::Layer {
            layer: layer.into(),
            field,
            reason,
        };
        let act = |a: Act| Ok((Some(Node::Act(a)), shape));
        match layer {
            LayerSpec::Conv2d {
                name,
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding,
                dilation,
                groups,
                bias,
            } => {
                let name = named(name);
                let input = shape.image(&name, "conv2d")?;
                if let Some(c) = *in_channels {
                    if c != input.channels {
                        return Err(bad(
                            &name,
                            "in_channels",
                            format!("{c}, but the input has {} channels", input.channels),
                        ));
                    }
                }
                let geo = Conv2d {
                    input,
                    out_channels: *out_channels,
                    kernel: kernel_size.pair(),
                    stride: stride.pair(),
                    padding: padding.pair(),
                    dilation: dilation.pair(),
                    groups: *groups,
                };
                let ad = |e: imreg_ad::AdError| bad(&name, "geometry", e.to_string());
                let out = geo.output().map_err(ad)?;
                let (kh, kw) = geo.kernel;
                let w = self.param(
                    format!("{name}.weight"),
                    vec![*out_channels, input.channels / groups, kh, kw],
                )?;
                let b = if *bias {
                    Some(self.param(format!("{name}.bias"), vec![*out_channels])?)
                } else {
                    None
                };
                let (_, cols) = geo.weight_shape().map_err(ad)?;
                let plane = out.plane().map_err(ad)?;
                let patches = cols.checked_mul(*groups).and_then(|c| c.checked_mul(plane));
                let out_shape = Shape::Map(out);
                let size = out_shape.features(&name)?;
                self.keep(&name, checked(&name, "patches", patches)?)?;
                self.keep(&name, size)?;
                Ok((Some(Node::Conv { geo, w, b }), out_shape))
            }
            LayerSpec::Linear {
                name,
                in_features,
                out_features,
                bias,
            } => {
                let name = named(name);
                let d = match shape {
                    Shape::Vector(d) => d,
                    Shape::Map(m) => {
                        return Err(bad(
                            &name,
                            "input",
                            format!(
                                "linear needs a vector, found a {}×{}×{} map (add a flatten layer)",
                                m.channels, m.height, m.width
                            ),
                        ))
                    }
                };
                if let Some(i) = *in_features {
                    if i != d {
                        return Err(bad(
                            &name,
                            "in_features",
                            format!("{i}, but the input has {d} features"),
                        ));
                    }
                }
                if *out_features == 0 || d == 0 {
                    return Err(bad(
                        &name,
                        "out_features",
                        format!("{d} → {out_features} must be positive"),
                    ));
                }
                let w = self.param(format!("{name}.weight"), vec![*out_features, d])?;
                let b = if *bias {
                    Some(self.param(format!("{name}.bias"), vec![*out_features])?)
                } else {
                    None
                };
                self.keep(&name, *out_features)?;
                Ok((Some(Node::Linear { w, b }), Shape::Vector(*out_features)))
            }
            LayerSpec::MaxPool {
                kernel_size,
                stride,
                padding,
            }
            | LayerSpec::AvgPool {
                kernel_size,
                stride,
                padding,
            } => {
                let max = matches!(layer, LayerSpec::MaxPool { .. });
                let input = shape.image(&here, if max { "max_pool" } else { "avg_pool" })?;
                let pool = Pool2d {
                    input,
                    kernel: kernel_size.pair(),
                    stride: stride.unwrap_or(*kernel_size).pair(),
                    padding: padding.pair(),
                };
                let out = pool_output(&pool).map_err(|(field, reason)| bad(&here, field, reason))?;
                let out_shape = Shape::Map(out);
                self.keep(&here, out_shape.features(&here)?)?;
                Ok((
                    Some(if max {
                        Node::MaxPool(pool)
                    } else {
                        Node::AvgPool(pool)
                    }),
                    out_shape,
                ))
            }
            LayerSpec::AdaptiveAvgPool { output_size } => {
                let input = shape.image(&here, "adaptive_avg_pool")?;
                let (oh, ow) = output_size.pair();
                if oh == 0 || ow == 0 || oh > input.height || ow > input.width {
                    return Err(bad(
                        &here,
                        "output_size",
                        format!(
                            "{oh}×{ow} must be positive and at most the input {}×{}",
                            input.height, input.width
                        ),
                    ));
                }
                let out_shape = Shape::Map(Image::new(input.channels, oh, ow));
                self.keep(&here, out_shape.features(&here)?)?;
                Ok((
                    Some(Node::AdaptiveAvgPool {
                        input,
                        output: (oh, ow),
                    }),
                    out_shape,
                ))
            }
            LayerSpec::GlobalAvgPool => {
                let input = shape.image(&here, "global_avg_pool")?;
                Ok((Some(Node::GlobalAvgPool(input)), Shape::Vector(input.channels)))
            }
            LayerSpec::Flatten => Ok((None, Shape::Vector(shape.features(&here)?))),
            LayerSpec::Identity => Ok((None, shape)),
            LayerSpec::Relu => act(Act::Unary(Unary::Relu)),
            LayerSpec::Gelu => act(Act::Unary(Unary::Gelu)),
            LayerSpec::Tanh => act(Act::Unary(Unary::Tanh)),
            LayerSpec::Sigmoid => act(Act::Unary(Unary::Sigmoid)),
            LayerSpec::Softplus => act(Act::Unary(Unary::Softplus)),
            LayerSpec::LeakyRelu { negative_slope } => {
                if !negative_slope.is_finite() {
                    return Err(bad(
                        &here,
                        "negative_slope",
                        format!("{negative_slope} must be finite"),
                    ));
                }
                act(Act::LeakyRelu(*negative_slope))
            }
            LayerSpec::Elu { alpha } => {
                if !alpha.is_finite() {
                    return Err(bad(&here, "alpha", format!("{alpha} must be finite")));
                }
                act(Act::Elu(*alpha))
            }
            LayerSpec::LayerNorm { name, eps } | LayerSpec::BatchNorm { name, eps } => {
                let name = named(name);
                if !(eps.is_finite() && *eps > 0.0) {
                    return Err(bad(&name, "eps", format!("{eps} must be positive and finite")));
                }
                let features = shape.features(&name)?;
                if features == 0 {
                    return Err(bad(&name, "input", "no features to normalize".into()));
                }
                self.keep(&name, features)?;
                if let LayerSpec::LayerNorm { .. } = layer {
                    let dims = match shape {
                        Shape::Vector(d) => vec![d],
                        Shape::Map(m) => vec![m.channels, m.height, m.width],
                    };
                    let gamma = self.param_row(format!("{name}.weight"), dims.clone())?;
                    self.param_row(format!("{name}.bias"), dims)?;
                    return Ok((Some(Node::LayerNorm { gamma, eps: *eps }), shape));
                }
                let input = match shape {
                    Shape::Vector(d) => Image::new(d, 1, 1),
                    Shape::Map(m) => m,
                };
                let c = input.channels;
                let gamma = self.param(format!("{name}.weight"), vec![c])?;
                self.param(format!("{name}.bias"), vec![c])?;
                self.running.push(Running {
                    name,
                    mean: vec![0.0; c],
                    var: vec![1.0; c],
                });
                let stats = self.running.len() - 1;
                Ok((
                    Some(Node::BatchNorm {
                        gamma,
                        eps: *eps,
                        input,
                        stats,
                    }),
                    shape,
                ))
            }
            LayerSpec::Sequential { name, layers } => {
                let name = named(name);
                let (nodes, out) = self.sequence(layers, &name, shape)?;
                Ok((Some(Node::Seq(nodes)), out))
            }
            LayerSpec::Residual {
                name,
                body,
                shortcut,
                shortcut_name,
            } => {
                let name = named(name);
                let (body, out) = self.sequence(body, &name, shape)?;
                let (shortcut, skip) = self.sequence(shortcut, &join(&name, shortcut_name), shape)?;
                if out != skip {
                    return Err(bad(
                        &name,
                        "body",
                        format!("the body maps to {out:?} but the shortcut to {skip:?}; add a projection shortcut"),
                    ));
                }
                self.keep(&name, out.features(&name)?)?;
                Ok((Some(Node::Residual { body, shortcut }), out))
            }
            LayerSpec::Concat { name, branches } => {
                let name = named(name);
                if branches.is_empty() {
                    return Err(bad(&name, "branches", "no branches".into()));
                }
                let mut nodes = Vec::with_capacity(branches.len());
                let mut outs = Vec::with_capacity(branches.len());
                for (k, branch) in branches.iter().enumerate() {
                    let (n, out) = self.sequence(branch, &join(&name, &k.to_string()), shape)?;
                    nodes.push(n);
                    outs.push(out);
                }
                let out = concat_shape(&outs).map_err(|reason| bad(&name, "branches", reason))?;
                self.keep(&name, out.features(&name)?)?;
                Ok((Some(Node::Concat(nodes)), out))
            }
        }
    }
}

/// The output of a pool, checked as the engine does (positive kernel and stride, padding ≤ kernel/2, a kernel
/// that fits), or the field at fault and why.
fn pool_output(pool: &Pool2d) -> std::result::Result<Image, (&'static str, String)> {
    let ((kh, kw), (sh, sw), (ph, pw)) = (pool.kernel, pool.stride, pool.padding);
    if kh == 0 || kw == 0 {
        return Err(("kernel_size", format!("{:?} must be positive", pool.kernel)));
    }
    if sh == 0 || sw == 0 {
        return Err(("stride", format!("{:?} must be positive", pool.stride)));
    }
    if ph.saturating_mul(2) > kh || pw.saturating_mul(2) > kw {
        return Err((
            "padding",
            format!(
                "{:?} must be at most half the kernel {:?}",
                pool.padding, pool.kernel
            ),
        ));
    }
    let side = |size: usize, k: usize, s: usize, p: usize| {
        let padded = size.checked_add(2 * p).filter(|&x| x >= k);
        padded.map(|x| (x - k) / s + 1)
    };
    match (
        side(pool.input.height, kh, sh, ph),
        side(pool.input.width, kw, sw, pw),
    ) {
        (Some(oh), Some(ow)) => Ok(Image::new(pool.input.channels, oh, ow)),
        _ => Err((
            "kernel_size",
            format!(
                "{:?} does not fit the padded {}×{} input",
                pool.kernel, pool.input.height, pool.input.width
            ),
        )),
    }
}

/// The shape of a channel concatenation: equal `H × W` maps (channels add up) or vectors (features add up).
fn concat_shape(outs: &[Shape]) -> std::result::Result<Shape, String> {
    let overflow = || "the concatenated size overflows".to_string();
    match outs[0] {
        Shape::Vector(_) => {
            let mut total = 0usize;
            for o in outs {
                let Shape::Vector(d) = o else {
                    return Err(format!("cannot concatenate a vector with {o:?}"));
                };
                total = total.checked_add(*d).ok_or_else(overflow)?;
            }
            Ok(Shape::Vector(total))
        }
        Shape::Map(first) => {
            let mut channels = 0usize;
            for o in outs {
                match o {
                    Shape::Map(m) if (m.height, m.width) == (first.height, first.width) => {
                        channels = channels.checked_add(m.channels).ok_or_else(overflow)?;
                    }
                    o => return Err(format!("cannot concatenate {first:?} with {o:?} along channels")),
                }
            }
            Ok(Shape::Map(Image::new(channels, first.height, first.width)))
        }
    }
}

/// A [`NetworkSpec`] compiled into a [`Network`]: parameters in `state_dict` order, geometry checked once.
#[derive(Clone, Debug)]
pub struct SpecNetwork {
    spec: NetworkSpec,
    nodes: Vec<Node>,
    params: Vec<Parameter>,
    leaves: Vec<(usize, usize)>,
    running: Vec<Running>,
    input: Shape,
    output: usize,
    floats: usize,
}

impl SpecNetwork {
    /// Compiles and validates `spec` (every layer's sizes with checked arithmetic; errors name the layer and
    /// the field).
    pub fn new(spec: NetworkSpec) -> Result<Self> {
        let bad = |reason: String| SpecError::Layer {
            layer: "input".into(),
            field: "input",
            reason,
        };
        let input = match spec.input.as_slice() {
            [d] => Shape::Vector(*d),
            [c, h, w] => Shape::Map(Image::new(*c, *h, *w)),
            other => return Err(bad(format!("{other:?}: give [d] or [C, H, W]"))),
        };
        let features = input.features("input")?;
        if features == 0 {
            return Err(bad(format!("{:?} has no features", spec.input)));
        }
        let mut c = Compiler::default();
        let (nodes, out) = c.sequence(&spec.layers, "", input)?;
        let output = match out {
            Shape::Vector(d) => d,
            Shape::Map(m) => {
                return Err(SpecError::Layer {
                    layer: "output".into(),
                    field: "layers",
                    reason: format!(
                        "the network ends on a {}×{}×{} map; end with flatten/global_avg_pool and linear",
                        m.channels, m.height, m.width
                    ),
                })
            }
        };
        let mut names: Vec<&str> = c.params.iter().map(|p| p.name.as_str()).collect();
        names.extend(c.running.iter().map(|r| r.name.as_str()));
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(SpecError::Layer {
                layer: w[0].into(),
                field: "name",
                reason: "two parameters share this name".into(),
            });
        }
        Ok(SpecNetwork {
            spec,
            nodes,
            params: c.params,
            leaves: c.leaves,
            running: c.running,
            input,
            output,
            floats: c.floats.saturating_add(features),
        })
    }

    pub fn spec(&self) -> &NetworkSpec {
        &self.spec
    }

    /// The batch-norm statistics in use.
    pub fn batch_norm(&self) -> BatchNormStats {
        self.spec.batch_norm
    }

    /// The same network with the other batch-norm statistics (`model.train()` / `model.eval()`).
    pub fn with_batch_norm(mut self, stats: BatchNormStats) -> Self {
        self.spec.batch_norm = stats;
        self
    }

    /// Every `state_dict` key with its shape, in PyTorch's order (a module's parameters, then its buffers
    /// `running_mean`, `running_var`; `num_batches_tracked` is accepted on loading and not written).
    pub fn state_dict_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out: Vec<(String, Vec<usize>)> = Vec::new();
        let mut running = self.running.iter().peekable();
        for p in &self.params {
            out.push((p.name.clone(), p.shape.clone()));
            if let Some(r) = running.next_if(|r| p.name == format!("{}.bias", r.name)) {
                out.push((format!("{}.running_mean", r.name), vec![r.mean.len()]));
                out.push((format!("{}.running_var", r.name), vec![r.var.len()]));
            }
        }
        out
    }

    /// The `state_dict` of the network at `θ`: the parameters, then each batch norm's running statistics after
    /// its parameters.
    pub fn state_dict(&self, theta: &[f64]) -> std::result::Result<Vec<NamedTensor>, ObjectiveError> {
        crate::objective::check_len("theta", theta, self.n_params())?;
        let mut off = 0;
        let mut out = Vec::new();
        for (name, shape) in self.state_dict_shapes() {
            let buffer = self.running.iter().find_map(|r| {
                if name == format!("{}.running_mean", r.name) {
                    Some(r.mean.clone())
                } else if name == format!("{}.running_var", r.name) {
                    Some(r.var.clone())
                } else {
                    None
                }
            });
            let data = match buffer {
                Some(b) => b,
                None => {
                    let len: usize = shape.iter().product();
                    off += len;
                    theta[off - len..off].to_vec()
                }
            };
            out.push((name, shape, data));
        }
        Ok(out)
    }

    /// Loads a `state_dict` by name and shape: sets the running statistics and returns `θ`. Every parameter and
    /// buffer must be present with its shape; `<bn>.num_batches_tracked` is ignored; any other tensor is an
    /// error, as is a non-finite value.
    pub fn load_state_dict(&mut self, tensors: &[NamedTensor]) -> Result<Vec<f64>> {
        let expected = self.state_dict_shapes();
        for (name, shape, _) in tensors {
            let known = expected.iter().any(|(n, _)| n == name)
                || self
                    .running
                    .iter()
                    .any(|r| *name == format!("{}.num_batches_tracked", r.name));
            if !known {
                return Err(SpecError::ExtraTensor {
                    name: name.clone(),
                    found: shape.clone(),
                });
            }
        }
        let mut theta = Vec::with_capacity(self.n_params());
        for (name, shape) in expected {
            let Some((_, found, data)) = tensors.iter().find(|(n, _, _)| *n == name) else {
                return Err(SpecError::MissingTensor {
                    name,
                    expected: shape,
                });
            };
            if *found != shape || data.len() != shape.iter().product::<usize>() {
                return Err(SpecError::TensorShape {
                    name,
                    expected: shape,
                    found: found.clone(),
                });
            }
            if let Some(k) = imreg_ad::first_non_finite(data) {
                return Err(SpecError::StateDict {
                    what: name,
                    reason: format!("non-finite value {} at position {k}", data[k]),
                });
            }
            let running = self.running.iter_mut().find_map(|r| {
                if name == format!("{}.running_mean", r.name) {
                    Some(&mut r.mean)
                } else if name == format!("{}.running_var", r.name) {
                    Some(&mut r.var)
                } else {
                    None
                }
            });
            match running {
                Some(buf) => {
                    if name.ends_with("running_var") && data.iter().any(|v| *v < 0.0) {
                        return Err(SpecError::StateDict {
                            what: name,
                            reason: "a negative running variance".into(),
                        });
                    }
                    buf.copy_from_slice(data);
                }
                None => theta.extend_from_slice(data),
            }
        }
        Ok(theta)
    }

    /// Records the compiled layers on `x`.
    fn run<T: Tensor>(
        &self,
        nodes: &[Node],
        g: &mut Graph<T>,
        leaves: &[Var],
        x: Var,
    ) -> imreg_ad::Result<Var> {
        let mut h = x;
        for node in nodes {
            h = match node {
                Node::Conv { geo, w, b } => g.conv2d(h, leaves[*w], b.map(|b| leaves[b]), geo)?,
                Node::Linear { w, b } => g.linear(h, leaves[*w], b.map(|b| leaves[b]))?,
                Node::MaxPool(p) => g.max_pool2d(h, p)?,
                Node::AvgPool(p) => g.avg_pool2d(h, p)?,
                Node::AdaptiveAvgPool { input, output } => g.adaptive_avg_pool2d(h, *input, *output)?,
                Node::GlobalAvgPool(input) => g.global_avg_pool2d(h, *input)?,
                Node::Act(Act::Unary(u)) => g.unary(h, *u),
                Node::Act(Act::LeakyRelu(s)) => g.leaky_relu(h, *s)?,
                Node::Act(Act::Elu(a)) => g.elu(h, *a)?,
                Node::LayerNorm { gamma, eps } => g.layer_norm(h, leaves[*gamma], leaves[gamma + 1], *eps)?,
                Node::BatchNorm {
                    gamma,
                    eps,
                    input,
                    stats,
                } => {
                    let mode = match self.spec.batch_norm {
                        BatchNormStats::Train => BatchNormMode::Training {
                            batch_rows: g.shape(h).0,
                        },
                        BatchNormStats::Eval => BatchNormMode::Eval {
                            mean: self.running[*stats].mean.clone(),
                            var: self.running[*stats].var.clone(),
                        },
                    };
                    g.batch_norm(h, leaves[*gamma], leaves[gamma + 1], *input, &mode, *eps)?
                }
                Node::Residual { body, shortcut } => {
                    let y = self.run(body, g, leaves, h)?;
                    let s = self.run(shortcut, g, leaves, h)?;
                    g.add(y, s)?
                }
                Node::Concat(branches) => {
                    let outs = branches
                        .iter()
                        .map(|b| self.run(b, g, leaves, h))
                        .collect::<imreg_ad::Result<Vec<_>>>()?;
                    g.concat(&outs)?
                }
                Node::Seq(nodes) => self.run(nodes, g, leaves, h)?,
            };
        }
        Ok(h)
    }
}

impl Network for SpecNetwork {
    fn name(&self) -> String {
        self.spec.name.clone()
    }
    fn parameters(&self) -> Vec<Parameter> {
        self.params.clone()
    }
    fn leaf_shapes(&self) -> Vec<(usize, usize)> {
        self.leaves.clone()
    }
    fn input_dim(&self) -> usize {
        self.input.features("input").unwrap_or(0)
    }
    fn output_dim(&self) -> usize {
        self.output
    }
    fn forward<T: Tensor>(&self, g: &mut Graph<T>, leaves: &[Var], x: Var) -> imreg_ad::Result<Var> {
        self.run(&self.nodes, g, leaves, x)
    }
    fn couples_examples(&self) -> bool {
        self.spec.batch_norm == BatchNormStats::Train && !self.running.is_empty()
    }
    fn tape_floats_per_example(&self) -> usize {
        self.floats
    }
}

/// Reads a safetensors `state_dict` (`safetensors.torch.save_file(model.state_dict(), …)`), sorted by name:
/// `F64` and `F32` tensors as `f64`, and `I64` ones (`num_batches_tracked`) converted too. Other dtypes are an
/// error naming the tensor.
pub fn read_state_dict(bytes: &[u8]) -> Result<Vec<NamedTensor>> {
    use safetensors::tensor::Dtype;
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| SpecError::StateDict {
        what: "header".into(),
        reason: e.to_string(),
    })?;
    let mut out = Vec::with_capacity(st.len());
    for (name, view) in st.tensors() {
        let d = view.data();
        let data: Vec<f64> = match view.dtype() {
            Dtype::F64 => d
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
            Dtype::F32 => d
                .chunks_exact(4)
                .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap_or([0; 4]))))
                .collect(),
            Dtype::I64 => d
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f64)
                .collect(),
            other => {
                return Err(SpecError::StateDict {
                    what: name,
                    reason: format!("dtype {other:?} (expected F64, F32 or I64)"),
                })
            }
        };
        out.push((name, view.shape().to_vec(), data));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Serializes tensors as an `F64` safetensors buffer (loadable by `safetensors.torch.load_file`).
pub fn write_state_dict(tensors: &[NamedTensor]) -> Result<Vec<u8>> {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, d)| d.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s, _), b)| {
            TensorView::new(Dtype::F64, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| SpecError::StateDict {
                    what: n.clone(),
                    reason: e.to_string(),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, &None).map_err(|e| SpecError::StateDict {
        what: "serialize".into(),
        reason: e.to_string(),
    })
}
