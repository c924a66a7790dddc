//! The experiment config schema of `imreg run` and `imreg sweep` (one place, so it grows with the theory
//! crates). Every table denies unknown keys; `kind` selects the variant of `[data]`, `[model]` and
//! `[optimizer]`. The full reference with every variant is `docs/cli.md`.
//!
//! ```toml
//! name = "linreg-sgd"
//! seed = 0
//! steps = 200
//!
//! [data]
//! kind = "gaussian_linear"   # | "digits" | "mnist" | "fashion_mnist" | "teacher_student" | "npy" | …
//! n = 64
//! dim = 5
//! noise = 0.1
//!
//! [model]
//! kind = "linear_regression" # | "logistic_regression" | "mlp" | "deep_linear" | "scalar_net" | "quadratic"
//!
//! [init]
//! scale = 0.1                # θ₀ ~ N(0, scale²); or `from = "theta.npy"`
//!
//! [optimizer]
//! kind = "sgd"               # | "gd" | "momentum" | "noisy_gd"
//! lr = 0.05
//! batch_size = 8
//! replacement = false
//!
//! [track]
//! every = 10
//! sharpness = true           # or a number: its own period in steps
//!
//! [[regularizer]]            # optional, repeatable: explicit penalties (see `RegularizerConfig`)
//! kind = "weight_decay"      # | "gradient_penalty" | "smith_stochastic" | "smith_lambda" | "gradient_norm"
//!                            # | "fisher_trace" | "average_jacobian" | "unit_jacobian" | "fisher_penalty"
//!                            # | "input_gradient_penalty" | "random_label_penalty"
//! coefficient = 1e-4
//! ```
use crate::analyze::BatchEstimation;
use crate::error::{CliError, Result};
use crate::quantities::{Fault, Plan, Quantities, SolverOptions, QUANTITY_NAMES};
use imreg_objective::models::{Activation, BatchNormStats, NetworkSpec, StandardLoss};
use imreg_objective::LossKind;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

fn default_true() -> bool {
    true
}
fn default_one() -> usize {
    1
}
fn default_steps() -> usize {
    100
}
fn default_max_batches() -> usize {
    100
}
fn is_false(b: &bool) -> bool {
    !*b
}

/// One experiment: a pure function of this config (the seed included).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// A label for reports (defaults to the config file's stem).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Master seed: data generation, initialization and batch sampling use separate ChaCha streams of it.
    #[serde(default)]
    pub seed: u64,
    /// Number of optimizer steps.
    #[serde(default = "default_steps")]
    pub steps: usize,
    /// Required by every model except `scalar_net` with `phi` and `quadratic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataConfig>,
    pub model: ModelConfig,
    #[serde(default)]
    pub init: InitConfig,
    pub optimizer: OptimizerConfig,
    #[serde(default)]
    pub track: TrackConfig,
    /// A seeded train/test split of the data (training uses the train part; `test_loss` and
    /// `test_accuracy` are tracked on the rest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<SplitConfig>,
    /// `[[regularizer]]`: explicit penalties added to the minibatch loss (in this order); with any of them
    /// (or `optimizer.clip_grad_norm`) each step uses the gradient of `L_B + Σ R`.
    #[serde(default, rename = "regularizer", skip_serializing_if = "Vec::is_empty")]
    pub regularizers: Vec<RegularizerConfig>,
}

/// One `[[regularizer]]` table: an explicit penalty of `imreg_sgd::regularizers` with its exact gradient
/// (`docs/theory/regularizers.md`; usage in `docs/regularizers.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RegularizerConfig {
    /// `(wd/2)‖θ‖²`, gradient `wd θ` (PyTorch `weight_decay`).
    WeightDecay { coefficient: f64 },
    /// Smith et al. per-step form `(λ/4)‖∇Ĉ_B‖²` on the current batch, gradient `(λ/2) Ĥ_B ĝ_B`.
    SmithStochastic { lambda: f64 },
    /// Smith et al. full-epoch term `(λ/(4m)) Σ_k ‖∇Ĉ_k‖²` over the fixed consecutive partition of the
    /// examples into `m` batches of the optimizer's batch size (full batch: `m = 1`).
    SmithLambda { lambda: f64 },
    /// GP: `α ‖∇L_B‖²` (true labels), gradient `2α H_B g_B`.
    GradientPenalty { alpha: f64 },
    /// GN (Novack et al.): `λ · mean_j ‖∇L_{M_j}‖²` over micro-batches of size `micro_batch`.
    GradientNorm { lambda: f64, micro_batch: usize },
    /// FT (Novack et al.): `λ · mean_j ‖∇L_{M_j}(ŷ)‖²`, `ŷ ~ softmax(f)`: cross-entropy classifiers (MLPs and
    /// networks).
    FisherTrace { lambda: f64, micro_batch: usize },
    /// AJ (Novack et al.): `λ · mean_j ‖∇ (1/|M|) Σ_i Σ_c f_c(x_i)‖²` over micro-batches: MLPs and networks.
    AverageJacobian { lambda: f64, micro_batch: usize },
    /// UJ (Novack et al.): `λ · mean_j ‖∇ (1/|M|) Σ_i uᵀ f(x_i)‖²`, a fresh random unit `u` per micro-batch:
    /// MLPs and networks.
    UnitJacobian { lambda: f64, micro_batch: usize },
    /// FP (Jastrzębski et al.): `α ‖∇L_B(ŷ)‖^p`, `ŷ ~ softmax(f)`, `p = 2` (`squared = true`, the default) or
    /// `p = 1`: cross-entropy classifiers (MLPs and networks).
    FisherPenalty {
        alpha: f64,
        #[serde(default = "default_true")]
        squared: bool,
    },
    /// GP_x: `α ‖∇_x L_B‖²`, the input-gradient penalty, gradient `2α (∂²L/∂θ∂x) ∇_x L`: MLPs and networks.
    InputGradientPenalty { alpha: f64 },
    /// GP_r: `α ‖∇L_B(ỹ)‖²` with uniformly random labels `ỹ`: cross-entropy classifiers (MLPs and networks).
    RandomLabelPenalty { alpha: f64 },
}

impl RegularizerConfig {
    /// The `kind` string.
    pub fn kind(&self) -> &'static str {
        match self {
            RegularizerConfig::WeightDecay { .. } => "weight_decay",
            RegularizerConfig::SmithStochastic { .. } => "smith_stochastic",
            RegularizerConfig::SmithLambda { .. } => "smith_lambda",
            RegularizerConfig::GradientPenalty { .. } => "gradient_penalty",
            RegularizerConfig::GradientNorm { .. } => "gradient_norm",
            RegularizerConfig::FisherTrace { .. } => "fisher_trace",
            RegularizerConfig::AverageJacobian { .. } => "average_jacobian",
            RegularizerConfig::UnitJacobian { .. } => "unit_jacobian",
            RegularizerConfig::FisherPenalty { .. } => "fisher_penalty",
            RegularizerConfig::InputGradientPenalty { .. } => "input_gradient_penalty",
            RegularizerConfig::RandomLabelPenalty { .. } => "random_label_penalty",
        }
    }
    /// The coefficient and its key.
    pub fn coefficient(&self) -> (&'static str, f64) {
        match *self {
            RegularizerConfig::WeightDecay { coefficient } => ("coefficient", coefficient),
            RegularizerConfig::GradientPenalty { alpha }
            | RegularizerConfig::FisherPenalty { alpha, .. }
            | RegularizerConfig::InputGradientPenalty { alpha }
            | RegularizerConfig::RandomLabelPenalty { alpha } => ("alpha", alpha),
            RegularizerConfig::SmithStochastic { lambda }
            | RegularizerConfig::SmithLambda { lambda }
            | RegularizerConfig::GradientNorm { lambda, .. }
            | RegularizerConfig::FisherTrace { lambda, .. }
            | RegularizerConfig::AverageJacobian { lambda, .. }
            | RegularizerConfig::UnitJacobian { lambda, .. } => ("lambda", lambda),
        }
    }
    /// The micro-batch size of GN / FT / AJ / UJ.
    pub fn micro_batch(&self) -> Option<usize> {
        match *self {
            RegularizerConfig::GradientNorm { micro_batch, .. }
            | RegularizerConfig::FisherTrace { micro_batch, .. }
            | RegularizerConfig::AverageJacobian { micro_batch, .. }
            | RegularizerConfig::UnitJacobian { micro_batch, .. } => Some(micro_batch),
            _ => None,
        }
    }
}

