//! The theory of SGD's implicit regularization on a model: gradient flow and the modified flows of backward
//! error analysis integrated with DOP853 (`imreg_flow::flows`), the modified losses, and the exact
//! expectations of the SGD iterate over batch orders, partitions and with-replacement draws
//! (`imreg_sgd::expectation`), with the exact first two moments of per-example quadratics
//! (`imreg_sgd::without_replacement`).
use crate::convert::slice;
use crate::error::{bad_input, from_flow, from_objective, from_reg, from_sgd};
use crate::model::PyModel;
use imreg_flow::flows::{
    modified_loss_gd, modified_loss_sgd, modified_loss_sgd_expected, FixedOrderFlow, GdSecondOrderFlow,
    GradientFlow, ModifiedGdFlow, PartitionAveragedSgdFlow, SgdFlow,
};
use imreg_flow::{integrate_field_dense, Dop853Options, VectorField};
use imreg_objective::partition::{Partition, Remainder};
use imreg_objective::{Objective, Quadratic};
use imreg_sgd::expectation::{exact_mean, Averaging, ExactOptions};
use imreg_sgd::without_replacement::{exact_moments, NoiseShape, Process};
use nalgebra::{DMatrix, DVector};
use ndarray::{Array2, Array3};
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArray3, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The minibatches of one epoch: the explicit `batches`, else consecutive blocks of `batch_size`
/// (`B` must divide `N`).
fn partition(n: usize, batch_size: Option<usize>, batches: Option<Vec<Vec<usize>>>) -> PyResult<Partition> {
    match (batches, batch_size) {
        (Some(b), _) => Partition::from_batches(b, n).map_err(|e| from_objective("batches", e)),
        (None, Some(b)) => {
            Partition::consecutive(n, b, Remainder::Error).map_err(|e| from_objective("batch_size", e))
        }
        (None, None) => Err(bad_input(
            "batch_size",
            "give batch_size (consecutive batches) or batches (an explicit partition)",
        )),
    }
}

fn learning_rate(lr: Option<f64>, kind: &str) -> PyResult<f64> {
    lr.ok_or_else(|| bad_input("lr", format!("the {kind} flow needs the learning rate lr")))
}

/// The vector field of flow `kind` on `obj`.
fn vector_field<'a>(
    obj: &'a dyn Objective,
    kind: &str,
    lr: Option<f64>,
    batch_size: Option<usize>,
    batches: Option<Vec<Vec<usize>>>,
) -> PyResult<Box<dyn VectorField + 'a>> {
    let n = obj.n_examples();
    let field: Box<dyn VectorField + 'a> = match kind {
        "gradient" => Box::new(GradientFlow::new(obj)),
        "modified_gd" => Box::new(ModifiedGdFlow::new(obj, learning_rate(lr, kind)?).map_err(|e| from_flow("lr", e))?),
        "gd_second_order" => {
            Box::new(GdSecondOrderFlow::new(obj, learning_rate(lr, kind)?).map_err(|e| from_flow("lr", e))?)
        }
        "sgd" => Box::new(
            SgdFlow::new(obj, partition(n, batch_size, batches)?, learning_rate(lr, kind)?)
                .map_err(|e| from_flow("lr", e))?,
        ),
        "fixed_order" => Box::new(
            FixedOrderFlow::new(obj, partition(n, batch_size, batches)?, learning_rate(lr, kind)?)
                .map_err(|e| from_flow("lr", e))?,
        ),
        "sgd_expected" => {
            let b = batch_size.ok_or_else(|| bad_input("batch_size", "the sgd_expected flow needs batch_size"))?;
            Box::new(PartitionAveragedSgdFlow::new(obj, learning_rate(lr, kind)?, b).map_err(|e| from_flow("lr", e))?)
        }
        other => {
            return Err(bad_input(
                "kind",
                format!(
                    "unknown flow {other:?} (gradient, modified_gd, gd_second_order, sgd, fixed_order, sgd_expected)"
                ),
            ))
        }
    };
    Ok(field)
}

