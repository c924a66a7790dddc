//! Losses on a network's outputs `f_i = f(x_i; θ) ∈ R^C`, written once on the tape for every tensor type.
//!
//! | [`StandardLoss`] (name) | per-example `ℓ(f_i, y_i)` | PyTorch (also accepted as the name) |
//! |---|---|---|
//! | `HalfMse` (`half_mse`) | `½ ‖f_i − y_i‖²` (the theory's ½-MSE: Cohen et al., Beneventano & Woodworth) | `0.5 · C · MSELoss()` |
//! | `SquaredError` (`squared_error`) | `‖f_i − y_i‖²` (the EoSS code's `Σ_classes (f − y)²`) | `MSELoss(reduction="sum") / |B|` |
//! | `Mse` (`mse`) | `‖f_i − y_i‖² / C` (the mean over examples **and** outputs) | `MSELoss()` = `MSELoss(reduction="mean")` |
//! | `CrossEntropy` (`cross_entropy`) | `−log softmax(f_i)_{y_i}`, integer labels | `CrossEntropyLoss()` |
//! | `SmoothedCrossEntropy { epsilon }` (`cross_entropy(label_smoothing=ε)`) | `−Σ_c q_c log softmax(f_i)_c`, `q = (1 − ε) e_{y_i} + ε/C` | `CrossEntropyLoss(label_smoothing=ε)` |
//! | `Logistic` (`logistic`) | `softplus(f_i) − y_i f_i`, one output, labels `y_i ∈ {0, 1}` | `BCEWithLogitsLoss()` |
//!
//! The batch objective is always the mean over examples, `C_B = (1/|B|) Σ_{i∈B} ℓ(f_i, y_i)`. The three squared
//! losses differ by constant factors, which scale every Hessian and hence every `2/η` threshold: at equal
//! parameters `H_Mse = (2/C) H_HalfMse` and `H_SquaredError = 2 H_HalfMse`; so a run with PyTorch's
//! `MSELoss()` at step size `η` is the ½-MSE run at `η' = 2η/C`, and its stability threshold `λ_max = 2/η`
//! is the ½-MSE threshold `λ_max = C/η`. PyTorch's `reduction="sum"` also sums over the batch: its
//! objective is `|B| ·` the `squared_error` objective, so it is no per-example loss of a mean objective and
//! is refused by name ([`StandardLoss::from_name`] says how to convert). Label smoothing leaves the
//! Hessian's Gauss–Newton part `Jᵀ(diag p − ppᵀ)J` unchanged and changes the residual part through `p − q`.
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

/// The built-in losses (see the module doc for the conventions side by side). Serialized as its name
/// ([`StandardLoss::name_str`]); read from any name [`StandardLoss::from_name`] accepts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StandardLoss {
    /// `½ ‖f − y‖²`.
    HalfMse,
    /// `‖f − y‖²` (summed over outputs, no ½).
    SquaredError,
    /// `‖f − y‖² / C`: PyTorch's `MSELoss()` (mean over examples and outputs).
    Mse,
    /// Softmax cross-entropy with integer labels.
    CrossEntropy,
    /// Softmax cross-entropy against the smoothed targets `q = (1 − ε) e_y + ε/C`, `ε = epsilon ∈ (0, 1]`:
    /// PyTorch's `CrossEntropyLoss(label_smoothing=ε)`.
    SmoothedCrossEntropy {
        /// The label smoothing `ε`.
        epsilon: f64,
    },
    /// Binary logistic loss `softplus(f) − y f` on one output with labels in `{0, 1}`.
    Logistic,
}

/// The names [`StandardLoss::from_name`] knows, for error messages.
pub const LOSS_NAMES: &str = "half_mse, squared_error, mse (= MSELoss() = MSELoss(reduction=\"mean\")), \
     cross_entropy (= CrossEntropyLoss()), cross_entropy(label_smoothing=ε) \
     (= CrossEntropyLoss(label_smoothing=ε)), logistic (= BCEWithLogitsLoss())";

impl StandardLoss {
    /// `c` of `c ‖f − y‖²` for the squared losses with `C` outputs.
    fn squared_factor(self, outputs: usize) -> Option<f64> {
        match self {
            StandardLoss::HalfMse => Some(0.5),
            StandardLoss::SquaredError => Some(1.0),
            StandardLoss::Mse => Some(1.0 / outputs as f64),
            _ => None,
        }
    }

    /// The canonical name: `half_mse`, `squared_error`, `mse`, `cross_entropy`,
    /// `cross_entropy(label_smoothing=ε)`, `logistic`.
    pub fn name_str(&self) -> String {
        match self {
            StandardLoss::HalfMse => "half_mse".into(),
            StandardLoss::SquaredError => "squared_error".into(),
            StandardLoss::Mse => "mse".into(),
            StandardLoss::CrossEntropy => "cross_entropy".into(),
            StandardLoss::SmoothedCrossEntropy { epsilon } => {
                format!("cross_entropy(label_smoothing={epsilon})")
            }
            StandardLoss::Logistic => "logistic".into(),
        }
    }

