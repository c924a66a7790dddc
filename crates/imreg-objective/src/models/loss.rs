//! Losses on a network's outputs `f_i = f(x_i; θ) ∈ R^C`, written once on the tape for every tensor type.
//!
//! | [`StandardLoss`] | per-example `ℓ(f_i, y_i)` | PyTorch |
//! |---|---|---|
//! | `HalfMse` | `½ ‖f_i − y_i‖²` (the theory's ½-MSE: Cohen et al., Beneventano & Woodworth) | `0.5 · C · MSELoss()` |
//! | `SquaredError` | `‖f_i − y_i‖²` (the EoSS code's `Σ_classes (f − y)²`) | `C · MSELoss()` |
//! | `Mse` | `‖f_i − y_i‖² / C` (PyTorch's `MSELoss()`, the mean over examples **and** outputs) | `MSELoss()` |
//! | `CrossEntropy` | `−log softmax(f_i)_{y_i}`, integer labels | `CrossEntropyLoss()` |
//! | `Logistic` | `softplus(f_i) − y_i f_i`, one output, labels `y_i ∈ {0, 1}` | `BCEWithLogitsLoss()` |
//!
//! The batch objective is always the mean over examples, `C_B = (1/|B|) Σ_{i∈B} ℓ(f_i, y_i)`. The three squared
//! losses differ by constant factors, which scale every Hessian and hence every `2/η` threshold: at equal
//! parameters `H_Mse = (2/C) H_HalfMse` and `H_SquaredError = 2 H_HalfMse`.
//!
//! A user-defined loss implements [`Loss`]: its per-example values as an `n × 1` node built from tape ops (or
//! its own [`imreg_ad::Primitive`]), and whether it takes value or label targets.
use crate::error::{ObjectiveError, Result};
use imreg_ad::{Graph, Mat, Tensor, Var};

/// The targets of one chunk of examples, in chunk order.
#[derive(Clone, Debug)]
pub enum ChunkTargets<'a> {
    /// Real targets, `n × C`.
    Values(Mat),
    /// Integer labels.
    Labels(&'a [usize]),
}

impl ChunkTargets<'_> {
    /// The value targets, or an error naming the loss that needs them.
    pub fn values(&self, loss: &str) -> imreg_ad::Result<&Mat> {
        match self {
            ChunkTargets::Values(y) => Ok(y),
            ChunkTargets::Labels(_) => Err(imreg_ad::AdError::Invalid {
                what: "targets",
                reason: format!("{loss} needs value targets, got labels"),
            }),
        }
    }

    /// The labels, or an error naming the loss that needs them.
    pub fn labels(&self, loss: &str) -> imreg_ad::Result<&[usize]> {
        match self {
            ChunkTargets::Labels(l) => Ok(l),
            ChunkTargets::Values(_) => Err(imreg_ad::AdError::Invalid {
                what: "targets",
                reason: format!("{loss} needs integer labels, got values"),
            }),
        }
    }
}

/// A per-example loss `ℓ(f_i, y_i)` on network outputs, recorded on the tape.
///
/// ```
/// use imreg_ad::{Graph, Tensor, Var};
/// use imreg_objective::models::{ChunkTargets, Loss};
/// /// log-cosh regression loss ℓ = Σ_c ln cosh(f_c − y_c) = Σ_c [softplus(2d) − d − ln 2]
/// struct LogCosh;
/// impl Loss for LogCosh {
///     fn name(&self) -> String { "log-cosh".into() }
///     fn label_classes(&self, _outputs: usize) -> Option<usize> { None }
///     fn per_example<T: Tensor>(&self, g: &mut Graph<T>, f: Var, y: &ChunkTargets<'_>)
///         -> imreg_ad::Result<Var> {
///         let yc = g.constant(y.values("log-cosh")?.clone());
///         let d = g.sub(f, yc)?;
///         let d2 = g.scale(d, 2.0);
///         let sp = g.softplus(d2);
///         let e = g.sub(sp, d)?;
///         let e = g.affine(e, 1.0, -std::f64::consts::LN_2);
///         g.sum_axis(e, 1)
///     }
/// }
/// ```
pub trait Loss: Send + Sync {
    /// A short name with the convention (e.g. "½ MSE").
    fn name(&self) -> String;
    /// `Some(k)` if the loss takes integer labels in `0..k` for a network with `outputs` outputs, `None` if it
    /// takes value targets of width `outputs`.
    fn label_classes(&self, outputs: usize) -> Option<usize>;
    /// Errors if the loss cannot be used with `outputs` network outputs (e.g. cross-entropy with one output).
    fn check_outputs(&self, outputs: usize) -> Result<()> {
        if outputs == 0 {
            return Err(ObjectiveError::invalid("outputs", "a network needs ≥ 1 output"));
        }
        Ok(())
    }
    /// The per-example losses `ℓ(f_i, y_i)` of the rows of `f` (`n × C`), as an `n × 1` node.
    fn per_example<T: Tensor>(&self, g: &mut Graph<T>, f: Var, y: &ChunkTargets<'_>)
        -> imreg_ad::Result<Var>;
    /// `Σ_i ℓ(f_i, y_i)` over the rows, a `1 × 1` node. The default sums [`Loss::per_example`]; the built-in
    /// losses use the engine's fused kernels.
    fn sum<T: Tensor>(&self, g: &mut Graph<T>, f: Var, y: &ChunkTargets<'_>) -> imreg_ad::Result<Var> {
        let l = self.per_example(g, f, y)?;
        Ok(g.sum(l))
    }
}

/// The built-in losses (see the module doc for the conventions side by side).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StandardLoss {
    /// `½ ‖f − y‖²`.
    HalfMse,
    /// `‖f − y‖²` (summed over outputs, no ½).
    SquaredError,
    /// `‖f − y‖² / C`: PyTorch's `MSELoss()` (mean over examples and outputs).
    Mse,
    /// Softmax cross-entropy with integer labels.
    CrossEntropy,
    /// Binary logistic loss `softplus(f) − y f` on one output with labels in `{0, 1}`.
    Logistic,
}

