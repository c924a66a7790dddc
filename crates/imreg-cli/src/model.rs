//! Building an [`Objective`] from the `[model]` config and a dataset, with its PyTorch parameter layout.
use crate::config::ModelConfig;
use crate::data::Dataset;
use crate::error::{CliError, Result};
use crate::network::SpecObjective;
use imreg_objective::models::{
    DeepLinear, LinearRegression, LogisticRegression, Mlp, MlpSpec, Network, NetworkObjective, Quadratic,
    ScalarNet,
};
use imreg_objective::{argmax_rows, Batch, LossKind, Objective, Supervised};
use ndarray::{concatenate, Array1, Array2, Axis};
use std::path::Path;

/// A model ready to train or analyze.
pub enum Model {
    /// The model and whether `θ` ends with a bias.
    Linear(LinearRegression, bool),
    Logistic(LogisticRegression, bool),
    /// The MLP and its class labels (for classifiers; MSE classifiers store one-hot targets).
    Mlp(Mlp, Option<Vec<usize>>),
    DeepLinear(DeepLinear),
    Scalar(ScalarNet),
    Quadratic(Quadratic),
    /// A network from a description (`crate::network`) and its class labels (for classifiers).
    Network(SpecObjective, Option<Vec<usize>>),
}

/// One named tensor of the flat parameter vector (PyTorch state-dict name and shape).
#[derive(Clone, Debug, PartialEq)]
pub struct ParamTensor {
    pub name: String,
    pub shape: Vec<usize>,
}

impl ParamTensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// `x` with a trailing column of ones (the bias as the last weight, PyTorch's `[weight, bias]` order).
fn with_ones(x: &Array2<f64>) -> Array2<f64> {
    let ones = Array2::ones((x.nrows(), 1));
    concatenate(Axis(1), &[x.view(), ones.view()]).unwrap_or_else(|_| x.clone())
}

