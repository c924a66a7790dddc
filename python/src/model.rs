//! `imreg.Model`: an objective `C_B(θ) = (1/|B|) Σ_{i∈B} ℓ_i(θ)` built from a `[model]` table (as in an
//! experiment config) and numpy data, and the curvature quantities `imreg analyze` reports, through the same
//! library calls (`imreg_cli::spectrum`, `imreg_cli::density`, `imreg_spectra`).
use crate::convert::{matrix, slice, to_py};
use crate::error::{bad_input, failed, from_cli, from_objective, from_spectra};
use imreg_cli::config::ModelConfig;
use imreg_cli::data::{Dataset, STREAM_BATCHES};
use imreg_cli::model::Model;
use imreg_cli::network::pytorch_init;
use imreg_cli::quantities::SolverOptions;
use imreg_cli::spectrum::{
    batch_expectation, gradient_traces_on, hessian_extremes, lambda_k1_on, mini_batch_sharpness,
    operator_trace, ExtremeOptions, Reported,
};
use imreg_objective::data::weights::NamedTensor;
use imreg_objective::models::NetworkObjective;
use imreg_objective::{Batch, Objective};
use imreg_spectra::{batch_sharpness, hutchinson, HessianOperator, StopRule, TraceOptions};
use ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::Path;

/// Most entries a dense matrix returned to Python may hold (a 4096 × 4096 Hessian, 128 MiB).
const MAX_DENSE_ENTRIES: usize = 1 << 24;

/// Where errors of model building point: the Python call, not a file.
const HERE: &str = "<python>";

/// A model with its data, ready for curvature queries.
#[pyclass(module = "imreg._imreg", name = "Model")]
pub struct PyModel {
    model: Model,
    config: ModelConfig,
}

fn batch_of(batch: &Option<Vec<usize>>) -> Batch<'_> {
    match batch {
        Some(ix) => Batch::Indices(ix),
        None => Batch::Full,
    }
}

fn reported<'py>(py: Python<'py>, r: &Reported) -> PyResult<Bound<'py, PyAny>> {
    to_py(py, r)
}

impl PyModel {
    pub(crate) fn obj(&self) -> &dyn Objective {
        self.model.objective()
    }

    /// `f(H_B(θ))` with the GIL released: the Hessian operator of the batch (its forward pass prepared once)
    /// handed to a library call.
    fn on_hessian<T: Send>(
        &self,
        py: Python<'_>,
        theta: &[f64],
        batch: &Option<Vec<usize>>,
        f: impl for<'h> FnOnce(&HessianOperator<'h, dyn Objective + 'h>) -> imreg_spectra::Result<T> + Send,
    ) -> PyResult<T> {
        py.allow_threads(|| f(&HessianOperator::new(self.obj(), theta, batch_of(batch))?))
            .map_err(|e| from_spectra("theta", e))
    }
}

#[pymethods]
impl PyModel {
    /// Builds the model of `config` (the JSON of a `[model]` table: `{"kind": "network", "preset":
    /// "cnn-relu", "loss": "cross_entropy"}`) on inputs `x` (`N × d`) with either class `labels` (and
    /// `classes`) or real `targets` (`N × outputs`); data-free models (`quadratic`, `scalar_net` with `phi`)
    /// take no data. `seed` seeds a random quadratic.
    #[staticmethod]
    #[pyo3(signature = (config, x=None, targets=None, labels=None, classes=None, seed=0))]
    fn build(
        py: Python<'_>,
        config: &str,
        x: Option<PyReadonlyArray2<'_, f64>>,
        targets: Option<PyReadonlyArray2<'_, f64>>,
        labels: Option<Vec<usize>>,
        classes: Option<usize>,
        seed: u64,
    ) -> PyResult<Self> {
        let config: ModelConfig =
            serde_json::from_str(config).map_err(|e| bad_input("model", e.to_string()))?;
        let data = match (x, targets, labels) {
            (None, None, None) => None,
            (Some(x), Some(y), None) => {
                let (x, y) = (matrix(&x), matrix(&y));
                if y.nrows() != x.nrows() {
                    return Err(bad_input(
                        "y",
                        format!("has {} rows, x has {}", y.nrows(), x.nrows()),
                    ));
                }
                Some(Dataset { x, y, classes: None })
            }
            (Some(x), None, Some(labels)) => {
                let x = matrix(&x);
                if labels.len() != x.nrows() {
                    return Err(bad_input(
                        "y",
                        format!("has {} labels, x has {} rows", labels.len(), x.nrows()),
                    ));
                }
                let seen = labels.iter().max().map_or(0, |m| m + 1);
                let classes = classes.unwrap_or(seen.max(2));
                if let Some((i, l)) = labels.iter().enumerate().find(|(_, &l)| l >= classes) {
                    return Err(bad_input(
                        "y",
                        format!("label {l} at example {i} is out of range for {classes} classes"),
                    ));
                }
                let y = Array2::from_shape_fn((labels.len(), 1), |(i, _)| labels[i] as f64);
                Some(Dataset {
                    x,
                    y,
                    classes: Some(classes),
                })
            }
            (None, _, _) => return Err(bad_input("x", "targets or labels were given without inputs x")),
            (Some(_), _, _) => {
                return Err(bad_input(
                    "y",
                    "give the inputs x with either class labels or real targets",
                ))
            }
        };
        if data.is_none() && !config.data_free() {
            return Err(bad_input(
                "x",
                format!("model {} needs data (x and y)", config.kind()),
            ));
        }
        let model = py
            .allow_threads(|| Model::build(&config, data.as_ref(), Path::new(HERE), seed))
            .map_err(from_cli)?;
        Ok(PyModel { model, config })
    }