/// `[split]`: the first `n_train` examples of a seeded permutation train, the rest test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    pub n_train: usize,
}

/// Which examples of a shipped dataset (`[data] kind = "mnist"` or `"fashion_mnist"`) to use: the `part`,
/// then the first `per_class` examples of each class, then the first `n`. The files are stored in a seeded
/// random order, so each prefix is a fixed random subset (the same for every `seed`); `[split]` then splits
/// what is kept, as for `digits`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ShippedConfig {
    #[serde(default)]
    pub part: PartConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_class: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<usize>,
}

/// The part of a shipped dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PartConfig {
    /// The shipped training part.
    #[default]
    Train,
    /// The shipped test part.
    Test,
    /// Training then test part.
    All,
}

/// The target function of the sparse-support data (`docs/theory/support.md` §Experimental settings).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SupportTargetConfig {
    /// `f*(x) = Σ_{i<r} x_i`.
    Linear,
    /// `f*(x) = sin(Σ_{i<r} x_i)`.
    Sin,
    /// `f*(x) = Σ_{i=1}^{r} x_i^i`.
    Staircase,
}

/// Where the examples come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataConfig {
    /// `x_i ~ N(0, I_dim)`, `y_i = x_iᵀ w* + noise · ε_i` with `w* ~ N(0, I/dim)`.
    GaussianLinear {
        n: usize,
        dim: usize,
        #[serde(default)]
        noise: f64,
    },
    /// `x_i ~ N(0, I_dim)`, `y_i = 1[x_iᵀ w* + noise · ε_i > 0]`.
    GaussianLogistic {
        n: usize,
        dim: usize,
        #[serde(default)]
        noise: f64,
    },
    /// The embedded UCI optical digits: 1797 images 8 × 8 scaled to `[0, 1]`, 10 classes
    /// (`imreg_objective::data::digits`). Use `[split]` for a train/test split.
    Digits {},
    /// The shipped MNIST digits (`imreg_objective::data::ShippedDataset::Mnist`): 10,000 images 28 × 28
    /// (8,000 train / 2,000 test), pixels scaled to `[0, 1]`, 10 classes, each file checked against its
    /// SHA-256. Input shape `[1, 28, 28]` for the CNN presets. See [`ShippedConfig`].
    Mnist(ShippedConfig),
    /// The shipped class-balanced Fashion-MNIST subset (`ShippedDataset::FashionMnist`): 12,000 images
    /// 28 × 28 (10,000 train / 2,000 test), as [`DataConfig::Mnist`].
    #[serde(alias = "fashion-mnist")]
    FashionMnist(ShippedConfig),
    /// Teacher–student regression `y = f*(x) + noise·ξ`, `x ~ N(0, I)`, `f*` a tanh MLP of `widths`
    /// `[d_in, …, d_out]` (two widths: a linear teacher) (`synthetic::teacher_student_mlp`).
    TeacherStudent {
        n: usize,
        widths: Vec<usize>,
        #[serde(default)]
        noise: f64,
    },
    /// Teacher–student classification: `x ~ N(0, I_dim)`, label `argmax_c (W* x)_c`
    /// (`synthetic::teacher_student_classification`).
    TeacherStudentClassification { n: usize, dim: usize, classes: usize },
    /// Sparse-support regression (`synthetic::sparse_support`): `2n` rows, `d` inputs, the target depends on
    /// the first `r`.
    SparseSupport {
        n: usize,
        d: usize,
        r: usize,
        target: SupportTargetConfig,
        #[serde(default)]
        noise: f64,
    },
    /// Scalar-net data `x ~ N(0, 1)` normalized, `y = x + noise·η` with `Φ = 1`, `σ² = 1`
    /// (`synthetic::scalar_net_data`).
    ScalarNetData {
        n: usize,
        #[serde(default)]
        noise: f64,
    },
    /// Inputs `x` (`N × d`, or `N × …`, flattened per example) and targets `y` (`N` or `N × C`) from `.npy`
    /// files; relative paths are resolved against the config file's folder. With `classes`, `y` holds
    /// integer labels in `0..classes`.
    Npy {
        x: PathBuf,
        y: PathBuf,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        classes: Option<usize>,
    },
    /// MNIST in IDX format (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`), pixels scaled to
    /// `[0, 1]`, 10 classes; `n` keeps the first `n` examples.
    MnistIdx {
        images: PathBuf,
        labels: PathBuf,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        n: Option<usize>,
    },
    /// CIFAR-10 binary batches (`data_batch_1.bin`, …) concatenated, pixels scaled to `[0, 1]`, 10 classes;
    /// `n` keeps the first `n` examples.
    Cifar10 {
        files: Vec<PathBuf>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        n: Option<usize>,
    },
}

impl DataConfig {
    /// The `kind` string of the data source.
    pub fn kind(&self) -> &'static str {
        match self {
            DataConfig::GaussianLinear { .. } => "gaussian_linear",
            DataConfig::GaussianLogistic { .. } => "gaussian_logistic",
            DataConfig::Digits {} => "digits",
            DataConfig::Mnist(_) => "mnist",
            DataConfig::FashionMnist(_) => "fashion_mnist",
            DataConfig::TeacherStudent { .. } => "teacher_student",
            DataConfig::TeacherStudentClassification { .. } => "teacher_student_classification",
            DataConfig::SparseSupport { .. } => "sparse_support",
            DataConfig::ScalarNetData { .. } => "scalar_net_data",
            DataConfig::Npy { .. } => "npy",
            DataConfig::MnistIdx { .. } => "mnist_idx",
            DataConfig::Cifar10 { .. } => "cifar10",
        }
    }
}

/// The loss of an MLP. The factor of the MSE is explicit because it scales every Hessian and so every `2/η`
/// threshold (`docs/theory/README.md` §Conventions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossConfig {
    /// `ℓ = ½‖f − y‖²` (Cohen et al.; one-hot targets for class labels).
    HalfMse,
    /// `ℓ = ‖f − y‖²` (the EoSS code's `Σ_classes (f − y)²`).
    FullMse,
    /// `ℓ = −log softmax(f)_y` (needs class labels).
    CrossEntropy,
}

impl LossConfig {
    pub fn kind(self) -> LossKind {
        match self {
            LossConfig::HalfMse => LossKind::Mse { half: true },
            LossConfig::FullMse => LossKind::Mse { half: false },
            LossConfig::CrossEntropy => LossKind::CrossEntropy,
        }
    }
}