impl Model {
    /// Builds the model; `file` (the config) names the field at fault in errors. `seed` is the master seed
    /// (used by the random quadratic).
    pub fn build(cfg: &ModelConfig, data: Option<&Dataset>, file: &Path, seed: u64) -> Result<Model> {
        // Sizes first: nothing of the model's size is allocated before they pass the limits.
        match data {
            Some(d) => {
                let outputs = d.classes.unwrap_or(0).max(d.y.ncols());
                crate::limits::check_model(cfg, d.n(), d.dim(), outputs, file)?
            }
            None => crate::limits::check_model(cfg, 0, 0, 0, file)?,
        }
        let objective_err =
            |field: &str, e: imreg_objective::ObjectiveError| CliError::input(file, field, e.to_string());
        let need = || CliError::input(file, "data", format!("model {} needs a [data] table", cfg.kind()));
        let single_target = |d: &Dataset| -> Result<Array1<f64>> {
            if d.y.ncols() != 1 {
                return Err(CliError::input(
                    file,
                    "data.y",
                    format!(
                        "model {} needs one target per example, got {} columns",
                        cfg.kind(),
                        d.y.ncols()
                    ),
                ));
            }
            Ok(d.y.column(0).to_owned())
        };
        let regression_data = |d: &Dataset| -> Result<()> {
            if d.classes.is_some() {
                return Err(CliError::input(
                    file,
                    "data",
                    format!(
                        "model {} needs regression targets; the data holds class labels",
                        cfg.kind()
                    ),
                ));
            }
            Ok(())
        };
        Ok(match cfg {
            ModelConfig::LinearRegression { bias } => {
                let d = data.ok_or_else(need)?;
                regression_data(d)?;
                let x = if *bias { with_ones(&d.x) } else { d.x.clone() };
                Model::Linear(
                    LinearRegression::new(x, single_target(d)?).map_err(|e| objective_err("data", e))?,
                    *bias,
                )
            }
            ModelConfig::LogisticRegression { bias } => {
                let d = data.ok_or_else(need)?;
                if let Some(c) = d.classes.filter(|&c| c != 2) {
                    return Err(CliError::input(
                        file,
                        "model.kind",
                        format!("logistic_regression needs 2 classes, the data has {c} (use an mlp)"),
                    ));
                }
                let y = single_target(d)?;
                let mut labels = Vec::with_capacity(y.len());
                for (i, &v) in y.iter().enumerate() {
                    if v != 0.0 && v != 1.0 {
                        return Err(CliError::input(
                            file,
                            "data.y",
                            format!("label {v} at example {i} is not 0 or 1"),
                        ));
                    }
                    labels.push(v as usize);
                }
                let x = if *bias { with_ones(&d.x) } else { d.x.clone() };
                Model::Logistic(
                    LogisticRegression::new(x, labels).map_err(|e| objective_err("data.y", e))?,
                    *bias,
                )
            }
            ModelConfig::Mlp {
                hidden,
                activation,
                bias,
                loss,
            } => {
                let d = data.ok_or_else(need)?;
                let outputs = d.classes.unwrap_or(d.y.ncols());
                let mut widths = vec![d.dim()];
                widths.extend(hidden);
                widths.push(outputs);
                let spec = MlpSpec {
                    widths,
                    activation: *activation,
                    bias: *bias,
                    loss: loss.kind(),
                };
                let labels = d.labels();
                let m = match &labels {
                    Some(labels) => Mlp::classification(spec, d.x.clone(), labels.clone()),
                    None => {
                        if loss.kind() == LossKind::CrossEntropy {
                            return Err(CliError::input(
                                file,
                                "model.loss",
                                "cross_entropy needs class labels; the data holds regression targets",
                            ));
                        }
                        Mlp::regression(spec, d.x.clone(), d.y.clone())
                    }
                };
                Model::Mlp(m.map_err(|e| objective_err("model", e))?, labels)
            }
            ModelConfig::DeepLinear { hidden, bias } => {
                let d = data.ok_or_else(need)?;
                regression_data(d)?;
                let mut widths = vec![d.dim()];
                widths.extend(hidden);
                widths.push(d.y.ncols());
                Model::DeepLinear(
                    DeepLinear::new(widths, d.x.clone(), d.y.clone(), *bias)
                        .map_err(|e| objective_err("model", e))?,
                )
            }
            ModelConfig::ScalarNet { k, phi } => match (phi, data) {
                (Some(phi), None) => {
                    Model::Scalar(ScalarNet::new(*k, *phi).map_err(|e| objective_err("model", e))?)
                }
                (_, Some(d)) => {
                    regression_data(d)?;
                    if d.dim() != 1 {
                        return Err(CliError::input(
                            file,
                            "data.x",
                            format!("scalar_net needs one input column, got {}", d.dim()),
                        ));
                    }
                    let y = single_target(d)?.to_vec();
                    Model::Scalar(
                        ScalarNet::from_data(*k, d.x.column(0).to_vec(), y)
                            .map_err(|e| objective_err("data", e))?,
                    )
                }
                (None, None) => return Err(need()),
            },
            ModelConfig::Network { loss, .. } => {
                let d = data.ok_or_else(need)?;
                let outputs = d.classes.unwrap_or(d.y.ncols());
                let spec = crate::network::resolve_spec(cfg, d.dim(), outputs, file)?;
                let net = crate::network::compile(spec, d.n(), file)?;
                let labels = d.labels();
                let obj = match &labels {
                    Some(labels) => NetworkObjective::classification(net, *loss, d.x.clone(), labels.clone()),
                    None => NetworkObjective::regression(net, *loss, d.x.clone(), d.y.clone()),
                };
                Model::Network(obj.map_err(|e| objective_err("model.loss", e))?, labels)
            }
            ModelConfig::Quadratic { h, p, n } => match (h, p, n) {
                (Some(h), _, _) => {
                    Model::Quadratic(Quadratic::try_diagonal(h).map_err(|e| objective_err("model.h", e))?)
                }
                (None, Some(p), Some(n)) => Model::Quadratic(
                    Quadratic::random(*p, *n, seed).map_err(|e| objective_err("model.p", e))?,
                ),
                _ => {
                    return Err(CliError::input(
                        file,
                        "model.h",
                        "give either h = [..] or both p and n",
                    ))
                }
            },
        })
    }

    /// The objective `C(θ)`.
    pub fn objective(&self) -> &dyn Objective {
        match self {
            Model::Linear(m, _) => m,
            Model::Logistic(m, _) => m,
            Model::Mlp(m, _) => m,
            Model::DeepLinear(m) => m,
            Model::Scalar(m) => m,
            Model::Quadratic(m) => m,
            Model::Network(m, _) => m,
        }
    }

    /// The parameter tensors in `θ` order, with PyTorch names (`0.weight [out, in]`, `0.bias [out]`, …;
    /// `a`, `b` for the scalar net; `theta` for the quadratic).
    pub fn layout(&self) -> Vec<ParamTensor> {
        let t = |name: &str, shape: Vec<usize>| ParamTensor {
            name: name.to_string(),
            shape,
        };
        match self {
            Model::Linear(..) | Model::Logistic(..) => {
                let p = self.objective().dim();
                let bias = self.has_bias();
                let d = if bias { p - 1 } else { p };
                let mut v = vec![t("0.weight", vec![1, d])];
                if bias {
                    v.push(t("0.bias", vec![1]));
                }
                v
            }
            Model::Mlp(m, _) => m
                .param_names()
                .iter()
                .zip(m.param_shapes())
                .map(|(n, s)| t(n, s))
                .collect(),
            Model::DeepLinear(m) => m
                .param_names()
                .iter()
                .zip(m.layer_shapes())
                .map(|(n, s)| t(n, s))
                .collect(),
            Model::Scalar(m) => vec![t("a", vec![m.k()]), t("b", vec![m.k()])],
            Model::Quadratic(m) => vec![t("theta", vec![m.dim()])],
            Model::Network(m, _) => m
                .network()
                .parameters()
                .into_iter()
                .map(|p| t(&p.name, p.shape))
                .collect(),
        }
    }