    /// The model's `kind` (`network`, `mlp`, `linear_regression`, …).
    #[getter]
    fn kind(&self) -> &'static str {
        self.config.kind()
    }

    /// The objective's name with its loss convention.
    #[getter]
    fn name(&self) -> String {
        self.obj().name()
    }

    /// Number of parameters `p`.
    #[getter]
    fn p(&self) -> usize {
        self.obj().dim()
    }

    /// Number of examples `N`.
    #[getter]
    fn n(&self) -> usize {
        self.obj().n_examples()
    }

    /// The parameter tensors in `θ` order: `[(name, shape), …]` with PyTorch `state_dict` names.
    fn layout(&self) -> Vec<(String, Vec<usize>)> {
        self.model
            .layout()
            .into_iter()
            .map(|t| (t.name, t.shape))
            .collect()
    }

    /// The `[model]` table as JSON.
    fn config_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.config).map_err(|e| failed("model", e))
    }

    /// The network's description (`NetworkSpec`) as JSON, or `None` for the other kinds.
    fn spec_json(&self) -> PyResult<Option<String>> {
        match &self.model {
            Model::Network(m, _) => {
                serde_json::to_string(imreg_objective::models::SpecNetwork::spec(m.network()))
                    .map(Some)
                    .map_err(|e| failed("spec", e))
            }
            _ => Ok(None),
        }
    }

    /// PyTorch's default initialization of a network times `scale` (weights and biases
    /// `U(−1/√fan_in, 1/√fan_in)`, norms `γ = 1`, `β = 0`), drawn from `seed`.
    #[pyo3(signature = (seed=0, scale=1.0))]
    fn pytorch_init<'py>(
        &self,
        py: Python<'py>,
        seed: u64,
        scale: f64,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        match &self.model {
            Model::Network(m, _) => Ok(pytorch_init(m.network(), seed, scale).into_pyarray(py)),
            _ => Err(bad_input(
                "model",
                format!("pytorch_init is defined for networks, not {}", self.config.kind()),
            )),
        }
    }

    /// Reads `θ` from a `.safetensors` state dict (strictly by name and shape; a network's batch-norm running
    /// statistics are set) or a flat `.npy` file.
    fn load_weights<'py>(
        &mut self,
        py: Python<'py>,
        path: std::path::PathBuf,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let model = &mut self.model;
        let theta = py
            .allow_threads(|| model.load_theta(&path, "path"))
            .map_err(from_cli)?;
        Ok(theta.into_pyarray(py))
    }

    /// `θ` from named tensors `[(name, shape, flat data), …]` (a `state_dict`), strictly by name and shape;
    /// a network's batch-norm running statistics are set.
    fn load_tensors<'py>(
        &mut self,
        py: Python<'py>,
        tensors: Vec<(String, Vec<usize>, PyReadonlyArray1<'py, f64>)>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let mut named: Vec<NamedTensor> = Vec::with_capacity(tensors.len());
        for (name, shape, data) in &tensors {
            let values = slice(data, name)?.to_vec();
            let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if numel != Some(values.len()) {
                return Err(bad_input(
                    name,
                    format!("shape {shape:?} does not hold its {} values", values.len()),
                ));
            }
            named.push((name.clone(), shape.clone(), values));
        }
        let theta = match &mut self.model {
            Model::Network(m, _) => {
                let mut net = m.network().clone();
                let theta = net
                    .load_state_dict(&named)
                    .map_err(|e| bad_input("state_dict", e))?;
                *m = NetworkObjective::new(net, *m.loss_fn(), m.inputs().clone(), m.targets().clone())
                    .map_err(|e| bad_input("state_dict", e))?;
                theta
            }
            model => flat_from_layout(model, &named)?,
        };
        Ok(theta.into_pyarray(py))
    }

    /// `C_B(θ) = (1/|B|) Σ_{i∈B} ℓ_i(θ)` (the full data when `batch` is `None`).
    #[pyo3(signature = (theta, batch=None))]
    fn loss(
        &self,
        py: Python<'_>,
        theta: PyReadonlyArray1<'_, f64>,
        batch: Option<Vec<usize>>,
    ) -> PyResult<f64> {
        let theta = slice(&theta, "theta")?;
        py.allow_threads(|| self.obj().loss(theta, batch_of(&batch)))
            .map_err(|e| from_objective("theta", e))
    }

    /// A network's outputs `f_θ(x_i)` (logits), one row per example of the batch.
    #[pyo3(signature = (theta, batch=None))]
    fn outputs<'py>(
        &self,
        py: Python<'py>,
        theta: PyReadonlyArray1<'py, f64>,
        batch: Option<Vec<usize>>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let Model::Network(m, _) = &self.model else {
            return Err(bad_input(
                "model",
                format!("outputs are defined for networks, not {}", self.config.kind()),
            ));
        };
        let theta = slice(&theta, "theta")?;
        py.allow_threads(|| m.outputs(theta, batch_of(&batch)))
            .map(|o| o.into_pyarray(py))
            .map_err(|e| from_objective("theta", e))
    }

    /// `(C_B(θ), ∇C_B(θ))`.
    #[pyo3(signature = (theta, batch=None))]
    fn loss_grad<'py>(
        &self,
        py: Python<'py>,
        theta: PyReadonlyArray1<'py, f64>,
        batch: Option<Vec<usize>>,
    ) -> PyResult<(f64, Bound<'py, PyArray1<f64>>)> {
        let theta = slice(&theta, "theta")?;
        let mut g = vec![0.0; self.obj().dim()];
        let loss = py
            .allow_threads(|| self.obj().loss_grad(theta, batch_of(&batch), &mut g))
            .map_err(|e| from_objective("theta", e))?;
        Ok((loss, g.into_pyarray(py)))
    }

    /// `H_B(θ) v = ∇²C_B(θ) v`, exact (forward-over-reverse).
    #[pyo3(signature = (theta, v, batch=None))]
    fn hvp<'py>(
        &self,
        py: Python<'py>,
        theta: PyReadonlyArray1<'py, f64>,
        v: PyReadonlyArray1<'py, f64>,
        batch: Option<Vec<usize>>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let (theta, v) = (slice(&theta, "theta")?, slice(&v, "v")?);
        py.allow_threads(|| self.obj().hvp_vec(theta, batch_of(&batch), v))
            .map(|h| h.into_pyarray(py))
            .map_err(|e| from_objective("theta", e))
    }

    /// The dense Hessian `H_B(θ)` from `p` HVPs, symmetrized (`p² ≤ 2²⁴`).
    #[pyo3(signature = (theta, batch=None))]
    fn hessian<'py>(
        &self,
        py: Python<'py>,
        theta: PyReadonlyArray1<'py, f64>,
        batch: Option<Vec<usize>>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let p = self.obj().dim();
        if p.checked_mul(p).is_none_or(|e| e > MAX_DENSE_ENTRIES) {
            return Err(bad_input(
                "theta",
                format!("a dense Hessian of p = {p} parameters exceeds {MAX_DENSE_ENTRIES} entries; use hvp or eigenvalues"),
            ));
        }
        let theta = slice(&theta, "theta")?;
        let h = py
            .allow_threads(|| self.obj().dense_hessian(theta, batch_of(&batch)))
            .map_err(|e| from_objective("theta", e))?;
        Ok(Array2::from_shape_fn((p, p), |(i, j)| h[(i, j)]).into_pyarray(py))
    }

    /// The per-example gradients `∇ℓ_i(θ)`, one row per example of the batch (`|B| · p ≤ 2²⁴`).
    #[pyo3(signature = (theta, batch=None))]
    fn per_example_gradients<'py>(
        &self,
        py: Python<'py>,
        theta: PyReadonlyArray1<'py, f64>,
        batch: Option<Vec<usize>>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let (p, n) = (self.obj().dim(), self.obj().n_examples());
        let b = batch_of(&batch);
        let rows = b.len(n);
        if rows.checked_mul(p).is_none_or(|e| e > MAX_DENSE_ENTRIES) {
            return Err(bad_input(
                "batch",
                format!(
                    "{rows} gradients of p = {p} exceed {MAX_DENSE_ENTRIES} entries; pass a smaller batch"
                ),
            ));
        }
        let theta = slice(&theta, "theta")?;
        let mut out = Array2::<f64>::zeros((rows, p));
        py.allow_threads(|| {
            self.obj().per_example_grads(theta, b, 256, &mut |start, g| {
                out.slice_mut(ndarray::s![start..start + g.nrows(), ..])
                    .assign(&g);
                Ok(())
            })
        })
        .map_err(|e| from_objective("theta", e))?;
        Ok(out.into_pyarray(py))
    }

    /// The `top` largest and `bottom` smallest eigenvalues of `H_B(θ)`: dense (exact) for `p ≤ dense_max_p`,
    /// Lanczos with full reorthogonalization otherwise (start vector from `seed`, stop when every wanted
    /// Ritz pair has `‖Hy − θy‖ ≤ tol · max|θ|`, or with `stop = "eigenvalue"` its eigenvalue bound
    /// `min(r, r²/δ̂) ≤ tol · max|θ|`), with eigenvectors when `vectors`.
    #[pyo3(signature = (theta, top=1, bottom=0, batch=None, vectors=false, seed=0, dense_max_p=400, max_iter=300, tol=1e-8, stop="residual"))]
    #[allow(clippy::too_many_arguments)]
    fn eigen<'py>(
        &self,
        py: Python<'py>,
        theta: PyReadonlyArray1<'py, f64>,
        top: usize,
        bottom: usize,
        batch: Option<Vec<usize>>,
        vectors: bool,
        seed: u64,
        dense_max_p: usize,
        max_iter: usize,
        tol: f64,
        stop: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let stop = match stop {
            "residual" => StopRule::Residual,
            "eigenvalue" => StopRule::Eigenvalue,
            other => {
                return Err(bad_input(
                    "stop",
                    format!("unknown stop rule {other:?} (residual, eigenvalue)"),
                ))
            }
        };
        let solver = SolverOptions {
            lanczos_max_iter: max_iter,
            lanczos_tol: tol,
            ..SolverOptions::default()
        };
        solver.validate().map_err(from_cli)?;
        if top + bottom == 0 {
            return Err(bad_input(
                "top",
                "ask for at least one eigenvalue (top + bottom ≥ 1)",
            ));
        }
        let theta = slice(&theta, "theta")?;
        let opts = ExtremeOptions {
            dense_max_p,
            max_iter,
            tol,
            stop,
            vectors,
        };
        let e = py
            .allow_threads(|| hessian_extremes(self.obj(), theta, batch_of(&batch), top, bottom, seed, &opts))
            .map_err(|e| from_spectra("theta", e))?;
        let d = to_py(py, &e)?.downcast_into::<PyDict>()?;
        let k_top = e.top.len();
        let p = self.obj().dim();
        let stack =
            |vs: &[Vec<f64>]| Array2::from_shape_fn((vs.len(), p), |(i, j)| vs[i][j]).into_pyarray(py);
        if vectors {
            d.set_item("top_vectors", stack(&e.vectors[..k_top.min(e.vectors.len())]))?;
            d.set_item("bottom_vectors", stack(&e.vectors[k_top.min(e.vectors.len())..]))?;
        }
        Ok(d)
    }

    /// `Tr H_B(θ)`: `method = "auto"` is exact over the `p` unit vectors for `p ≤ exact_max_p` and Hutch++
    /// with `matvecs` HVPs (default 60, as `imreg analyze --trace-matvecs`) and its standard error above; `"exact"`, `"hutch++"` and
    /// `"hutchinson"` (`(1/m) Σ_k z_kᵀHz_k`, Rademacher `z_k`, `matvecs` probes) force one.
    #[pyo3(signature = (theta, batch=None, method="auto", seed=0, exact_max_p=imreg_cli::spectrum::DENSE_MAX_P, matvecs=None))]
    #[allow(clippy::too_many_arguments)]
    fn trace<'py>(
        &self,
        py: Python<'py>,
        theta: PyReadonlyArray1<'py, f64>,
        batch: Option<Vec<usize>>,
        method: &str,
        seed: u64,
        exact_max_p: usize,
        matvecs: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let matvecs = matvecs.unwrap_or(TraceOptions::default().matvecs);
        let theta = slice(&theta, "theta")?;
        let limit = match method {
            "auto" => exact_max_p,
            "exact" => usize::MAX,
            "hutch++" | "hutchinson" => 0,
            other => {
                return Err(bad_input(
                    "method",
                    format!("unknown trace method {other:?} (auto, exact, hutch++, hutchinson)"),
                ))
            }
        };
        if !(1..=imreg_cli::quantities::MAX_KNOB).contains(&matvecs) {
            return Err(bad_input(
                "matvecs",
                format!(
                    "must lie in 1..={}, got {matvecs}",
                    imreg_cli::quantities::MAX_KNOB
                ),
            ));
        }
        let r = self.on_hessian(py, theta, &batch, |h| {
            if method == "hutchinson" {
                let t = hutchinson(h, &TraceOptions { seed, matvecs })?;
                Ok(Reported::estimate(t.to_estimate(), "probes"))
            } else {
                operator_trace(h, seed, limit, matvecs)
            }
        })?;
        reported(py, &r)
    }

    /// The SLQ spectral density of `H_B(θ)` (`imreg analyze --quantities density`): `probes` Rademacher
    /// probes × `steps` Lanczos steps, Gauss nodes and weights pooled, smoothed with a Gaussian of width
    /// `sigma` relative to the nodes' range on `points` grid points, and `Tr H ≈ p ∫λ dμ` with its SE.
    #[pyo3(signature = (theta, batch=None, probes=10, steps=80, points=400, sigma=0.01, seed=0))]
    #[allow(clippy::too_many_arguments)]
    fn density<'py>(
        &self,
        py: Python<'py>,
        theta: PyReadonlyArray1<'py, f64>,
        batch: Option<Vec<usize>>,
        probes: usize,
        steps: usize,
        points: usize,
        sigma: f64,
        seed: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let opts = SolverOptions {
            slq_probes: probes,
            slq_steps: steps,
            density_points: points,
            density_sigma: sigma,
            ..SolverOptions::default()
        };
        opts.validate().map_err(from_cli)?;
        let theta = slice(&theta, "theta")?;
        let d = self.on_hessian(py, theta, &batch, |h| imreg_cli::density::density(h, &opts, seed))?;
        to_py(py, &d)
    }

    /// Batch sharpness at batch size `b`, both published variants from the same batches:
    /// `E_B[g_BᵀH_Bg_B / ‖g_B‖²]` (mean of ratios) and `E_B[g_BᵀH_Bg_B] / E_B[‖g_B‖²]` (ratio of means),
    /// over the batches of `estimation` ([`Estimation`]).
    fn batch_sharpness<'py>(
        &self,
        py: Python<'py>,
        theta: PyReadonlyArray1<'py, f64>,
        estimation: Estimation,
    ) -> PyResult<Bound<'py, PyDict>> {
        let mode = estimation.mode(self.obj().n_examples())?;
        let theta = slice(&theta, "theta")?;
        let b = estimation.batch_size;
        let s = py
            .allow_threads(|| batch_sharpness(self.obj(), theta, Batch::Full, b, &mode))
            .map_err(|e| from_spectra("theta", e))?;
        let d = PyDict::new(py);
        d.set_item(
            "mean_of_ratios",
            reported(py, &Reported::estimate(s.mean_of_ratios, "batches"))?,
        )?;
        d.set_item(
            "ratio_of_means",
            reported(py, &Reported::estimate(s.ratio_of_means, "batches"))?,
        )?;
        Ok(d)
    }

    /// MiniBS `E_B[λ_max(H_B)]` over the size-`b` batches of `estimation` (EoSS v1); each `λ_max(H_B)` by
    /// Lanczos (at most 100 steps, tolerance 1e-8).
    fn mini_batch_sharpness<'py>(
        &self,
        py: Python<'py>,
        theta: PyReadonlyArray1<'py, f64>,
        estimation: Estimation,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mode = estimation.mode(self.obj().n_examples())?;
        let theta = slice(&theta, "theta")?;
        let (b, seed) = (estimation.batch_size, estimation.seed);
        let e = py
            .allow_threads(|| mini_batch_sharpness(self.obj(), theta, b, &mode, seed))
            .map_err(|e| from_spectra("theta", e))?;
        reported(py, &Reported::estimate(e, "batches"))
    }

    /// `Tr K` and `Tr F` on the batch, exact in one pass over its per-example gradients:
    /// `K = (1/|B|) Σ (g_i − ḡ)(g_i − ḡ)ᵀ` (the gradient covariance; `Tr K` is Smith et al.'s `Γ`) and the
    /// empirical Fisher `F = (1/|B|) Σ g_i g_iᵀ`.
    #[pyo3(signature = (theta, batch=None))]
    fn gradient_traces<'py>(
        &self,
        py: Python<'py>,
        theta: PyReadonlyArray1<'py, f64>,
        batch: Option<Vec<usize>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let theta = slice(&theta, "theta")?;
        let (k, f) = py
            .allow_threads(|| gradient_traces_on(self.obj(), theta, batch_of(&batch)))
            .map_err(|e| from_spectra("theta", e))?;
        let d = PyDict::new(py);
        d.set_item("trace_k", reported(py, &k)?)?;
        d.set_item("trace_f", reported(py, &f)?)?;
        Ok(d)
    }

    /// `λ_K¹`, the top eigenvalue of the gradient covariance `K` on the batch (dense `|B| × |B|` Gram matrix
    /// when `|B| < p`, dense `p × p` for small `p`, Lanczos otherwise), as `imreg analyze`.
    #[pyo3(signature = (theta, batch=None, seed=0))]
    fn lambda_k1<'py>(
        &self,
        py: Python<'py>,
        theta: PyReadonlyArray1<'py, f64>,
        batch: Option<Vec<usize>>,
        seed: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let theta = slice(&theta, "theta")?;
        let r = py
            .allow_threads(|| lambda_k1_on(self.obj(), theta, batch_of(&batch), seed))
            .map_err(|e| from_spectra("theta", e))?;
        reported(py, &r)
    }

    /// The per-layer blocks `H_bb` of `H_B(θ)` (`imreg analyze --quantities blocks`): per module its
    /// tensors, range in `θ`, `Tr H_bb` (exact for blocks of at most `exact_max_p` parameters, else Hutch++
    /// with `matvecs` HVPs) and `λ_max(H_bb)` (dense up to `dense_max_p`, else Lanczos).
    #[pyo3(signature = (theta, batch=None, seed=0, exact_max_p=imreg_cli::spectrum::DENSE_MAX_P, dense_max_p=imreg_cli::spectrum::DENSE_MAX_P, matvecs=None))]
    #[allow(clippy::too_many_arguments)]
    fn blocks<'py>(
        &self,
        py: Python<'py>,
        theta: PyReadonlyArray1<'py, f64>,
        batch: Option<Vec<usize>>,
        seed: u64,
        exact_max_p: usize,
        dense_max_p: usize,
        matvecs: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let opts = SolverOptions {
            dense_max_p,
            trace_matvecs: matvecs.unwrap_or(SolverOptions::default().trace_matvecs),
            ..SolverOptions::default()
        };
        opts.validate().map_err(from_cli)?;
        let theta = slice(&theta, "theta")?;
        let layout = self.model.layout();
        let b = self.on_hessian(py, theta, &batch, |h| {
            imreg_cli::layers::blocks(h, &layout, &opts, exact_max_p, seed)
        })?;
        to_py(py, &b)
    }

    /// `diag H_B(θ)`: exact from the `p` unit vectors for `p ≤ exact_max_p`, else Hutchinson's estimate
    /// `d_i = (1/m) Σ_k z_k,i (H z_k)_i` from `probes` Rademacher probes with a standard error per entry.
    /// Returns `(values, std_errors, probes or None)`.
    #[pyo3(signature = (theta, batch=None, seed=0, exact_max_p=imreg_cli::spectrum::DENSE_MAX_P, probes=100))]
    #[allow(clippy::type_complexity)]
    fn hessian_diagonal<'py>(
        &self,
        py: Python<'py>,
        theta: PyReadonlyArray1<'py, f64>,
        batch: Option<Vec<usize>>,
        seed: u64,
        exact_max_p: usize,
        probes: usize,
    ) -> PyResult<(
        Bound<'py, PyArray1<f64>>,
        Bound<'py, PyArray1<f64>>,
        Option<usize>,
    )> {
        let opts = SolverOptions {
            diagonal_probes: probes,
            ..SolverOptions::default()
        };
        opts.validate().map_err(from_cli)?;
        let theta = slice(&theta, "theta")?;
        let d = self.on_hessian(py, theta, &batch, |h| {
            imreg_cli::layers::diagonal(h, &opts, exact_max_p, seed)
        })?;
        Ok((d.values.into_pyarray(py), d.std_errors.into_pyarray(py), d.probes))
    }

    /// The `p × p` operator `v ↦ H_B(θ) v` applied to the columns of `vs` (`k × p` rows in, `k × p` out): many
    /// HVPs at one point with the forward pass prepared once.
    #[pyo3(signature = (theta, vs, batch=None))]
    fn hvps<'py>(
        &self,
        py: Python<'py>,
        theta: PyReadonlyArray1<'py, f64>,
        vs: PyReadonlyArray2<'py, f64>,
        batch: Option<Vec<usize>>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let theta = slice(&theta, "theta")?;
        let p = self.obj().dim();
        let vs = vs.as_array();
        if vs.ncols() != p {
            return Err(bad_input(
                "vs",
                format!("has {} columns, expected p = {p}", vs.ncols()),
            ));
        }
        let mut out = Array2::<f64>::zeros(vs.raw_dim());
        let vs = vs.to_owned();
        self.on_hessian(py, theta, &batch, |h| {
            for (row, mut o) in vs.rows().into_iter().zip(out.rows_mut()) {
                let v = row.to_vec();
                let mut r = vec![0.0; p];
                imreg_spectra::apply_checked(h, &v, &mut r)?;
                o.assign(&ndarray::ArrayView1::from(&r));
            }
            Ok(())
        })?;
        Ok(out.into_pyarray(py))
    }
}

