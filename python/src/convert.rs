//! Conversions at the boundary: numpy arrays in (borrowed, no copy, when C-contiguous f64), JSON-shaped
//! reports out as Python dicts, lists and floats.
use crate::error::bad_input;
use numpy::{PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde::Serialize;

/// The contiguous data of a 1-D float64 array, borrowed from numpy (the Python layer passes
/// `np.ascontiguousarray(a, dtype=np.float64)`, which copies only when it must).
pub fn slice<'a>(a: &'a PyReadonlyArray1<'_, f64>, field: &str) -> PyResult<&'a [f64]> {
    a.as_slice()
        .map_err(|_| bad_input(field, "must be a C-contiguous float64 array"))
}

/// A 2-D float64 array as an owned `ndarray` (the objectives own their data).
pub fn matrix(a: &PyReadonlyArray2<'_, f64>) -> ndarray::Array2<f64> {
    a.as_array().to_owned()
}

/// A serializable value as Python objects (dicts, lists, floats, ints, strings, bools, None).
pub fn to_py<'py, T: Serialize>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    let v = serde_json::to_value(value).map_err(|e| crate::error::failed("report", e))?;
    json_to_py(py, &v)
}

fn json_to_py<'py>(py: Python<'py>, v: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    use serde_json::Value;
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => u.into_pyobject(py)?.into_any(),
            (None, Some(i)) => i.into_pyobject(py)?.into_any(),
            _ => n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        Value::String(s) => s.into_pyobject(py)?.into_any(),
        Value::Array(a) => {
            let items = a
                .iter()
                .map(|x| json_to_py(py, x))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
        Value::Object(o) => {
            let d = PyDict::new(py);
            for (k, x) in o {
                d.set_item(k, json_to_py(py, x)?)?;
            }
            d.into_any()
        }
    })
}
