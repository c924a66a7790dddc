//! Building an [`Objective`] from the `[model]` config and a dataset, with its PyTorch parameter layout.
use crate::config::ModelConfig;
use crate::data::Dataset;
use crate::error::{CliError, Result};
use imreg_objective::models::{DeepLinear, LinearRegression, LogisticRegression, ScalarNet};
use imreg_objective::{Batch, Objective};
use ndarray::{concatenate, Array1, Array2, Axis};
use std::path::Path;

/// A model ready to train or analyze.
pub enum Model {
    /// The model and whether `θ` ends with a bias.
    Linear(LinearRegression, bool),
    Logistic(LogisticRegression, bool),
    DeepLinear(DeepLinear),
    Scalar(ScalarNet),
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
    /// Builds the model; `file` (the config) names the field at fault in errors.
    pub fn build(cfg: &ModelConfig, data: Option<&Dataset>, file: &Path) -> Result<Model> {
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
        Ok(match cfg {
            ModelConfig::LinearRegression { bias } => {
                let d = data.ok_or_else(need)?;
                let x = if *bias { with_ones(&d.x) } else { d.x.clone() };
                Model::Linear(
                    LinearRegression::new(x, single_target(d)?).map_err(|e| objective_err("data", e))?,
                    *bias,
                )
            }
            ModelConfig::LogisticRegression { bias } => {
                let d = data.ok_or_else(need)?;
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
            ModelConfig::DeepLinear { hidden, bias } => {
                let d = data.ok_or_else(need)?;
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
        })
    }

    /// The objective `C(θ)`.
    pub fn objective(&self) -> &dyn Objective {
        match self {
            Model::Linear(m, _) => m,
            Model::Logistic(m, _) => m,
            Model::DeepLinear(m) => m,
            Model::Scalar(m) => m,
        }
    }

    /// The parameter tensors in `θ` order, with PyTorch names (`0.weight [out, in]`, `0.bias [out]`, …;
    /// `a`, `b` for the scalar net).
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
            Model::DeepLinear(m) => m
                .param_names()
                .iter()
                .zip(m.layer_shapes())
                .map(|(n, s)| t(n, s))
                .collect(),
            Model::Scalar(m) => vec![t("a", vec![m.k()]), t("b", vec![m.k()])],
        }
    }

    fn has_bias(&self) -> bool {
        match self {
            Model::Linear(_, bias) | Model::Logistic(_, bias) => *bias,
            Model::DeepLinear(m) => m.has_bias(),
            Model::Scalar(_) => false,
        }
    }

    /// Classification accuracy on the full batch (logistic regression: `1[x_iᵀθ > 0] = y_i`).
    pub fn accuracy(&self, theta: &[f64]) -> Option<f64> {
        match self {
            Model::Logistic(m, _) => {
                let x = m.x();
                let labels = m.labels();
                let correct = x
                    .rows()
                    .into_iter()
                    .zip(&labels)
                    .filter(|(row, &l)| {
                        let z: f64 = row.iter().zip(theta).map(|(a, b)| a * b).sum();
                        usize::from(z > 0.0) == l
                    })
                    .count();
                Some(correct as f64 / labels.len().max(1) as f64)
            }
            _ => None,
        }
    }

    /// Full-batch loss and gradient.
    pub fn loss_grad(&self, theta: &[f64]) -> imreg_objective::Result<(f64, Vec<f64>)> {
        let mut g = vec![0.0; self.objective().dim()];
        let l = self.objective().loss_grad(theta, Batch::Full, &mut g)?;
        Ok((l, g))
    }
}
