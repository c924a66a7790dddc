//! Cohen et al.'s CNNs on a class-balanced subset of the shipped MNIST digits: the problem of the edge of
//! stability (and stochastic stability) checks on convolutional networks.
//!
//! [`MnistCnn::build`] takes the first `per_class` digits of every class of the shipped MNIST training part
//! (`imreg_objective::data::ShippedDataset::Mnist`, `Part::Train`, checksummed at load; the part is stored in a
//! seeded random order, so this is a fixed, seeded, class-balanced subset of `N = 10 · per_class` images),
//! optionally averages `s × s` pixel blocks (`downsample = s`, giving `⌊28/s⌋ × ⌊28/s⌋` images), and
//! standardizes every pixel with the **global** mean and standard deviation of all 8 000 training images at
//! that resolution (the usual MNIST normalization; Cohen et al. standardize CIFAR-10 with statistics of the
//! full training set, and a per-pixel standardization would blow up MNIST's nearly constant border pixels).
//!
//! The network is a preset of `imreg_objective::models::presets` (`cnn-relu`, `cnn-tanh`, `cnn-elu`: 2 ×
//! (conv 3×3 width 32 padding 1, act, max-pool 2), flatten, linear) on `[1, H, W]` with 10 outputs, and the
//! loss a [`StandardLoss`]: [`StandardLoss::HalfMse`] is Cohen et al.'s `(1/N) Σ_i ½‖f(x_i) − e_{y_i}‖²` on
//! one-hot targets, [`StandardLoss::CrossEntropy`] the mean softmax cross-entropy. The parameters start at
//! PyTorch's default initialization (`nn.Conv2d`/`nn.Linear`: weight and bias `U(−1/√fan_in, 1/√fan_in)`,
//! `fan_in = in_channels · k_h · k_w` or `in_features`), times `init_scale`, from the ChaCha stream
//! `rng::stream(init_seed, 0)`.
//!
//! ```no_run
//! use imreg_eos::mnist_cnn::MnistCnn;
//! use imreg_objective::models::StandardLoss;
//! use imreg_objective::Objective;
//! // cnn-relu on 1 000 digits (100 per class) at 14 × 14, cross-entropy.
//! let (obj, theta0) = MnistCnn { downsample: 2, ..MnistCnn::cohen("cnn-relu", 100, StandardLoss::CrossEntropy) }
//!     .build()?;
//! assert_eq!((obj.n_examples(), theta0.len()), (1000, obj.dim()));
//! # Ok::<(), imreg_eos::tracking::TrackError>(())
//! ```
use crate::tracking::{TrackError, TrackResult};
use imreg_objective::data::{Part, ShippedDataset};
use imreg_objective::models::{preset, Network, NetworkObjective, SpecNetwork, StandardLoss};
use imreg_objective::{rng, ObjectiveError};
use ndarray::Array2;
use rand::Rng;

/// Side of the shipped MNIST images.
const SIDE: usize = 28;
/// The presets [`MnistCnn`] accepts (Cohen et al.'s CNNs).
pub const COHEN_CNNS: [&str; 3] = ["cnn-relu", "cnn-tanh", "cnn-elu"];

/// A Cohen CNN on the first `per_class` shipped MNIST training digits of every class.
#[derive(Clone, Debug, PartialEq)]
pub struct MnistCnn {
    /// One of [`COHEN_CNNS`].
    pub preset: &'static str,
    /// Images per class; `N = 10 · per_class` (1..=690, the smallest class of the training part).
    pub per_class: usize,
    /// Average `s × s` pixel blocks (1: the 28 × 28 images; 2: 14 × 14). `1..=7`.
    pub downsample: usize,
    /// [`StandardLoss::HalfMse`] (Cohen et al.'s ½-MSE on one-hot targets) or [`StandardLoss::CrossEntropy`].
    pub loss: StandardLoss,
    /// Seed of the initialization.
    pub init_seed: u64,
    /// Multiplier of PyTorch's default initialization bounds.
    pub init_scale: f64,
}

