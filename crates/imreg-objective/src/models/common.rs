//! Helpers shared by the closed-form models: input validation and a deterministic, chunked, rayon-parallel
//! driver over the examples of a batch.
//!
//! Determinism: a batch is cut into fixed chunks of [`CHUNK`] consecutive batch positions, whatever the
//! thread count. Each chunk is reduced sequentially, and the chunk partial sums are added in chunk order, so
//! the result is bitwise identical for any `RAYON_NUM_THREADS`. A batch of at most one chunk runs on the
//! calling thread.
use crate::batch::Batch;
use crate::error::{ObjectiveError, Result};
use crate::objective::{check_finite, check_len};
use crate::supervised::Targets;
use ndarray::{Array2, ArrayViewMut2};
use rayon::prelude::*;

/// Number of batch positions per chunk of the parallel reductions. Fixed, so results never depend on the
/// thread count.
pub const CHUNK: usize = 256;

/// Rows per parallel task of the per-example driver: small, so that even a sink chunk of a few dozen rows
/// keeps both cores busy (rows are independent, so this does not affect the results).
pub const PER_EXAMPLE_TASK: usize = 32;

/// Validates `θ` (length `p`, finite) and the batch (non-empty, indices `< n`).
pub(crate) fn check_theta_batch(theta: &[f64], p: usize, batch: Batch<'_>, n: usize) -> Result<()> {
    check_len("theta", theta, p)?;
    check_finite("theta", theta)?;
    batch.validate(n)
}

/// Validates a direction vector (length `p`, finite).
pub(crate) fn check_dir(name: &'static str, v: &[f64], p: usize) -> Result<()> {
    check_len(name, v, p)?;
    check_finite(name, v)
}

/// Sums per-example contributions over the batch: `f(start, indices, &mut s, &mut acc)` adds the
/// contributions of the dataset examples `indices` (one chunk: batch positions `start..start + indices.len()`,
/// in batch order) to a scalar `s` and a vector `acc` of length `dim`, both starting at zero. Returns the total `(s, acc)` over the batch; chunks are reduced in a fixed
/// order (see the module doc).
pub(crate) fn chunked_sum<F>(batch: Batch<'_>, n: usize, dim: usize, f: F) -> Result<(f64, Vec<f64>)>
where
    F: Fn(usize, &[usize], &mut f64, &mut [f64]) -> Result<()> + Sync,
{
    let len = batch.len(n);
    let run = |c: usize| -> Result<(f64, Vec<f64>)> {
        let ix = batch.slice(c * CHUNK, ((c + 1) * CHUNK).min(len));
        let mut s = 0.0;
        let mut acc = vec![0.0; dim];
        f(c * CHUNK, &ix, &mut s, &mut acc)?;
        Ok((s, acc))
    };
    let chunks = len.div_ceil(CHUNK);
    if chunks <= 1 {
        return run(0);
    }
    let parts: Vec<Result<(f64, Vec<f64>)>> = (0..chunks).into_par_iter().map(run).collect();
    let mut s = 0.0;
    let mut acc = vec![0.0; dim];
    for part in parts {
        let (ps, pa) = part?;
        s += ps;
        acc.iter_mut().zip(&pa).for_each(|(a, b)| *a += b);
    }
    Ok((s, acc))
}

/// The per-example gradient driver behind every closed-form model's `per_example_grads`: streams the batch
/// in sink chunks of at most `chunk` rows; within a sink chunk, `fill(indices, rows)` writes the gradients
/// of the dataset examples `indices` into the rows of `rows` (`indices.len() × p`), in tasks of
/// [`PER_EXAMPLE_TASK`] rows filled in parallel. Rows are independent, so the result does not depend on the thread
/// count.
pub(crate) fn per_example_driver<F>(
    batch: Batch<'_>,
    n: usize,
    p: usize,
    chunk: usize,
    fill: F,
    sink: &mut dyn FnMut(usize, ndarray::ArrayView2<'_, f64>) -> Result<()>,
) -> Result<()>
where
    F: Fn(&[usize], ArrayViewMut2<'_, f64>) -> Result<()> + Sync,
{
    let len = batch.len(n);
    let chunk = chunk.max(1);
    let mut buf = Array2::<f64>::zeros((chunk.min(len), p));
    let mut start = 0;
    while start < len {
        let end = (start + chunk).min(len);
        let ix = batch.slice(start, end);
        let mut rows = buf.slice_mut(ndarray::s![..end - start, ..]);
        if ix.len() <= PER_EXAMPLE_TASK {
            fill(&ix, rows.view_mut())?;
        } else {
            let results: Vec<Result<()>> = rows
                .axis_chunks_iter_mut(ndarray::Axis(0), PER_EXAMPLE_TASK)
                .into_par_iter()
                .zip(ix.par_chunks(PER_EXAMPLE_TASK))
                .map(|(sub, sub_ix)| fill(sub_ix, sub))
                .collect();
            results.into_iter().collect::<Result<Vec<()>>>()?;
        }
        sink(start, buf.slice(ndarray::s![..end - start, ..]))?;
        start = end;
    }
    Ok(())
}

/// `Σ_j a_j b_j`.
#[inline]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `acc += alpha · x`.
#[inline]
pub(crate) fn axpy(alpha: f64, x: &[f64], acc: &mut [f64]) {
    acc.iter_mut().zip(x).for_each(|(a, xi)| *a += alpha * xi);
}

/// Validates real-valued targets of a supervised call: `nb × c` and finite; label targets are
/// [`ObjectiveError::Unsupported`] by `model`.
pub(crate) fn value_targets<'t>(
    targets: Targets<'t>,
    nb: usize,
    c: usize,
    model: &str,
) -> Result<ndarray::ArrayView2<'t, f64>> {
    match targets {
        Targets::Values(v) => {
            if v.dim() != (nb, c) {
                return Err(ObjectiveError::Shape {
                    what: "targets".into(),
                    expected: format!("{nb} × {c}"),
                    got: format!("{} × {}", v.nrows(), v.ncols()),
                });
            }
            if let Some((k, &value)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
                return Err(ObjectiveError::NonFinite {
                    what: "targets".into(),
                    index: k,
                    value,
                });
            }
            Ok(v)
        }
        Targets::Labels(_) => Err(ObjectiveError::Unsupported {
            what: "label targets".into(),
            model: model.into(),
        }),
    }
}