/// Integrates flow `kind` from `θ(0) = theta0` with DOP853 and returns `(θ(t_k) for t_k in times` as rows,
/// the integrator's report)`.
#[pyfunction]
#[pyo3(signature = (model, kind, theta0, times, lr=None, batch_size=None, batches=None, rtol=1e-10, atol=1e-12, max_steps=100_000))]
#[allow(clippy::too_many_arguments)]
pub fn flow<'py>(
    py: Python<'py>,
    model: PyRef<'py, PyModel>,
    kind: &str,
    theta0: PyReadonlyArray1<'py, f64>,
    times: PyReadonlyArray1<'py, f64>,
    lr: Option<f64>,
    batch_size: Option<usize>,
    batches: Option<Vec<Vec<usize>>>,
    rtol: f64,
    atol: f64,
    max_steps: usize,
) -> PyResult<(Bound<'py, PyArray2<f64>>, Bound<'py, PyDict>)> {
    let m: &PyModel = &model;
    let (theta0, times) = (slice(&theta0, "theta0")?, slice(&times, "times")?);
    if times.is_empty() {
        return Err(bad_input("times", "is empty"));
    }
    let field = vector_field(m.obj(), kind, lr, batch_size, batches)?;
    let opts = Dop853Options {
        max_steps,
        ..Dop853Options::with_tol(rtol, atol)
    };
    let (states, report) = py
        .allow_threads(|| integrate_field_dense(field.as_ref(), 0.0, theta0, times, &opts))
        .map_err(|e| from_flow("theta0", e))?;
    let p = theta0.len();
    let out = Array2::from_shape_fn((states.len(), p), |(i, j)| states[i][j]);
    let d = PyDict::new(py);
    d.set_item("accepted", report.accepted)?;
    d.set_item("rejected", report.rejected)?;
    d.set_item("evaluations", report.evaluations)?;
    d.set_item("t_end", report.t_end)?;
    Ok((out.into_pyarray(py), d))
}

/// The modified loss `kind` at `θ`: `gd` `C + (ε/4)‖∇C‖²`, `sgd` `(1/m) Σ_k (Ĉ_k + (ε/4)‖∇Ĉ_k‖²)` of a
/// partition, `sgd_expected` `C + (ε/4)‖∇C‖² + ((N−B)/(N−1)) (ε/4B) Γ`.
#[pyfunction]
#[pyo3(signature = (model, kind, theta, lr, batch_size=None, batches=None))]
pub fn modified_loss(
    py: Python<'_>,
    model: PyRef<'_, PyModel>,
    kind: &str,
    theta: PyReadonlyArray1<'_, f64>,
    lr: f64,
    batch_size: Option<usize>,
    batches: Option<Vec<Vec<usize>>>,
) -> PyResult<f64> {
    let m: &PyModel = &model;
    let obj = m.obj();
    let theta = slice(&theta, "theta")?;
    let r = match kind {
        "gd" => py.allow_threads(|| modified_loss_gd(obj, theta, lr)),
        "sgd" => {
            let part = partition(obj.n_examples(), batch_size, batches)?;
            py.allow_threads(|| modified_loss_sgd(obj, &part, theta, lr))
        }
        "sgd_expected" => {
            let b = batch_size.ok_or_else(|| bad_input("batch_size", "sgd_expected needs batch_size"))?;
            py.allow_threads(|| modified_loss_sgd_expected(obj, theta, lr, b))
        }
        other => {
            return Err(bad_input(
                "kind",
                format!("unknown modified loss {other:?} (gd, sgd, sgd_expected)"),
            ))
        }
    };
    r.map_err(|e| from_flow("theta", e))
}

/// The exact `E[θ]` after `epochs` epochs of SGD with step `lr` from `theta0`, averaged over `averaging`
/// (`orders`, `partitions`, `with_replacement`): `(mean, sequences, steps_computed)`.
#[pyfunction]
#[pyo3(signature = (model, theta0, lr, epochs=1, averaging="orders", batch_size=None, batches=None, max_sequences=1e8))]
#[allow(clippy::too_many_arguments)]
pub fn sgd_expectation<'py>(
    py: Python<'py>,
    model: PyRef<'py, PyModel>,
    theta0: PyReadonlyArray1<'py, f64>,
    lr: f64,
    epochs: usize,
    averaging: &str,
    batch_size: Option<usize>,
    batches: Option<Vec<Vec<usize>>>,
    max_sequences: f64,
) -> PyResult<(Bound<'py, PyArray1<f64>>, f64, f64)> {
    let m: &PyModel = &model;
    let obj = m.obj();
    let averaging = match averaging {
        "orders" => Averaging::BatchOrders,
        "partitions" => Averaging::Partitions,
        "with_replacement" => Averaging::WithReplacement,
        other => {
            return Err(bad_input(
                "averaging",
                format!("unknown averaging {other:?} (orders, partitions, with_replacement)"),
            ))
        }
    };
    if max_sequences.is_nan() || max_sequences < 1.0 {
        return Err(bad_input(
            "max_sequences",
            format!("must be ≥ 1, got {max_sequences}"),
        ));
    }
    let part = partition(obj.n_examples(), batch_size, batches)?;
    let theta0 = slice(&theta0, "theta0")?;
    let opts = ExactOptions {
        max_sequences,
        ..ExactOptions::default()
    };
    let e = py
        .allow_threads(|| exact_mean(obj, &part, theta0, lr, epochs, averaging, &opts))
        .map_err(|e| from_sgd("theta0", e))?;
    Ok((e.mean.into_pyarray(py), e.sequences, e.steps_computed))
}