/// The model and its loss.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelConfig {
    /// `f(x) = wᵀx + b`, per-example loss `½ (f(x) − y)²` (½ MSE). PyTorch layout `0.weight [1, d]`,
    /// `0.bias [1]`.
    LinearRegression {
        #[serde(default = "default_true")]
        bias: bool,
    },
    /// `f(x) = wᵀx + b`, per-example loss `log(1 + e^f) − y f` with labels `y ∈ {0, 1}`.
    LogisticRegression {
        #[serde(default = "default_true")]
        bias: bool,
    },
    /// A multi-layer perceptron `Linear → act → … → Linear` with hidden widths `hidden`
    /// (`imreg_objective::models::Mlp`); inputs and outputs from the data (outputs = classes for class
    /// labels). PyTorch `nn.Sequential` layout `0.weight`, `0.bias`, `2.weight`, ….
    Mlp {
        hidden: Vec<usize>,
        activation: Activation,
        #[serde(default = "default_true")]
        bias: bool,
        loss: LossConfig,
    },
    /// Deep linear network `f(x) = W_L ⋯ W_1 x (+ biases)` with hidden widths `hidden`, ½ MSE on all target
    /// columns. PyTorch `nn.Sequential(nn.Linear, …)` layout (`0.weight`, `0.bias`, `1.weight`, …).
    DeepLinear {
        hidden: Vec<usize>,
        #[serde(default)]
        bias: bool,
    },
    /// The depth-2 scalar network `f(x) = (aᵀb) x` of width `k`, `θ = (a, b)`, ½ MSE. With `phi` and no
    /// `[data]`: the one-example loss `½(aᵀb − Φ)²`; otherwise `data` must have one input and one target
    /// column.
    ScalarNet {
        k: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phi: Option<f64>,
    },
    /// A network from a description (`imreg_objective::models::NetworkSpec`, PyTorch module names): a
    /// `preset` (`cnn-relu`, `resnet20`, …, for the data's input shape and classes), a `spec` file
    /// (`.toml`/`.json`) or an inline `[model.spec]` table. Inputs are rows of `C·H·W` features (NCHW images
    /// flattened in C order) of shape `input_shape = [C, H, W]` (or `[d]`); `loss` is one of
    /// `half_mse`, `squared_error`, `mse` (PyTorch's `MSELoss()`), `cross_entropy`, `logistic`; `batch_norm`
    /// (`train`/`eval`) overrides the description's mode.
    Network {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        preset: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        spec: Option<SpecSource>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input_shape: Option<Vec<usize>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        batch_norm: Option<BatchNormStats>,
        loss: StandardLoss,
    },
    /// A quadratic `ℓ_i(θ) = ½ θᵀA_iθ + b_iᵀθ` without `[data]`: `h = [..]` gives one example `½ Σ h_j θ_j²`;
    /// `p`, `n` give a seeded random instance (`Quadratic::random(p, n, seed)`).
    Quadratic {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        h: Option<Vec<f64>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        p: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        n: Option<usize>,
    },
}

/// Where a network's description comes from: a `.toml`/`.json` file (relative to the config's folder) or an
/// inline table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SpecSource {
    File(PathBuf),
    Inline(Box<NetworkSpec>),
}

impl ModelConfig {
    /// The `kind` string of the model.
    pub fn kind(&self) -> &'static str {
        match self {
            ModelConfig::LinearRegression { .. } => "linear_regression",
            ModelConfig::LogisticRegression { .. } => "logistic_regression",
            ModelConfig::Mlp { .. } => "mlp",
            ModelConfig::DeepLinear { .. } => "deep_linear",
            ModelConfig::ScalarNet { .. } => "scalar_net",
            ModelConfig::Quadratic { .. } => "quadratic",
            ModelConfig::Network { .. } => "network",
        }
    }

    /// Whether the model builds without a `[data]` table.
    pub fn data_free(&self) -> bool {
        matches!(
            self,
            ModelConfig::ScalarNet { phi: Some(_), .. } | ModelConfig::Quadratic { .. }
        )
    }
}

/// How `θ₀` is drawn when not loaded `from` a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitScheme {
    /// `θ₀ ~ N(0, scale² I)` (default scale 0: all zeros).
    #[default]
    Normal,
    /// PyTorch's `nn.Linear` default `U(−1/√fan_in, 1/√fan_in)` times `scale` (default 1); MLP only.
    Pytorch,
}

/// The initial parameters `θ₀`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitConfig {
    #[serde(default)]
    pub scheme: InitScheme,
    /// Scale of the scheme (`normal`: standard deviation, default 0; `pytorch`: factor, default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
    /// Load `θ₀` from a `.npy` (flat, length p) or `.safetensors` (PyTorch names) file instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<PathBuf>,
}

impl InitConfig {
    /// The scale with the scheme's default filled in.
    pub fn scale(&self) -> f64 {
        self.scale.unwrap_or(match self.scheme {
            InitScheme::Normal => 0.0,
            InitScheme::Pytorch => 1.0,
        })
    }
}

/// The optimizer. Step sizes are `lr` (η in the papers). Every optimizer runs through
/// `imreg_sgd::trajectory::run`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// Full-batch gradient descent `θ ← θ − η ∇C(θ)`.
    Gd {
        lr: f64,
        /// Torch `clip_grad_norm_` of the total (loss + penalties) gradient at this norm, before momentum
        /// and noise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clip_grad_norm: Option<f64>,
    },
    /// Minibatch SGD `θ ← θ − η ∇C_B(θ)`: batches of `batch_size` drawn with replacement (i.i.d. uniform
    /// indices) or without (random reshuffling each epoch; the last batch of an epoch may be smaller).
    Sgd {
        lr: f64,
        batch_size: usize,
        #[serde(default)]
        replacement: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clip_grad_norm: Option<f64>,
        /// Iterative gradient grafting (Novack et al.): `graft = { micro_batch = b }` steps along the
        /// direction of the (regularized, clipped) large-batch update with the norm of the gradient of its
        /// first `b` examples, the step small-batch SGD would take from the same point.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        graft: Option<GraftConfig>,
    },
    /// Momentum (PyTorch `torch.optim.SGD` convention) `v ← β v + ∇C_B(θ)` (`v₀ = g₀`), `θ ← θ − η v`, or
    /// with `nesterov`, `θ ← θ − η (g + β v)`; full batch unless `batch_size` is given.
    Momentum {
        lr: f64,
        beta: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        batch_size: Option<usize>,
        #[serde(default)]
        replacement: bool,
        #[serde(default, skip_serializing_if = "is_false")]
        nesterov: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clip_grad_norm: Option<f64>,
    },
    /// Noise-injected GD `θ ← θ − η (∇C(θ) + ξ)`, `ξ ~ N(0, σ² I)` i.i.d. per step.
    NoisyGd {
        lr: f64,
        sigma: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clip_grad_norm: Option<f64>,
    },
}

/// `optimizer.graft`: the small batch whose gradient norm the step takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraftConfig {
    /// `|M₁|`, the size of the first micro-batch of each batch (divides `batch_size`).
    pub micro_batch: usize,
}