    /// The loss of a name: a canonical name, or PyTorch's (`MSELoss()`, `MSELoss(reduction="mean")`,
    /// `CrossEntropyLoss()`, `CrossEntropyLoss(label_smoothing=0.1)`, `BCEWithLogitsLoss()`; quotes,
    /// spaces and a missing `()` are accepted). `MSELoss(reduction="sum")` is refused with the conversion to
    /// `squared_error`; `ε` must lie in `[0, 1]` (`ε = 0` is `cross_entropy`).
    pub fn from_name(name: &str) -> std::result::Result<Self, String> {
        let compact: String = name
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '"' && *c != '\'')
            .collect();
        let (head, args) = match compact.split_once('(') {
            Some((h, rest)) => match rest.strip_suffix(')') {
                Some(a) => (h.to_string(), a.to_string()),
                None => {
                    return Err(format!(
                        "unknown loss {name:?}: unbalanced parentheses ({LOSS_NAMES})"
                    ))
                }
            },
            None => (compact.clone(), String::new()),
        };
        let arg = |key: &str| -> std::result::Result<Option<String>, String> {
            if args.is_empty() {
                return Ok(None);
            }
            match args.split_once('=') {
                Some((k, v)) if k == key => Ok(Some(v.to_string())),
                _ => Err(format!(
                    "loss {name:?}: the only argument is {key}=…, got {args:?}"
                )),
            }
        };
        let plain = |loss: StandardLoss| {
            if args.is_empty() {
                Ok(loss)
            } else {
                Err(format!("loss {name:?} takes no arguments ({LOSS_NAMES})"))
            }
        };
        match head.as_str() {
            "half_mse" => plain(StandardLoss::HalfMse),
            "squared_error" => plain(StandardLoss::SquaredError),
            "mse" => plain(StandardLoss::Mse),
            "logistic" | "BCEWithLogitsLoss" => plain(StandardLoss::Logistic),
            "MSELoss" => match arg("reduction")?.as_deref() {
                None | Some("mean") => Ok(StandardLoss::Mse),
                Some("sum") => Err(format!(
                    "loss {name:?}: PyTorch's reduction=\"sum\" also sums over the batch, so its objective is \
                     |B| times the squared_error objective (per-example ‖f − y‖², mean over examples): analyze \
                     with squared_error and multiply the loss, the gradient and every eigenvalue by the batch \
                     size (N for the full batch), or divide the step size by it"
                )),
                Some(r) => Err(format!("loss {name:?}: reduction must be \"mean\" or \"sum\", got {r:?}")),
            },
            "cross_entropy" | "CrossEntropyLoss" => match arg("label_smoothing")? {
                None => Ok(StandardLoss::CrossEntropy),
                Some(v) => {
                    let epsilon: f64 = v
                        .parse()
                        .map_err(|_| format!("loss {name:?}: label_smoothing must be a number, got {v:?}"))?;
                    if !(0.0..=1.0).contains(&epsilon) {
                        return Err(format!("loss {name:?}: label_smoothing must lie in [0, 1], got {epsilon}"));
                    }
                    Ok(if epsilon == 0.0 {
                        StandardLoss::CrossEntropy
                    } else {
                        StandardLoss::SmoothedCrossEntropy { epsilon }
                    })
                }
            },
            "full_mse" => Err(format!(
                "unknown loss {name:?}: the MLP's full_mse (‖f − y‖² per example) is squared_error here ({LOSS_NAMES})"
            )),
            _ => Err(format!("unknown loss {name:?} ({LOSS_NAMES})")),
        }
    }

    /// Whether the loss takes class labels through a softmax.
    fn is_softmax(&self) -> bool {
        matches!(
            self,
            StandardLoss::CrossEntropy | StandardLoss::SmoothedCrossEntropy { .. }
        )
    }
}

impl std::str::FromStr for StandardLoss {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        StandardLoss::from_name(s)
    }
}

impl serde::Serialize for StandardLoss {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.name_str())
    }
}

impl<'de> serde::Deserialize<'de> for StandardLoss {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        StandardLoss::from_name(&name).map_err(serde::de::Error::custom)
    }
}

impl Loss for StandardLoss {
    fn name(&self) -> String {
        match self {
            StandardLoss::HalfMse => "½ MSE",
            StandardLoss::SquaredError => "MSE (no ½)",
            StandardLoss::Mse => "MSE (PyTorch mean over examples and outputs)",
            StandardLoss::CrossEntropy => "cross-entropy",
            StandardLoss::SmoothedCrossEntropy { epsilon } => {
                return format!("cross-entropy (label smoothing {epsilon})")
            }
            StandardLoss::Logistic => "logistic",
        }
        .into()
    }

    fn label_classes(&self, outputs: usize) -> Option<usize> {
        match self {
            StandardLoss::CrossEntropy | StandardLoss::SmoothedCrossEntropy { .. } => Some(outputs),
            StandardLoss::Logistic => Some(2),
            _ => None,
        }
    }

    fn check_outputs(&self, outputs: usize) -> Result<()> {
        match (self, outputs) {
            (_, 0) => Err(ObjectiveError::invalid("outputs", "a network needs ≥ 1 output")),
            (StandardLoss::SmoothedCrossEntropy { epsilon }, _) if !(*epsilon > 0.0 && *epsilon <= 1.0) => {
                Err(ObjectiveError::invalid(
                    "label_smoothing",
                    format!("must lie in (0, 1], got {epsilon}"),
                ))
            }
            (s, 1) if s.is_softmax() => Err(ObjectiveError::invalid(
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
            StandardLoss::SmoothedCrossEntropy { epsilon } => {
                // −(1 − ε) log p_y − (ε/C) Σ_c log p_c
                let classes = g.shape(f).1 as f64;
                let ls = g.log_softmax(f);
                let picked = g.pick(ls, labels)?;
                let picked = g.scale(picked, -(1.0 - epsilon));
                let all = g.sum_axis(ls, 1)?;
                let all = g.scale(all, -epsilon / classes);
                g.add(picked, all)
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
            StandardLoss::Logistic | StandardLoss::SmoothedCrossEntropy { .. } => {
                let l = self.per_example(g, f, y)?;
                Ok(g.sum(l))
            }
        }
    }
}
