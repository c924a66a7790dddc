//! The depth-2 linear network with one input and one output, `L(a, b) = (σ²/2)(aᵀb − Φ)²`, and its closed
//! forms (`imreg_eos`): invariants, Hessian spectrum, the gradient-flow solution and its limit
//! `λ_GF = √(4Φ² + P₀)`, GD's limit `λ_GD = √(4Φ² + P_∞)`, the step-size regimes and the small-η expansion.
use crate::convert::slice;
use crate::error::from_eos;
use imreg_eos::gradient_flow::GfSolution;
use imreg_eos::{
    classify, gd_trajectory, run_gd, GdOutcome, Regime, RunOptions, ScalarNetState, SmallEtaExpansion,
};
use ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// A state `(a, b) ∈ Rᵏ × Rᵏ` with target `Φ` and data scale `σ²`.
#[pyclass(module = "imreg._imreg", name = "ScalarNet", frozen)]
#[derive(Clone)]
pub struct PyScalarNet {
    state: ScalarNetState,
}

fn wrap(state: ScalarNetState) -> PyScalarNet {
    PyScalarNet { state }
}

#[pymethods]
impl PyScalarNet {
    /// The state `(a, b)` with the loss `(σ²/2)(aᵀb − Φ)²`.
    #[new]
    #[pyo3(signature = (a, b, phi, sigma2=1.0))]
    fn new(a: Vec<f64>, b: Vec<f64>, phi: f64, sigma2: f64) -> PyResult<Self> {
        ScalarNetState::new(a, b, phi)
            .and_then(|s| s.with_sigma2(sigma2))
            .map(wrap)
            .map_err(from_eos)
    }

    /// The data form `(1/2n) Σᵢ (aᵀb xᵢ − yᵢ)²`: `σ² = mean xᵢ²`, `Φ = Σ xᵢyᵢ / Σ xᵢ²`.
    #[staticmethod]
    fn from_data(
        x: PyReadonlyArray1<'_, f64>,
        y: PyReadonlyArray1<'_, f64>,
        a: Vec<f64>,
        b: Vec<f64>,
    ) -> PyResult<Self> {
        let (x, y) = (slice(&x, "x")?, slice(&y, "y")?);
        ScalarNetState::from_data(x, y, a, b).map(wrap).map_err(from_eos)
    }