impl OptimizerConfig {
    /// Gradient grafting, if any (SGD only).
    pub fn graft(&self) -> Option<GraftConfig> {
        match self {
            OptimizerConfig::Sgd { graft, .. } => *graft,
            _ => None,
        }
    }
    /// The step size η.
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::Gd { lr, .. }
            | OptimizerConfig::Sgd { lr, .. }
            | OptimizerConfig::Momentum { lr, .. }
            | OptimizerConfig::NoisyGd { lr, .. } => *lr,
        }
    }
    /// The clipping norm of `clip_grad_norm`, if any.
    pub fn clip_grad_norm(&self) -> Option<f64> {
        match self {
            OptimizerConfig::Gd { clip_grad_norm, .. }
            | OptimizerConfig::Sgd { clip_grad_norm, .. }
            | OptimizerConfig::Momentum { clip_grad_norm, .. }
            | OptimizerConfig::NoisyGd { clip_grad_norm, .. } => *clip_grad_norm,
        }
    }
    /// The minibatch size, `None` for full batch.
    pub fn batch_size(&self) -> Option<usize> {
        match self {
            OptimizerConfig::Gd { .. } | OptimizerConfig::NoisyGd { .. } => None,
            OptimizerConfig::Sgd { batch_size, .. } => Some(*batch_size),
            OptimizerConfig::Momentum { batch_size, .. } => *batch_size,
        }
    }
    /// Whether minibatches are drawn with replacement.
    pub fn replacement(&self) -> bool {
        match self {
            OptimizerConfig::Gd { .. } | OptimizerConfig::NoisyGd { .. } => false,
            OptimizerConfig::Sgd { replacement, .. } | OptimizerConfig::Momentum { replacement, .. } => {
                *replacement
            }
        }
    }
}

/// When a tracked metric is recorded: `true` (every `track.every` steps), `false` (never), or a number of
/// steps (its own period). Step 0 and the last step always record every enabled metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Every {
    Flag(bool),
    Steps(usize),
}

impl Every {
    /// The period in steps (`base` for `true`), `None` when off.
    pub fn period(self, base: usize) -> Option<usize> {
        match self {
            Every::Flag(true) => Some(base),
            Every::Flag(false) => None,
            Every::Steps(k) => Some(k),
        }
    }
    fn on() -> Self {
        Every::Flag(true)
    }
    fn off() -> Self {
        Every::Flag(false)
    }
    fn is_off(&self) -> bool {
        self.period(1).is_none()
    }
}

impl Default for Every {
    fn default() -> Self {
        Every::off()
    }
}

/// What to record and how often, always on the full (training) batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackConfig {
    /// The period of every metric given as `true`.
    #[serde(default = "default_one")]
    pub every: usize,
    /// `C(θ)` (and `test_loss` with `[split]`).
    #[serde(default = "Every::on")]
    pub loss: Every,
    /// `‖∇C(θ)‖`.
    #[serde(default = "Every::on")]
    pub grad_norm: Every,
    /// `λ_max(∇²C(θ))` (dense for p ≤ 400, Lanczos above, each evaluation from the same seeded start);
    /// plotted against `2/η`.
    #[serde(default)]
    pub sharpness: Every,
    /// The `top_k` largest and `bottom_k` smallest Hessian eigenvalues by Lanczos (columns `lambda_1 …`,
    /// `lambda_min_1 …`), warm-started from the previous evaluation's Ritz vectors unless `warm_start =
    /// false`, with the largest relative residual and eigenvalue bounds, the steps and the converged flag of
    /// each evaluation (`eigen_residual`, `eigen_value_bound`, `eigen_iterations`, `eigen_converged`).
    #[serde(default, skip_serializing_if = "Every::is_off")]
    pub eigenvalues: Every,
    /// `Tr ∇²C(θ)`: exact (all `p` unit vectors) for p ≤ 400, else Hutch++ with its standard error
    /// (`hessian_trace_se`, 0 when exact).
    #[serde(default, skip_serializing_if = "Every::is_off")]
    pub hessian_trace: Every,
    /// Classification accuracy (and `test_accuracy` with `[split]`); classifiers only.
    #[serde(default)]
    pub accuracy: Every,
    /// Batch sharpness in both variants: `batch_sharpness = E_B[g_BᵀH_Bg_B/‖g_B‖²]` and
    /// `batch_sharpness_inside = E_B[g_BᵀH_Bg_B]/E_B[‖g_B‖²]` over size-`batch_size` batches.
    #[serde(default)]
    pub batch_sharpness: Every,
    /// MiniBS `E_B[λ_max(H_B)]` over size-`batch_size` batches.
    #[serde(default)]
    pub mini_bs: Every,
    /// `λ_K¹`, the top eigenvalue of the gradient covariance `K = (1/N) Σ (g_i − ḡ)(g_i − ḡ)ᵀ`.
    #[serde(default)]
    pub lambda_k1: Every,
    /// `Tr K`.
    #[serde(default)]
    pub trace_k: Every,
    /// `Tr F` of the empirical Fisher `(1/N) Σ g_i g_iᵀ`.
    #[serde(default)]
    pub trace_f: Every,
    /// The scalar net's imbalance `‖a‖² − ‖b‖²` (conserved by gradient flow).
    #[serde(default)]
    pub imbalance: Every,
    /// A micro-batch size `m`: records `micro_grad_norm_sq = mean_j ‖∇L_{M_j}(θ_t)‖²` over the consecutive
    /// size-`m` micro-batches `M_j` of step `t`'s minibatch (the quantity GN penalizes, Novack et al.'s
    /// Figure 1) every `track.every` steps; `m` divides the batch size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub micro_grad_norm: Option<usize>,
    /// Batch size of `batch_sharpness` and `mini_bs` (default: the optimizer's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Most Monte Carlo batches per batch-sharpness / MiniBS evaluation (exact enumeration when
    /// `C(N, b) ≤ 2000`).
    #[serde(default = "default_max_batches")]
    pub max_batches: usize,
    /// Eigenvalues of `eigenvalues`: the `top_k` largest (1 ..= [`MAX_TRACKED_K`]).
    #[serde(default = "default_one", skip_serializing_if = "is_one")]
    pub top_k: usize,
    /// … and the `bottom_k` smallest (0 ..= [`MAX_TRACKED_K`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bottom_k: usize,
    /// Start each `eigenvalues` evaluation from the previous one's Ritz vectors (default `true`; `false`
    /// starts every evaluation from the same seeded Gaussian vector). `sharpness` is never warm-started.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub warm_start: bool,
    /// Lanczos tolerance of `eigenvalues`: stop once every wanted Ritz pair has residual bound
    /// `‖Hy − θy‖ ≤ tol · max|θ|` (default `1e-8`, that of `sharpness`).
    #[serde(
        default = "default_lanczos_tol",
        skip_serializing_if = "is_default_lanczos_tol"
    )]
    pub lanczos_tol: f64,
    /// What `lanczos_tol` bounds: `"residual"` (default) the residual bound `‖Hy − θy‖`, or `"eigenvalue"`
    /// the eigenvalue bound `min(r, r²/δ̂)` with the gap `δ̂` estimated from the Ritz values
    /// ([`imreg_spectra::StopRule`]), met after fewer steps; the column `eigen_value_bound` reports it either
    /// way.
    #[serde(default, skip_serializing_if = "LanczosStop::is_residual")]
    pub lanczos_stop: LanczosStop,
    /// Most Lanczos steps per `eigenvalues` evaluation (default 300, capped at `p`).
    #[serde(
        default = "default_lanczos_max_iter",
        skip_serializing_if = "is_default_lanczos_max_iter"
    )]
    pub lanczos_max_iter: usize,
    /// A fixed measurement subset (Cohen et al.'s abridged set): `sharpness`, `eigenvalues` and
    /// `hessian_trace` use the Hessian of these examples only, the same ones at every step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<SubsetConfig>,
    /// `[[track.schedule]]`: quantities of `imreg analyze` measured every `every` steps, each written as a
    /// series with its accuracy (`crate::schedule`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedule: Vec<ScheduleConfig>,
}