impl StandardLoss {
    /// `c` of `c ‖f − y‖²` for the squared losses with `C` outputs.
    fn squared_factor(self, outputs: usize) -> Option<f64> {
        match self {
            StandardLoss::HalfMse => Some(0.5),
            StandardLoss::SquaredError => Some(1.0),
            StandardLoss::Mse => Some(1.0 / outputs as f64),
            StandardLoss::CrossEntropy | StandardLoss::Logistic => None,
        }
    }
}

impl Loss for StandardLoss {
    fn name(&self) -> String {
        match self {
            StandardLoss::HalfMse => "½ MSE",
            StandardLoss::SquaredError => "MSE (no ½)",
            StandardLoss::Mse => "MSE (PyTorch mean over examples and outputs)",
            StandardLoss::CrossEntropy => "cross-entropy",
            StandardLoss::Logistic => "logistic",
        }
        .into()
    }

    fn label_classes(&self, outputs: usize) -> Option<usize> {
        match self {
            StandardLoss::CrossEntropy => Some(outputs),
            StandardLoss::Logistic => Some(2),
            _ => None,
        }
    }

    fn check_outputs(&self, outputs: usize) -> Result<()> {
        match (self, outputs) {
            (_, 0) => Err(ObjectiveError::invalid("outputs", "a network needs ≥ 1 output")),
            (StandardLoss::CrossEntropy, 1) => Err(ObjectiveError::invalid(
                "outputs",
                "cross-entropy needs ≥ 2 outputs",
            )),
            (StandardLoss::Logistic, c) if c != 1 => Err(ObjectiveError::invalid(
                "outputs",
                format!("the logistic loss needs 1 output, the network has {c}"),
            )),
            _ => Ok(()),
        }
    }

    fn per_example<T: Tensor>(
        &self,
        g: &mut Graph<T>,
        f: Var,
        y: &ChunkTargets<'_>,
    ) -> imreg_ad::Result<Var> {
        let name = self.name();
        if let Some(c) = self.squared_factor(g.shape(f).1) {
            let yc = g.constant(y.values(&name)?.clone());
            let d = g.sub(f, yc)?;
            let d2 = g.square(d);
            let s = g.sum_axis(d2, 1)?;
            return Ok(g.scale(s, c));
        }
        let labels = y.labels(&name)?;
        match self {
            StandardLoss::CrossEntropy => {
                let ls = g.log_softmax(f);
                let p = g.pick(ls, labels)?;
                Ok(g.scale(p, -1.0))
            }
            _ => {
                let yc = g.constant(Mat::from_shape_fn((labels.len(), 1), |(i, _)| labels[i] as f64));
                let sp = g.softplus(f);
                let yf = g.mul(f, yc)?;
                g.sub(sp, yf)
            }
        }
    }

    fn sum<T: Tensor>(&self, g: &mut Graph<T>, f: Var, y: &ChunkTargets<'_>) -> imreg_ad::Result<Var> {
        let (n, outputs) = g.shape(f);
        let n = n as f64;
        let name = self.name();
        match self {
            StandardLoss::HalfMse | StandardLoss::SquaredError => {
                let m = g.mse(f, y.values(&name)?, *self == StandardLoss::HalfMse)?;
                Ok(g.scale(m, n))
            }
            StandardLoss::Mse => {
                let m = g.mse(f, y.values(&name)?, false)?;
                Ok(g.scale(m, n / outputs as f64))
            }
            StandardLoss::CrossEntropy => {
                let m = g.softmax_cross_entropy(f, y.labels(&name)?)?;
                Ok(g.scale(m, n))
            }
            StandardLoss::Logistic => {
                let l = self.per_example(g, f, y)?;
                Ok(g.sum(l))
            }
        }
    }
}