    fn has_bias(&self) -> bool {
        match self {
            Model::Linear(_, bias) | Model::Logistic(_, bias) => *bias,
            Model::DeepLinear(m) => m.has_bias(),
            Model::Mlp(m, _) => m.spec().bias,
            Model::Scalar(_) | Model::Quadratic(_) | Model::Network(..) => false,
        }
    }

    /// Whether [`Model::accuracy`] is defined (a classifier).
    pub fn is_classifier(&self) -> bool {
        match self {
            Model::Logistic(..) => true,
            Model::Mlp(_, labels) | Model::Network(_, labels) => labels.is_some(),
            _ => false,
        }
    }

    /// Classification accuracy on the full batch: logistic regression `1[x_iᵀθ > 0] = y_i`; an MLP classifier
    /// `argmax_c f_c(x_i) = y_i` (logits, or outputs against one-hot targets for MSE). `None` for regression.
    pub fn accuracy(&self, theta: &[f64]) -> Result<Option<f64>> {
        let (predicted, labels) = match self {
            Model::Logistic(m, _) => {
                let predicted = m
                    .x()
                    .rows()
                    .into_iter()
                    .map(|row| usize::from(row.iter().zip(theta).map(|(a, b)| a * b).sum::<f64>() > 0.0))
                    .collect::<Vec<_>>();
                (predicted, m.labels())
            }
            Model::Mlp(m, labels) => {
                let Some(labels) = labels.clone() else {
                    return Ok(None);
                };
                let out = m
                    .outputs(theta, Batch::Full)
                    .map_err(|e| CliError::Failed(format!("accuracy: {e}")))?;
                (argmax_rows(&out), labels)
            }
            Model::Network(m, labels) => {
                let Some(labels) = labels.clone() else {
                    return Ok(None);
                };
                let out = m
                    .outputs(theta, Batch::Full)
                    .map_err(|e| CliError::Failed(format!("accuracy: {e}")))?;
                // One output is the logit of class 1 (the logistic loss).
                let predicted = if out.ncols() == 1 {
                    out.column(0).iter().map(|&v| usize::from(v > 0.0)).collect()
                } else {
                    argmax_rows(&out)
                };
                (predicted, labels)
            }
            _ => return Ok(None),
        };
        let correct = predicted.iter().zip(&labels).filter(|(p, l)| p == l).count();
        Ok(Some(correct as f64 / labels.len().max(1) as f64))
    }

    /// The scalar net's imbalance `‖a‖² − ‖b‖²` (`θ = (a, b)`); `None` for other models.
    pub fn imbalance(&self, theta: &[f64]) -> Option<f64> {
        match self {
            Model::Scalar(m) => {
                let (a, b) = theta.split_at(m.k().min(theta.len()));
                Some(a.iter().map(|v| v * v).sum::<f64>() - b.iter().map(|v| v * v).sum::<f64>())
            }
            _ => None,
        }
    }

    /// Reads `θ` from `path` (`field` names the argument or config field): a network's `.safetensors` state
    /// dict loads strictly by name and shape and sets batch norm's running statistics; every other model and
    /// flat `.npy` files go through [`crate::params::load_params`].
    pub fn load_theta(&mut self, path: &Path, field: &str) -> Result<Vec<f64>> {
        if let Model::Network(m, _) = self {
            if path.extension().is_some_and(|e| e == "safetensors") {
                let (loaded, theta) = crate::network::load_state_dict(m, path, field)?;
                *m = loaded;
                return Ok(theta);
            }
        }
        crate::params::load_params(path, &self.layout(), field)
    }

    /// Writes `θ` as a PyTorch `state_dict` to `path` (a network's includes batch norm's running statistics).
    pub fn save_theta(&self, path: &Path, theta: &[f64]) -> Result<()> {
        match self {
            Model::Network(m, _) => {
                imreg_plot::write_atomic(path, &crate::network::state_dict_bytes(m, theta)?)?;
                Ok(())
            }
            _ => crate::params::save_params(path, theta, &self.layout()),
        }
    }

    /// Full-batch loss (a forward pass; the same value as [`Model::loss_grad`]'s, bitwise).
    pub fn loss(&self, theta: &[f64]) -> imreg_objective::Result<f64> {
        self.objective().loss(theta, Batch::Full)
    }

    /// Full-batch loss and gradient.
    pub fn loss_grad(&self, theta: &[f64]) -> imreg_objective::Result<(f64, Vec<f64>)> {
        let mut g = vec![0.0; self.objective().dim()];
        let l = self.objective().loss_grad(theta, Batch::Full, &mut g)?;
        Ok((l, g))
    }
}