/// One `[[track.schedule]]` entry: the `quantities` of `imreg analyze` (by its names) at steps `0, every,
/// 2·every, …` and the final iterate, computed as `analyze` computes them — every knob has the name (with
/// `_` for `-`) and the default of `analyze`'s flag, so `imreg analyze --config C --params θ_t.npy
/// --quantities …` with the same knobs gives the same numbers. With `subset` they are measured on that
/// fixed subset of the training examples (drawn as `[track] subset`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    pub quantities: Vec<String>,
    #[serde(default = "default_one")]
    pub every: usize,
    #[serde(default = "default_three")]
    pub top_k: usize,
    #[serde(default = "default_three")]
    pub bottom_k: usize,
    #[serde(default = "default_dense_max_p")]
    pub exact_trace_max_p: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    #[serde(default = "default_max_exact_batches")]
    pub max_exact_batches: u64,
    #[serde(default = "default_mc_batches")]
    pub mc_batches: usize,
    #[serde(default = "default_mc_rel_se")]
    pub mc_rel_se: f64,
    #[serde(default = "default_dense_max_p")]
    pub dense_max_p: usize,
    #[serde(default = "default_lanczos_max_iter")]
    pub lanczos_max_iter: usize,
    #[serde(default = "default_lanczos_tol")]
    pub lanczos_tol: f64,
    #[serde(default)]
    pub lanczos_stop: LanczosStop,
    #[serde(default = "default_trace_matvecs")]
    pub trace_matvecs: usize,
    #[serde(default = "default_slq_probes")]
    pub slq_probes: usize,
    #[serde(default = "default_slq_steps")]
    pub slq_steps: usize,
    #[serde(default = "default_density_points")]
    pub density_points: usize,
    #[serde(default = "default_density_sigma")]
    pub density_sigma: f64,
    /// Seed of the estimators (default 0, `analyze`'s `--seed`); the same at every scheduled step.
    #[serde(default)]
    pub seed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<SubsetConfig>,
}

fn default_three() -> usize {
    3
}
fn default_dense_max_p() -> usize {
    SolverOptions::default().dense_max_p
}
fn default_max_exact_batches() -> u64 {
    BatchEstimation::default().max_exact
}
fn default_mc_batches() -> usize {
    BatchEstimation::default().mc_batches
}
fn default_mc_rel_se() -> f64 {
    BatchEstimation::default().mc_rel_se
}
fn default_trace_matvecs() -> usize {
    SolverOptions::default().trace_matvecs
}
fn default_slq_probes() -> usize {
    SolverOptions::default().slq_probes
}
fn default_slq_steps() -> usize {
    SolverOptions::default().slq_steps
}
fn default_density_points() -> usize {
    SolverOptions::default().density_points
}
fn default_density_sigma() -> f64 {
    SolverOptions::default().density_sigma
}

impl ScheduleConfig {
    /// The measurement plan of this entry; a bad knob is named by its key.
    pub fn plan(&self) -> std::result::Result<Plan, Fault> {
        let quantities =
            Quantities::parse(&self.quantities).map_err(|e| Fault::new("quantities", reason_of(e)))?;
        for (name, q) in QUANTITY_NAMES {
            if quantities.has(q) && !q.is_scalar() {
                return Err(Fault::new(
                    "quantities",
                    format!(
                        "{name} is a vector at each step, not a series: compute it with `imreg analyze` on \
                         a saved θ (e.g. theta_final.npy)"
                    ),
                ));
            }
        }
        let plan = Plan {
            quantities,
            top_k: self.top_k,
            bottom_k: self.bottom_k,
            exact_trace_max_p: self.exact_trace_max_p,
            batch_size: self.batch_size,
            estimation: BatchEstimation {
                max_exact: self.max_exact_batches,
                mc_batches: self.mc_batches,
                mc_rel_se: self.mc_rel_se,
            },
            solver: SolverOptions {
                dense_max_p: self.dense_max_p,
                lanczos_max_iter: self.lanczos_max_iter,
                lanczos_tol: self.lanczos_tol,
                lanczos_stop: self.lanczos_stop,
                trace_matvecs: self.trace_matvecs,
                slq_probes: self.slq_probes,
                slq_steps: self.slq_steps,
                density_points: self.density_points,
                density_sigma: self.density_sigma,
                ..SolverOptions::default()
            },
            seed: self.seed,
        };
        plan.solver.check()?;
        plan.estimation.check()?;
        Ok(plan)
    }
}

/// The reason of an input error (its field is the caller's to name).
fn reason_of(e: CliError) -> String {
    match e {
        CliError::Input { reason, .. } => reason,
        e => e.to_string(),
    }
}

/// `[track] lanczos_stop`: the bound `lanczos_tol` applies to ([`imreg_spectra::StopRule`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LanczosStop {
    /// Every wanted residual bound `β_m|e_mᵀs_i| ≤ tol · max|θ|`.
    #[default]
    Residual,
    /// Every wanted eigenvalue bound `min(r_i, r_i²/δ̂_i) ≤ tol · max|θ|` (gap estimated from Ritz values).
    Eigenvalue,
}

impl LanczosStop {
    fn is_residual(&self) -> bool {
        *self == LanczosStop::Residual
    }
}

impl From<LanczosStop> for imreg_spectra::StopRule {
    fn from(s: LanczosStop) -> Self {
        match s {
            LanczosStop::Residual => imreg_spectra::StopRule::Residual,
            LanczosStop::Eigenvalue => imreg_spectra::StopRule::Eigenvalue,
        }
    }
}

/// Most eigenvalues `[track] eigenvalues` tracks at each end of the spectrum.
pub const MAX_TRACKED_K: usize = 10;

fn is_one(k: &usize) -> bool {
    *k == 1
}
fn is_zero(k: &usize) -> bool {
    *k == 0
}
fn is_true(b: &bool) -> bool {
    *b
}
fn default_lanczos_tol() -> f64 {
    1e-8
}
fn is_default_lanczos_tol(t: &f64) -> bool {
    *t == default_lanczos_tol()
}
fn default_lanczos_max_iter() -> usize {
    300
}
fn is_default_lanczos_max_iter(m: &usize) -> bool {
    *m == default_lanczos_max_iter()
}

/// `[track] subset = { n = 1000, seed = 0 }`: `n` training examples drawn without replacement by a ChaCha
/// stream of `seed` (its own seed, so the subset does not change with the run's `seed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubsetConfig {
    pub n: usize,
    #[serde(default)]
    pub seed: u64,
}

impl Default for TrackConfig {
    fn default() -> Self {
        TrackConfig {
            every: 1,
            loss: Every::on(),
            grad_norm: Every::on(),
            sharpness: Every::off(),
            accuracy: Every::off(),
            batch_sharpness: Every::off(),
            mini_bs: Every::off(),
            lambda_k1: Every::off(),
            trace_k: Every::off(),
            trace_f: Every::off(),
            imbalance: Every::off(),
            micro_grad_norm: None,
            batch_size: None,
            max_batches: default_max_batches(),
            eigenvalues: Every::off(),
            hessian_trace: Every::off(),
            top_k: 1,
            bottom_k: 0,
            warm_start: true,
            lanczos_tol: default_lanczos_tol(),
            lanczos_stop: LanczosStop::Residual,
            lanczos_max_iter: default_lanczos_max_iter(),
            subset: None,
            schedule: Vec::new(),
        }
    }
}