    #[getter]
    fn a<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.state.a().to_vec().into_pyarray(py)
    }
    #[getter]
    fn b<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.state.b().to_vec().into_pyarray(py)
    }
    #[getter]
    fn phi(&self) -> f64 {
        self.state.phi()
    }
    #[getter]
    fn sigma2(&self) -> f64 {
        self.state.sigma2()
    }
    #[getter]
    fn width(&self) -> usize {
        self.state.width()
    }

    /// `{m, residual, norm, imbalance, s, d, p}` of the canonical loss.
    fn invariants<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let i = self.state.invariants();
        let d = PyDict::new(py);
        for (k, v) in [
            ("m", i.m),
            ("residual", i.residual),
            ("norm", i.norm),
            ("imbalance", i.imbalance),
            ("s", i.s),
            ("d", i.d),
            ("p", i.p),
        ] {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    fn loss(&self) -> f64 {
        self.state.loss()
    }
    fn gradient<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.state.gradient().into_pyarray(py)
    }
    fn hessian<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray2<f64>> {
        let h = self.state.hessian();
        Array2::from_shape_fn(h.shape(), |(i, j)| h[(i, j)]).into_pyarray(py)
    }
    fn hessian_spectrum<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.state.hessian_spectrum().into_pyarray(py)
    }
    fn sharpness(&self) -> f64 {
        self.state.sharpness()
    }
    fn gd_step(&self, lr: f64) -> PyResult<Self> {
        self.state.gd_step(lr).map(wrap).map_err(from_eos)
    }

    /// The closed-form gradient flow at the times `t`: `{lambda_gf, z_star, residual_sq_integral, z,
    /// residual, s_sq, d_sq, norm, a, b, limit}` (`a`, `b` one row per time).
    fn gradient_flow<'py>(
        &self,
        py: Python<'py>,
        t: PyReadonlyArray1<'py, f64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let gf = GfSolution::new(&self.state).map_err(from_eos)?;
        let t = slice(&t, "t")?;
        let series = |f: &dyn Fn(f64) -> f64| t.iter().map(|&s| f(s)).collect::<Vec<_>>().into_pyarray(py);
        let states: Vec<ScalarNetState> = t.iter().map(|&s| gf.state(s)).collect();
        let k = self.state.width();
        let rows = |pick: fn(&ScalarNetState) -> &[f64]| {
            Array2::from_shape_fn((states.len(), k), |(i, j)| pick(&states[i])[j]).into_pyarray(py)
        };
        let d = PyDict::new(py);
        d.set_item("lambda_gf", gf.lambda_gf())?;
        d.set_item("z_star", gf.z_star())?;
        d.set_item("residual_sq_integral", gf.residual_sq_integral())?;
        d.set_item("z", series(&|s| gf.z(s)))?;
        d.set_item("residual", series(&|s| gf.residual(s)))?;
        d.set_item("s_sq", series(&|s| gf.s_sq(s)))?;
        d.set_item("d_sq", series(&|s| gf.d_sq(s)))?;
        d.set_item("norm", series(&|s| gf.norm(s)))?;
        d.set_item("a", rows(ScalarNetState::a))?;
        d.set_item("b", rows(ScalarNetState::b))?;
        d.set_item("limit", wrap(gf.limit()))?;
        Ok(d)
    }

    /// The step-size regime of GD with step `lr` and the thresholds that decide it.
    fn classify<'py>(&self, py: Python<'py>, lr: f64) -> PyResult<Bound<'py, PyDict>> {
        let r = classify(&self.state, lr).map_err(from_eos)?;
        let d = PyDict::new(py);
        d.set_item(
            "regime",
            match r.regime {
                Regime::Stable => "stable",
                Regime::EdgeOfStability => "edge_of_stability",
                Regime::NoStableMinimum => "no_stable_minimum",
                Regime::SaddleLine => "saddle_line",
            },
        )?;
        d.set_item("lambda_gf", r.lambda_gf)?;
        d.set_item("eta_gf_stable", r.eta_gf_stable)?;
        d.set_item("eta_max_stable", r.eta_max_stable)?;
        d.set_item("initial_sharpness", r.initial_sharpness)?;
        d.set_item("catapult", r.catapult)?;
        Ok(d)
    }

    /// GD with step `lr` until `|ε| < tol`, divergence or `max_steps`: the outcome with its numbers.
    #[pyo3(signature = (lr, tol=1e-12, max_steps=400_000, divergence_norm=1e30))]
    fn run_gd<'py>(
        &self,
        py: Python<'py>,
        lr: f64,
        tol: f64,
        max_steps: usize,
        divergence_norm: f64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let opts = RunOptions {
            tol,
            max_steps,
            divergence_norm,
        };
        let state = &self.state;
        let out = py.allow_threads(|| run_gd(state, lr, &opts)).map_err(from_eos)?;
        let d = PyDict::new(py);
        d.set_item("steps", out.steps())?;
        let (outcome, numbers) = match out {
            GdOutcome::Converged {
                lambda_inf,
                lambda_gd,
                p_inf,
                sharpness_inf,
                rate,
                max_eta_eps,
                state,
                ..
            } => {
                d.set_item("state", wrap(state))?;
                let numbers = vec![
                    ("lambda_inf", lambda_inf),
                    ("lambda_gd", lambda_gd),
                    ("p_inf", p_inf),
                    ("sharpness_inf", sharpness_inf),
                    ("rate", rate),
                    ("max_eta_eps", max_eta_eps),
                ];
                ("converged", numbers)
            }
            GdOutcome::Diverged { residual, lambda, .. } => {
                ("diverged", vec![("residual", residual), ("lambda", lambda)])
            }
            GdOutcome::NotConverged {
                residual,
                lambda,
                p,
                max_eta_eps,
                ..
            } => {
                let numbers = vec![
                    ("residual", residual),
                    ("lambda", lambda),
                    ("p", p),
                    ("max_eta_eps", max_eta_eps),
                ];
                ("not_converged", numbers)
            }
            GdOutcome::Saddle {
                line,
                residual,
                lambda,
                ..
            } => {
                d.set_item("line", line)?;
                ("saddle", vec![("residual", residual), ("lambda", lambda)])
            }
        };
        d.set_item("outcome", outcome)?;
        for (k, v) in numbers {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// Up to `steps` GD steps of the (reduced) width-1 state: `{a, b, residual, norm, imbalance}` per step.
    #[pyo3(signature = (lr, steps, divergence_norm=1e30))]
    fn gd_trajectory<'py>(
        &self,
        py: Python<'py>,
        lr: f64,
        steps: usize,
        divergence_norm: f64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let tr = gd_trajectory(&self.state, lr, steps, divergence_norm).map_err(from_eos)?;
        let d = PyDict::new(py);
        d.set_item("a", tr.a.into_pyarray(py))?;
        d.set_item("b", tr.b.into_pyarray(py))?;
        d.set_item("residual", tr.residual.into_pyarray(py))?;
        d.set_item("norm", tr.norm.into_pyarray(py))?;
        d.set_item("imbalance", tr.imbalance.into_pyarray(py))?;
        Ok(d)
    }

    /// The small-η expansion of GD's limit at the steps `lr`: `{lambda_gf, residual_sq_integral, gap_slope,
    /// first_order, exponential}`.
    fn small_lr<'py>(&self, py: Python<'py>, lr: PyReadonlyArray1<'py, f64>) -> PyResult<Bound<'py, PyDict>> {
        let e = SmallEtaExpansion::new(&self.state).map_err(from_eos)?;
        let lr = slice(&lr, "lr")?;
        let d = PyDict::new(py);
        d.set_item("lambda_gf", e.lambda_gf)?;
        d.set_item("residual_sq_integral", e.residual_sq_integral)?;
        d.set_item("gap_slope", e.gap_slope)?;
        let at = |f: &dyn Fn(f64) -> f64| lr.iter().map(|&x| f(x)).collect::<Vec<_>>().into_pyarray(py);
        d.set_item("first_order", at(&|x| e.lambda_gd_first_order(x)))?;
        d.set_item("exponential", at(&|x| e.lambda_gd_exponential(x)))?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!(
            "ScalarNet(k={}, phi={}, sigma2={}, m={})",
            self.state.width(),
            self.state.phi(),
            self.state.sigma2(),
            self.state.m()
        )
    }
}