impl MnistCnn {
    /// `preset` on `10 · per_class` full-resolution digits with `loss`, PyTorch's default initialization
    /// (seed 0).
    pub fn cohen(preset: &'static str, per_class: usize, loss: StandardLoss) -> Self {
        MnistCnn {
            preset,
            per_class,
            downsample: 1,
            loss,
            init_seed: 0,
            init_scale: 1.0,
        }
    }

    /// Side of the (downsampled) images, `⌊28/s⌋`.
    pub fn side(&self) -> usize {
        SIDE / self.downsample.max(1)
    }

    /// The objective on the subset and its initial parameters.
    pub fn build(&self) -> TrackResult<(NetworkObjective<SpecNetwork>, Vec<f64>)> {
        if !COHEN_CNNS.contains(&self.preset) {
            return Err(TrackError::invalid(
                "preset",
                self.preset,
                "must be cnn-relu, cnn-tanh or cnn-elu",
            ));
        }
        if !(1..=7).contains(&self.downsample) {
            return Err(TrackError::invalid(
                "downsample",
                self.downsample,
                "must lie in 1..=7",
            ));
        }
        if !(self.init_scale.is_finite() && self.init_scale > 0.0) {
            return Err(TrackError::invalid(
                "init_scale",
                self.init_scale,
                "must be finite and > 0",
            ));
        }
        if !matches!(self.loss, StandardLoss::HalfMse | StandardLoss::CrossEntropy) {
            return Err(TrackError::invalid(
                "loss",
                format!("{:?}", self.loss),
                "must be HalfMse or CrossEntropy",
            ));
        }
        let train = ShippedDataset::Mnist
            .load(Part::Train)
            .map_err(ObjectiveError::from)?;
        let all = block_average(&train.x, self.downsample);
        let n_all = all.len() as f64;
        let mean = all.iter().sum::<f64>() / n_all;
        let sd = (all.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n_all).sqrt();
        let subset = train.first_per_class(self.per_class)?;
        let x = block_average(&subset.x, self.downsample).mapv(|v| (v - mean) / sd);
        let side = self.side();
        let net = preset(self.preset, &[1, side, side], 10)
            .and_then(SpecNetwork::new)
            .map_err(ObjectiveError::from)?;
        let theta0 = pytorch_default_init(&net, self.init_seed, self.init_scale);
        let obj = NetworkObjective::classification(net, self.loss, x, subset.labels)?;
        Ok((obj, theta0))
    }
}

/// The images (rows of `28 · 28` pixels) with every `s × s` block averaged; `s = 1` returns a copy.
fn block_average(x: &Array2<f64>, s: usize) -> Array2<f64> {
    let side = SIDE / s;
    let scale = 1.0 / (s * s) as f64;
    Array2::from_shape_fn((x.nrows(), side * side), |(i, j)| {
        let (r, c) = (j / side * s, j % side * s);
        let block: f64 = (0..s)
            .flat_map(|dr| (0..s).map(move |dc| (dr, dc)))
            .map(|(dr, dc)| x[(i, (r + dr) * SIDE + c + dc)])
            .sum();
        block * scale
    })
}

/// PyTorch's default initialization of every `weight` and `bias` of a network of convolutions and linear
/// layers: `U(−b, b)` with `b = scale/√fan_in`, `fan_in` the product of the module weight's trailing
/// dimensions, drawn in parameter order from `rng::stream(seed, 0)`.
fn pytorch_default_init(net: &SpecNetwork, seed: u64, scale: f64) -> Vec<f64> {
    let params = net.parameters();
    let mut draws = rng::stream(seed, 0);
    let mut theta = Vec::with_capacity(net.n_params());
    for p in &params {
        let module = p.name.rsplit_once('.').map_or("", |(m, _)| m);
        let weight = params
            .iter()
            .find(|w| w.name == format!("{module}.weight"))
            .unwrap_or(p);
        let fan_in: usize = weight.shape.iter().skip(1).product();
        let bound = scale / (fan_in.max(1) as f64).sqrt();
        theta.extend((0..p.shape.iter().product::<usize>()).map(|_| bound * draws.random_range(-1.0..1.0)));
    }
    theta
}