impl TrackConfig {
    /// Every metric switch with its config key, in column order.
    pub fn switches(&self) -> [(&'static str, Every); 12] {
        [
            ("loss", self.loss),
            ("grad_norm", self.grad_norm),
            ("sharpness", self.sharpness),
            ("eigenvalues", self.eigenvalues),
            ("hessian_trace", self.hessian_trace),
            ("accuracy", self.accuracy),
            ("batch_sharpness", self.batch_sharpness),
            ("mini_bs", self.mini_bs),
            ("lambda_k1", self.lambda_k1),
            ("trace_k", self.trace_k),
            ("trace_f", self.trace_f),
            ("imbalance", self.imbalance),
        ]
    }
}

impl TrackConfig {
    /// Checks every `[[track.schedule]]` entry (its knobs as `analyze` checks its flags), that no quantity
    /// is scheduled twice, and that the series of a run of `steps` steps fit in memory. The data-dependent
    /// bounds (`batch_size ≤ N`, `subset.n ≤ N`) are checked when the model is built.
    fn validate_schedule(&self, file: &Path, steps: usize) -> Result<()> {
        let mut seen: Vec<(crate::quantities::Quantity, usize)> = Vec::new();
        for (i, s) in self.schedule.iter().enumerate() {
            let field = |knob: &str| format!("track.schedule[{i}].{knob}");
            let bad = |f: Fault| CliError::input(file, field(f.knob), f.reason);
            if s.every == 0 {
                return Err(bad(Fault::new("every", "must be at least 1")));
            }
            if s.subset.is_some_and(|sub| sub.n == 0) {
                return Err(bad(Fault::new("subset", "subset.n must be at least 1")));
            }
            let plan = s.plan().map_err(bad)?;
            for (name, q) in QUANTITY_NAMES {
                if !plan.quantities.has(q) {
                    continue;
                }
                if let Some((_, j)) = seen.iter().find(|(r, _)| *r == q) {
                    return Err(bad(Fault::new(
                        "quantities",
                        format!("{name} is already scheduled by track.schedule[{j}]"),
                    )));
                }
                seen.push((q, i));
            }
            // The series are held until the run ends: a few numbers per quantity and evaluation, and the
            // density's grid and nodes.
            let evaluations = (steps / s.every) as u64 + 2;
            let density = if plan.quantities.has(crate::quantities::Quantity::Density) {
                2 * s.density_points as u64 + 2 * (s.slq_probes as u64).saturating_mul(s.slq_steps as u64)
            } else {
                0
            };
            let per = 8 * (density + 8 * (s.top_k + s.bottom_k + 8) as u64);
            crate::limits::at_most(
                file,
                &field("every"),
                "bytes of the scheduled series held until the run ends",
                evaluations.saturating_mul(per),
                crate::limits::MAX_MEMORY_BYTES,
            )?;
        }
        Ok(())
    }

    /// Checks the eigenvalue-tracking keys and the subset (the data-dependent bounds `k ≤ p` and `n ≤ N`
    /// are checked when the model is built).
    fn validate_eigen(&self, file: &Path) -> Result<()> {
        let bad = |field: &str, reason: String| Err(CliError::input(file, field, reason));
        if !(1..=MAX_TRACKED_K).contains(&self.top_k) {
            return bad(
                "track.top_k",
                format!("must lie in 1..={MAX_TRACKED_K}, got {}", self.top_k),
            );
        }
        if self.bottom_k > MAX_TRACKED_K {
            return bad(
                "track.bottom_k",
                format!("must lie in 0..={MAX_TRACKED_K}, got {}", self.bottom_k),
            );
        }
        if !(self.lanczos_tol.is_finite() && self.lanczos_tol >= 0.0) {
            return bad(
                "track.lanczos_tol",
                format!("must be a finite number ≥ 0, got {}", self.lanczos_tol),
            );
        }
        if !(1..=crate::quantities::MAX_KNOB).contains(&self.lanczos_max_iter) {
            return bad(
                "track.lanczos_max_iter",
                format!(
                    "must lie in 1..={}, got {}",
                    crate::quantities::MAX_KNOB,
                    self.lanczos_max_iter
                ),
            );
        }
        if self.lanczos_max_iter < self.top_k + self.bottom_k {
            return bad(
                "track.lanczos_max_iter",
                format!(
                    "{} is smaller than top_k + bottom_k = {}",
                    self.lanczos_max_iter,
                    self.top_k + self.bottom_k
                ),
            );
        }
        if let Some(s) = self.subset {
            if s.n == 0 {
                return bad("track.subset.n", "must be at least 1".into());
            }
            let hessian = [self.sharpness, self.eigenvalues, self.hessian_trace];
            if hessian.iter().all(|e| e.is_off()) {
                return bad(
                    "track.subset",
                    "applies to sharpness, eigenvalues and hessian_trace; none of them is tracked".into(),
                );
            }
        }
        Ok(())
    }
}

impl ExperimentConfig {
    /// Parses a config from TOML text; `file` is used in error messages.
    pub fn from_toml_str(text: &str, file: &Path) -> Result<Self> {
        toml::from_str(text).map_err(|e| toml_error(&e, text, file))
    }

    /// Reads and parses a config file, resolving relative data/init paths against its folder.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::input(path, "<file>", format!("cannot read config: {e}")))?;
        let mut cfg = Self::from_toml_str(&text, path)?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        cfg.resolve_paths(&base);
        Ok(cfg)
    }