/// How an expectation over size-`b` batches is computed, a dict filled by the Python layer: exact over
/// all `C(N, b)` batches when there are at most `max_exact`, else Monte Carlo (batches from `seed` as
/// `imreg analyze` draws them, at most `mc_batches`, stop at relative SE `mc_rel_se`).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub struct Estimation {
    batch_size: usize,
    seed: u64,
    max_exact: u64,
    mc_batches: usize,
    mc_rel_se: f64,
}

impl Estimation {
    /// The batch expectation of `imreg analyze` on `n` examples, its knobs checked.
    fn mode(&self, n: usize) -> PyResult<imreg_spectra::BatchExpectation> {
        let b = self.batch_size;
        if b == 0 || b > n {
            return Err(bad_input("batch_size", format!("must lie in 1..={n}, got {b}")));
        }
        let est = imreg_cli::analyze::BatchEstimation {
            max_exact: self.max_exact,
            mc_batches: self.mc_batches,
            mc_rel_se: self.mc_rel_se,
        };
        est.validate().map_err(from_cli)?;
        Ok(batch_expectation(
            self.seed ^ STREAM_BATCHES,
            self.max_exact,
            self.mc_batches,
            self.mc_rel_se,
        ))
    }
}

/// `θ` of a non-network model from named tensors, in layout order, strictly by name and shape.
fn flat_from_layout(model: &Model, tensors: &[NamedTensor]) -> PyResult<Vec<f64>> {
    let layout = model.layout();
    let mut theta = Vec::new();
    for t in &layout {
        let Some((_, shape, values)) = tensors.iter().find(|(n, _, _)| *n == t.name) else {
            return Err(bad_input(
                &t.name,
                format!(
                    "tensor (expected shape {:?}) is missing from the state dict",
                    t.shape
                ),
            ));
        };
        if *shape != t.shape {
            return Err(bad_input(
                &t.name,
                format!("expected shape {:?}, found {shape:?}", t.shape),
            ));
        }
        theta.extend_from_slice(values);
    }
    if let Some((name, shape, _)) = tensors
        .iter()
        .find(|(n, _, _)| !layout.iter().any(|t| t.name == *n))
    {
        return Err(bad_input(
            name,
            format!("unexpected tensor (shape {shape:?}) in the state dict"),
        ));
    }
    Ok(theta)
}