/// Most examples of the per-example quadratic of [`sgd_moments`] (its reshuffling program visits `2ᴺ`
/// subsets).
const MAX_MOMENT_EXAMPLES: usize = 20;

/// The means (`(k+1) × d`) and covariances (`(k+1) × d × d`) of the iterates of one epoch.
type MomentArrays<'py> = (Bound<'py, PyArray2<f64>>, Bound<'py, PyArray3<f64>>);

/// Exact mean and covariance of `θ_t`, `t = 0..=N/b`, over one epoch of `process` on the per-example
/// quadratic `ℓ_i(θ) = ½ θᵀA_iθ + b_iᵀθ` (`a`: `N × d × d`, `b`: `N × d`).
#[pyfunction]
#[pyo3(signature = (a, b, theta0, lr, batch_size, process="without_replacement"))]
pub fn sgd_moments<'py>(
    py: Python<'py>,
    a: PyReadonlyArray3<'py, f64>,
    b: PyReadonlyArray2<'py, f64>,
    theta0: PyReadonlyArray1<'py, f64>,
    lr: f64,
    batch_size: usize,
    process: &str,
) -> PyResult<MomentArrays<'py>> {
    let process = match process {
        "without_replacement" => Process::WithoutReplacement,
        "with_replacement" => Process::WithReplacement,
        "noise_isotropic" => Process::NoiseInjected(NoiseShape::Isotropic),
        "noise_diagonal" => Process::NoiseInjected(NoiseShape::Diagonal),
        "noise_full" => Process::NoiseInjected(NoiseShape::Full),
        other => {
            return Err(bad_input(
                "process",
                format!(
                    "unknown process {other:?} (without_replacement, with_replacement, noise_isotropic, noise_diagonal, noise_full)"
                ),
            ))
        }
    };
    let (a, b) = (a.as_array(), b.as_array());
    let (n, d, d2) = a.dim();
    if d != d2 {
        return Err(bad_input(
            "a",
            format!("must be N × d × d, got shape {:?}", a.shape()),
        ));
    }
    if n > MAX_MOMENT_EXAMPLES {
        return Err(bad_input(
            "a",
            format!("{n} examples: the exact moments support at most {MAX_MOMENT_EXAMPLES}"),
        ));
    }
    if b.dim() != (n, d) {
        return Err(bad_input(
            "b",
            format!("must be N × d = {n} × {d}, got shape {:?}", b.shape()),
        ));
    }
    let mats = (0..n)
        .map(|i| DMatrix::from_fn(d, d, |r, c| a[[i, r, c]]))
        .collect();
    let vecs = (0..n).map(|i| DVector::from_fn(d, |r, _| b[[i, r]])).collect();
    let q = Quadratic::new(mats, vecs).map_err(|e| crate::error::from_objective("a", e))?;
    let theta0 = slice(&theta0, "theta0")?;
    let mo = py
        .allow_threads(|| exact_moments(&q, theta0, lr, batch_size, process))
        .map_err(|e| from_reg("theta0", e))?;
    let k = mo.mean.len();
    let means = Array2::from_shape_fn((k, d), |(t, i)| mo.mean[t][i]);
    let covs = Array3::from_shape_fn((k, d, d), |(t, i, j)| mo.cov[t][(i, j)]);
    Ok((means.into_pyarray(py), covs.into_pyarray(py)))
}