    /// Makes relative file paths relative to `base` (the config's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        match &mut self.data {
            Some(DataConfig::Npy { x, y, .. }) => {
                fix(x);
                fix(y);
            }
            Some(DataConfig::MnistIdx { images, labels, .. }) => {
                fix(images);
                fix(labels);
            }
            Some(DataConfig::Cifar10 { files, .. }) => files.iter_mut().for_each(fix),
            _ => {}
        }
        if let ModelConfig::Network {
            spec: Some(SpecSource::File(f)),
            ..
        } = &mut self.model
        {
            fix(f);
        }
        if let Some(f) = &mut self.init.from {
            fix(f);
        }
    }

    /// The resolved config as TOML (defaults filled in).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| CliError::Failed(format!("serializing the config: {e}")))
    }

    /// Checks value ranges that do not need the data (`file` for error messages). Data-dependent checks
    /// (batch size vs N, shapes, labels) happen when the data is built.
    pub fn validate(&self, file: &Path) -> Result<()> {
        let bad = |field: &str, reason: String| Err(CliError::input(file, field, reason));
        let lr = self.optimizer.lr();
        if !(lr.is_finite() && lr > 0.0) {
            return bad(
                "optimizer.lr",
                format!("must be a positive finite number, got {lr}"),
            );
        }
        if let Some(b) = self.optimizer.batch_size() {
            if b == 0 {
                return bad("optimizer.batch_size", "must be at least 1".into());
            }
        }
        match self.optimizer {
            OptimizerConfig::Momentum { beta, .. } if !(0.0..1.0).contains(&beta) => {
                return bad("optimizer.beta", format!("must lie in [0, 1), got {beta}"));
            }
            OptimizerConfig::NoisyGd { sigma, .. } if !(sigma.is_finite() && sigma >= 0.0) => {
                return bad(
                    "optimizer.sigma",
                    format!("must be a non-negative finite number, got {sigma}"),
                );
            }
            _ => {}
        }
        if let Some(c) = self.optimizer.clip_grad_norm() {
            if !(c.is_finite() && c > 0.0) {
                return bad(
                    "optimizer.clip_grad_norm",
                    format!("must be a positive finite number, got {c}"),
                );
            }
        }
        for (i, r) in self.regularizers.iter().enumerate() {
            let (key, c) = r.coefficient();
            if !(c.is_finite() && c >= 0.0) {
                return bad(
                    &format!("regularizer[{i}].{key}"),
                    format!("must be a non-negative finite number, got {c}"),
                );
            }
            if let (Some(m), Some(b)) = (r.micro_batch(), self.optimizer.batch_size()) {
                if m == 0 || !b.is_multiple_of(m) {
                    return bad(
                        &format!("regularizer[{i}].micro_batch"),
                        format!("must be at least 1 and divide optimizer.batch_size = {b}, got {m}"),
                    );
                }
            }
        }
        for (field, m) in [
            (
                "optimizer.graft.micro_batch",
                self.optimizer.graft().map(|g| g.micro_batch),
            ),
            ("track.micro_grad_norm", self.track.micro_grad_norm),
        ] {
            match (m, self.optimizer.batch_size()) {
                (Some(m), Some(b)) if m == 0 || !b.is_multiple_of(m) => {
                    return bad(
                        field,
                        format!("must be at least 1 and divide optimizer.batch_size = {b}, got {m}"),
                    );
                }
                (Some(0), None) => return bad(field, "must be at least 1".into()),
                _ => {}
            }
        }
        if self.track.every == 0 {
            return bad("track.every", "must be at least 1".into());
        }
        for (key, e) in self.track.switches() {
            if e == Every::Steps(0) {
                return bad(
                    &format!("track.{key}"),
                    "a period must be at least 1 (use false to switch it off)".into(),
                );
            }
        }
        if self.track.max_batches == 0 {
            return bad("track.max_batches", "must be at least 1".into());
        }
        if self.track.batch_size == Some(0) {
            return bad("track.batch_size", "must be at least 1".into());
        }
        self.track.validate_eigen(file)?;
        self.track.validate_schedule(file, self.steps)?;
        let needs_b =
            self.track.batch_sharpness.period(1).is_some() || self.track.mini_bs.period(1).is_some();
        if needs_b && self.track.batch_size.or(self.optimizer.batch_size()).is_none() {
            return bad(
                "track.batch_size",
                "batch_sharpness and mini_bs need a batch size (full-batch optimizer: set track.batch_size)"
                    .into(),
            );
        }
        let scale = self.init.scale();
        if !(scale.is_finite() && scale >= 0.0) {
            return bad(
                "init.scale",
                format!("must be a non-negative finite number, got {scale}"),
            );
        }
        if self.init.scheme == InitScheme::Pytorch
            && !matches!(self.model, ModelConfig::Mlp { .. } | ModelConfig::Network { .. })
        {
            return bad(
                "init.scheme",
                format!(
                    "\"pytorch\" needs model mlp or network, got {}",
                    self.model.kind()
                ),
            );
        }
        let positive = |field: &str, v: usize| -> Result<()> {
            if v == 0 {
                return Err(CliError::input(file, field, "must be at least 1"));
            }
            Ok(())
        };
        let noise_ok = |noise: f64| -> Result<()> {
            if !(noise.is_finite() && noise >= 0.0) {
                return Err(CliError::input(
                    file,
                    "data.noise",
                    format!("must be a non-negative finite number, got {noise}"),
                ));
            }
            Ok(())
        };
        match &self.data {
            Some(
                DataConfig::GaussianLinear { n, dim, noise } | DataConfig::GaussianLogistic { n, dim, noise },
            ) => {
                positive("data.n", *n)?;
                positive("data.dim", *dim)?;
                noise_ok(*noise)?;
            }
            Some(DataConfig::TeacherStudent { n, widths, noise }) => {
                positive("data.n", *n)?;
                if widths.len() < 2 || widths.contains(&0) {
                    return bad(
                        "data.widths",
                        format!("need [d_in, …, d_out] with every width ≥ 1, got {widths:?}"),
                    );
                }
                noise_ok(*noise)?;
            }
            Some(DataConfig::TeacherStudentClassification { n, dim, classes }) => {
                positive("data.n", *n)?;
                positive("data.dim", *dim)?;
                if *classes < 2 {
                    return bad("data.classes", format!("must be at least 2, got {classes}"));
                }
            }
            Some(DataConfig::SparseSupport { n, d, r, noise, .. }) => {
                positive("data.n", *n)?;
                positive("data.r", *r)?;
                if r > d {
                    return bad("data.r", format!("support size {r} exceeds d = {d}"));
                }
                noise_ok(*noise)?;
            }
            Some(DataConfig::ScalarNetData { n, noise }) => {
                if *n < 2 {
                    return bad("data.n", format!("needs at least 2 samples, got {n}"));
                }
                noise_ok(*noise)?;
            }
            Some(DataConfig::Npy { classes, .. }) => {
                if *classes == Some(0) {
                    return bad("data.classes", "must be at least 1".into());
                }
            }
            Some(DataConfig::MnistIdx { n, .. } | DataConfig::Cifar10 { n, .. }) => {
                if *n == Some(0) {
                    return bad("data.n", "must be at least 1".into());
                }
                if let Some(DataConfig::Cifar10 { files, .. }) = &self.data {
                    if files.is_empty() {
                        return bad("data.files", "list at least one CIFAR-10 batch file".into());
                    }
                }
            }
            Some(DataConfig::Mnist(s) | DataConfig::FashionMnist(s)) => {
                if s.per_class == Some(0) {
                    return bad("data.per_class", "must be at least 1".into());
                }
                if s.n == Some(0) {
                    return bad("data.n", "must be at least 1".into());
                }
            }
            Some(DataConfig::Digits {}) => {}
            None if self.model.data_free() => {}
            None => {
                return bad(
                    "data",
                    format!("missing [data] table (model {} needs data)", self.model.kind()),
                )
            }
        }
        if self.data.is_some() && self.model.data_free() {
            let field = match self.model {
                ModelConfig::ScalarNet { .. } => "model.phi",
                _ => "data",
            };
            return bad(
                field,
                format!("model {} takes no [data] table here", self.model.kind()),
            );
        }
        match &self.model {
            ModelConfig::ScalarNet { k: 0, .. } => {
                return bad("model.k", "the width must be at least 1".into())
            }
            ModelConfig::DeepLinear { hidden, .. } | ModelConfig::Mlp { hidden, .. }
                if hidden.contains(&0) =>
            {
                return bad("model.hidden", "every hidden width must be at least 1".into())
            }
            ModelConfig::Network { preset, spec, .. } if preset.is_some() == spec.is_some() => {
                return bad(
                    "model.preset",
                    "give exactly one of preset = \"NAME\" and spec = \"FILE\" (or a [model.spec] table)"
                        .into(),
                )
            }
            ModelConfig::Quadratic { h, p, n } => match (h, p, n) {
                (Some(h), None, None) if !h.is_empty() => {}
                (Some(_), None, None) => return bad("model.h", "must not be empty".into()),
                (None, Some(p), Some(n)) if *p > 0 && *n > 0 => {}
                (None, Some(_), Some(_)) => return bad("model.p", "p and n must be at least 1".into()),
                _ => {
                    return bad(
                        "model.h",
                        "give either h = [..] (a diagonal) or both p and n (a random instance)".into(),
                    )
                }
            },
            _ => {}
        }
        if let Some(s) = &self.split {
            if s.n_train == 0 {
                return bad("split.n_train", "must be at least 1".into());
            }
            if self.data.is_none() {
                return bad("split", "needs a [data] table".into());
            }
        }
        if self.track.imbalance.period(1).is_some() && !matches!(self.model, ModelConfig::ScalarNet { .. }) {
            return bad(
                "track.imbalance",
                format!("‖a‖² − ‖b‖² needs model scalar_net, got {}", self.model.kind()),
            );
        }
        crate::limits::check_config(self, file)
    }
}

pub fn toml_error(e: &toml::de::Error, text: &str, file: &Path) -> CliError {
    let msg = e.message().trim().to_string();
    let span = e.span();
    let field = match (span.clone(), backticked(&msg)) {
        // Missing fields and unknown keys inside buffered (tagged) tables are reported at the table: name
        // the table the span starts in, then the key from the message.
        (Some(s), Some(key)) if msg.starts_with("unknown field") || msg.starts_with("missing field") => {
            match table_path_at(text, s.start) {
                t if t.is_empty() || t == key || t.ends_with(&format!(".{key}")) => {
                    if t.is_empty() {
                        key.to_string()
                    } else {
                        t
                    }
                }
                t => format!("{t}.{key}"),
            }
        }
        (None, Some(key)) if msg.starts_with("unknown field") || msg.starts_with("missing field") => {
            key.to_string()
        }
        // A wrong type or value inside a buffered table is also reported at the table: find the one key of
        // that table whose value is the literal the message quotes.
        (Some(s), _) if is_header(text, s.start) => {
            offending_key(text, s.clone(), &msg).unwrap_or_else(|| key_path_at(text, s.start))
        }
        (Some(s), _) => key_path_at(text, s.start),
        (None, _) => "<document>".to_string(),
    };
    let line = span.map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let reason = match line {
        Some(l) => format!("{msg} (line {l})"),
        None => msg,
    };
    CliError::input(file, field, reason)
}

/// The line of `text` containing byte `pos`.
fn line_at(text: &str, pos: usize) -> (usize, &str) {
    let pos = pos.min(text.len());
    let start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
    (start, text[start..].lines().next().unwrap_or(""))
}

fn header(line: &str) -> Option<String> {
    line.trim()
        .strip_prefix('[')
        .and_then(|r| r.split(']').next())
        .map(|t| t.trim_matches('[').trim().to_string())
}

fn is_header(text: &str, pos: usize) -> bool {
    header(line_at(text, pos).1).is_some()
}

/// The dotted path of the table containing byte `pos` (empty at the top level).
fn table_path_at(text: &str, pos: usize) -> String {
    let (start, line) = line_at(text, pos);
    header(line)
        .or_else(|| text[..start].lines().rev().find_map(header))
        .unwrap_or_default()
}

/// The key of the table spanning `span` whose value is the literal quoted in a serde type/value message
/// (`invalid type: string "six", expected usize`, `invalid value: integer `-1`, …`), if exactly one is.
fn offending_key(text: &str, span: std::ops::Range<usize>, msg: &str) -> Option<String> {
    let literal = match msg.find("string \"") {
        Some(i) => {
            let rest = &msg[i + 7..];
            let end = rest[1..].find('"')? + 2;
            rest[..end].to_string()
        }
        None => backticked(msg)?.to_string(),
    };
    let table = table_path_at(text, span.start);
    let body = &text[span.start.min(text.len())..span.end.min(text.len())];
    let keys: Vec<String> = body
        .lines()
        .skip(1)
        .take_while(|l| header(l).is_none())
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            let v = v.split('#').next().unwrap_or("").trim();
            (v == literal).then(|| k.trim().trim_matches('"').to_string())
        })
        .collect();
    match keys.as_slice() {
        [k] if table.is_empty() => Some(k.clone()),
        [k] => Some(format!("{table}.{k}")),
        _ => None,
    }
}

fn backticked(msg: &str) -> Option<&str> {
    let start = msg.find('`')? + 1;
    let len = msg[start..].find('`')?;
    Some(&msg[start..start + len])
}

/// The dotted key path (`optimizer.lr`) of the line containing byte `pos`: the nearest `[table]` header
/// above it plus the key on that line (or just the table, for a header line).
pub fn key_path_at(text: &str, pos: usize) -> String {
    let (_, line) = line_at(text, pos);
    if let Some(h) = header(line) {
        return h;
    }
    let table = table_path_at(text, pos);
    let key = line
        .trim()
        .split('=')
        .next()
        .unwrap_or("")
        .trim()
        .trim_matches('"')
        .to_string();
    match (table.is_empty(), key.is_empty()) {
        (false, false) => format!("{table}.{key}"),
        (false, true) => table,
        (true, _) => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
seed = 3
steps = 10
[data]
kind = "gaussian_linear"
n = 16
dim = 3
[model]
kind = "linear_regression"
[optimizer]
kind = "sgd"
lr = 0.1
batch_size = 4
"#;

    fn err(text: &str) -> (String, String) {
        match ExperimentConfig::from_toml_str(text, Path::new("c.toml")) {
            Err(CliError::Input { field, reason, .. }) => (field, reason),
            other => panic!("expected an input error, got {other:?}"),
        }
    }

    #[test]
    fn good_config_parses_with_defaults() {
        let c = ExperimentConfig::from_toml_str(GOOD, Path::new("c.toml")).unwrap();
        assert_eq!(c.seed, 3);
        assert_eq!(
            c.optimizer,
            OptimizerConfig::Sgd {
                lr: 0.1,
                batch_size: 4,
                replacement: false,
                clip_grad_norm: None,
                graft: None,
            }
        );
        assert_eq!(c.track, TrackConfig::default());
        // The resolved config round-trips through TOML.
        let again = ExperimentConfig::from_toml_str(&c.to_toml().unwrap(), Path::new("r.toml")).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn unknown_key_is_named() {
        let (field, reason) = err(&GOOD.replace("batch_size = 4", "batch_size = 4\nbatchsize = 4"));
        assert!(field.ends_with("batchsize"), "{field}: {reason}");
        assert!(reason.contains("unknown field"), "{reason}");
        let (field, _) = err(&GOOD.replace("seed = 3", "seed = 3\nsede = 1"));
        assert_eq!(field, "sede");
        let (field, _) = err(&GOOD.replace("[model]", "[track]\neverry = 2\n[model]"));
        assert!(field.ends_with("everry"), "{field}");
    }

    #[test]
    fn wrong_type_is_named() {
        let (field, reason) = err(&GOOD.replace("lr = 0.1", "lr = \"fast\""));
        assert_eq!(field, "optimizer.lr", "{reason}");
        assert!(reason.contains("invalid type"), "{reason}");
        let (field, reason) = err(&GOOD.replace("steps = 10", "steps = -1"));
        assert_eq!(field, "steps", "{reason}");
    }

    #[test]
    fn missing_field_and_bad_kind_are_named() {
        let (field, reason) = err(&GOOD.replace("lr = 0.1\n", ""));
        assert!(field.ends_with("lr"), "{field}: {reason}");
        let (field, reason) = err(&GOOD.replace("kind = \"sgd\"", "kind = \"adam\""));
        assert!(field.starts_with("optimizer"), "{field}: {reason}");
        assert!(reason.contains("adam"), "{reason}");
    }

    #[test]
    fn key_paths() {
        let t = "a = 1\n[x]\nb = 2\n[[y.z]]\nc = 3\n";
        assert_eq!(key_path_at(t, 0), "a");
        assert_eq!(key_path_at(t, t.find("b =").unwrap()), "x.b");
        assert_eq!(key_path_at(t, t.find("c =").unwrap()), "y.z.c");
        assert_eq!(key_path_at(t, t.find("[x]").unwrap()), "x");
    }
}
