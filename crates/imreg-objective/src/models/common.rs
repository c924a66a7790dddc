//! Helpers shared by the closed-form models: input validation and a deterministic, chunked, rayon-parallel
//! driver over the examples of a batch.
//!
//! Determinism: a batch is cut into chunks of [`chunk_len`] consecutive batch positions, a function of the
//! batch length only, whatever the thread count. Each chunk is reduced sequentially, and the chunk partial
//! sums are added in chunk order, so the result is bitwise identical for any `RAYON_NUM_THREADS`. A batch of
//! at most one chunk runs on the calling thread.
use crate::batch::Batch;
use crate::error::{ObjectiveError, Result};
use crate::supervised::Targets;
use ndarray::{Array2, ArrayViewMut2};
use rayon::prelude::*;

/// Smallest chunk of the parallel reductions (a batch of at most this many positions is one chunk).
pub const MIN_CHUNK: usize = 128;
/// Largest chunk of the parallel reductions.
pub const MAX_CHUNK: usize = 512;

/// Batch positions per chunk of the parallel reductions: half the batch, clamped to
/// [[`MIN_CHUNK`], [`MAX_CHUNK`]]. It depends on the batch length only, never on the thread count, so results
/// are bitwise reproducible. Two chunks keep two cores busy, and large chunks amortize the per-chunk work on
/// p-vectors (leaf copies, the accumulator) and give the GEMMs tall operands: for the medium MLP
/// (784-256-256-10, n = 1024) two chunks of 512 make an HVP ~15% cheaper in CPU time than four of 256.
pub fn chunk_len(len: usize) -> usize {
    len.div_ceil(2).clamp(MIN_CHUNK, MAX_CHUNK)
}

/// Rows per parallel task of the per-example driver: small, so that even a sink chunk of a few dozen rows
/// keeps both cores busy (rows are independent, so this does not affect the results).
pub const PER_EXAMPLE_TASK: usize = 32;

/// Memory budget of the block of per-example gradients a driver keeps for its sink (`rows × p` `f64`s):
/// 256 MiB. A sink chunk asked for beyond it is cut to fit (at least one row), which the contract of
/// [`crate::Objective::per_example_grads`] ("at most `chunk` rows") allows.
pub const PER_EXAMPLE_BLOCK_BYTES: usize = 256 << 20;

/// Rows of a per-example gradient block: at most `chunk` (at least 1), the batch length `len` and what fits
/// [`PER_EXAMPLE_BLOCK_BYTES`] with `p` parameters; checked arithmetic.
pub(crate) fn per_example_block_rows(chunk: usize, len: usize, p: usize) -> Result<usize> {
    let row = p.checked_mul(size_of::<f64>()).ok_or_else(|| {
        ObjectiveError::invalid("per-example gradient row", format!("{p} parameters overflow"))
    })?;
    let fit = (PER_EXAMPLE_BLOCK_BYTES / row.max(1)).max(1);
    Ok(chunk.max(1).min(len.max(1)).min(fit))
}

/// The rows `ix` of `x` as a new row-major matrix (indices already validated against `x.nrows()`). A plain
/// row copy: ndarray's `select` on axis 0 was 4% of a tiny MLP's HVP.
pub(crate) fn gather_rows(x: &Array2<f64>, ix: &[usize]) -> Array2<f64> {
    let c = x.ncols();
    let mut out = Vec::with_capacity(ix.len() * c);
    match x.as_slice() {
        Some(flat) => ix
            .iter()
            .for_each(|&i| out.extend_from_slice(&flat[i * c..(i + 1) * c])),
        None => ix.iter().for_each(|&i| out.extend(x.row(i).iter())),
    }
    Array2::from_shape_vec((ix.len(), c), out).expect("ix.len() rows of c columns")
}

/// The body of `impl Objective` for a model that is a named view of the objective in its field `$inner`
/// (same `p`, `N` and computations): `dim`, `n_examples` and every `*_at` computation but
/// `per_example_grads_at`, forwarded.
macro_rules! forward_objective {
    ($inner:ident) => {
        fn dim(&self) -> usize {
            self.$inner.dim()
        }

        fn n_examples(&self) -> usize {
            self.$inner.n_examples()
        }

        fn loss_at(&self, at: $crate::At<'_>) -> $crate::Result<f64> {
            self.$inner.loss_at(at)
        }

        fn loss_grad_at(&self, at: $crate::At<'_>, grad: &mut [f64]) -> $crate::Result<f64> {
            self.$inner.loss_grad_at(at, grad)
        }

        fn hvp_at(&self, at: $crate::At<'_>, v: &[f64], out: &mut [f64]) -> $crate::Result<()> {
            self.$inner.hvp_at(at, v, out)
        }

        fn third_order_at(
            &self,
            at: $crate::At<'_>,
            u: &[f64],
            v: &[f64],
            out: &mut [f64],
        ) -> $crate::Result<()> {
            self.$inner.third_order_at(at, u, v, out)
        }

        fn prepared_hessian_at<'a>(
            &'a self,
            at: $crate::At<'a>,
        ) -> $crate::Result<Box<dyn $crate::HessianAt + 'a>> {
            self.$inner.prepared_hessian_at(at)
        }
    };
}
pub(crate) use forward_objective;

/// Sums per-example contributions over the batch: `f(start, indices, &mut s, &mut acc)` adds the
/// contributions of the dataset examples `indices` (one chunk: batch positions `start..start + indices.len()`,
/// in batch order) to a scalar `s` and a vector `acc` of length `dim`, both starting at zero. Returns the
/// total `(s, acc)` over the batch; chunks are reduced in a fixed order (see the module doc).
pub(crate) fn chunked_sum<F>(batch: Batch<'_>, n: usize, dim: usize, f: F) -> Result<(f64, Vec<f64>)>
where
    F: Fn(usize, &[usize], &mut f64, &mut [f64]) -> Result<()> + Sync,
{
    let mut acc = vec![0.0; dim];
    let s = chunked_sum_into(batch, n, 1.0, &mut acc, f)?;
    Ok((s, acc))
}

/// [`chunked_sum`] writing `scale · acc` into `out` (its length is `dim`) and returning `scale · s`. The
/// reduction of the chunk partials (in chunk order) and the scaling are one pass over `out`, parallel over
/// coordinate blocks (elementwise, so deterministic at any thread count). If `f` fails, the error is returned
/// and `out` may hold a partial sum.
pub(crate) fn chunked_sum_into<F>(
    batch: Batch<'_>,
    n: usize,
    scale: f64,
    out: &mut [f64],
    f: F,
) -> Result<f64>
where
    F: Fn(usize, &[usize], &mut f64, &mut [f64]) -> Result<()> + Sync,
{
    chunked_sum_by(batch, n, chunk_len(batch.len(n)), scale, out, f)
}

/// [`chunked_sum_into`] with chunks of `chunk` batch positions (at least 1) in place of [`chunk_len`]: a
/// model whose chunks follow another rule of the batch length (the heavy rows of a network) gets the same
/// parallel, chunk-ordered reduction, so it too is bitwise identical at any thread count.
pub(crate) fn chunked_sum_by<F>(
    batch: Batch<'_>,
    n: usize,
    chunk: usize,
    scale: f64,
    out: &mut [f64],
    f: F,
) -> Result<f64>
where
    F: Fn(usize, &[usize], &mut f64, &mut [f64]) -> Result<()> + Sync,
{
    let len = batch.len(n);
    let dim = out.len();
    let chunk = chunk.max(1);
    let run = |c: usize| -> Result<(f64, Vec<f64>)> {
        let ix = batch.slice(c * chunk, ((c + 1) * chunk).min(len));
        let mut s = 0.0;
        let mut acc = vec![0.0; dim];
        f(c * chunk, &ix, &mut s, &mut acc)?;
        Ok((s, acc))
    };
    let chunks = len.div_ceil(chunk);
    if chunks <= 1 {
        // One chunk: accumulate straight into `out` (the same sums as a partial copied over), then scale.
        let ix = batch.slice(0, len);
        let mut s = 0.0;
        out.fill(0.0);
        f(0, &ix, &mut s, out)?;
        if scale != 1.0 {
            out.iter_mut().for_each(|o| *o *= scale);
        }
        return Ok(scale * s);
    }
    let parts: Vec<(f64, Vec<f64>)> = (0..chunks).into_par_iter().map(run).collect::<Result<_>>()?;
    const BLOCK: usize = 1 << 14;
    let reduce = |(b, ob): (usize, &mut [f64])| {
        let r = b * BLOCK..b * BLOCK + ob.len();
        ob.copy_from_slice(&parts[0].1[r.clone()]);
        for (_, pa) in &parts[1..] {
            ob.iter_mut().zip(&pa[r.clone()]).for_each(|(o, x)| *o += x);
        }
        if scale != 1.0 {
            ob.iter_mut().for_each(|o| *o *= scale);
        }
    };
    if dim >= 4 * BLOCK {
        out.par_chunks_mut(BLOCK).enumerate().for_each(reduce);
    } else {
        out.chunks_mut(BLOCK).enumerate().for_each(reduce);
    }
    Ok(scale * parts.iter().map(|(s, _)| s).sum::<f64>())
}

/// The per-example gradient driver behind every closed-form model's `per_example_grads`: streams the batch
/// in sink chunks of at most `chunk` rows (and [`PER_EXAMPLE_BLOCK_BYTES`]); within a sink chunk,
/// `fill(indices, rows, zeroed)` writes the gradients of the dataset examples `indices` into the rows of
/// `rows` (`indices.len() × p`), in tasks of [`PER_EXAMPLE_TASK`] rows filled in parallel; `zeroed` says that
/// the rows hold zeros (the first sink chunk), so a `fill` that adds may skip zeroing them, while one that
/// writes every entry ignores it. Rows are independent, so the result does not depend on the thread count.
/// The buffer is allocated once and written with zeros by the rayon pool (faster than a zeroed allocation at
/// every size measured, docs/performance.md).
pub(crate) fn per_example_driver<F>(
    batch: Batch<'_>,
    n: usize,
    p: usize,
    chunk: usize,
    fill: F,
    sink: &mut dyn FnMut(usize, ndarray::ArrayView2<'_, f64>) -> Result<()>,
) -> Result<()>
where
    F: Fn(&[usize], ArrayViewMut2<'_, f64>, bool) -> Result<()> + Sync,
{
    let len = batch.len(n);
    let chunk = per_example_block_rows(chunk, len, p)?;
    // `chunk · p` fits the block budget, so the product does not overflow.
    let mut zeros = Vec::with_capacity(chunk * p);
    zeros.par_extend(rayon::iter::repeatn(0.0, chunk * p));
    let mut buf = Array2::from_shape_vec((chunk, p), zeros).expect("chunk × p values");
    let mut start = 0;
    while start < len {
        let end = (start + chunk).min(len);
        let ix = batch.slice(start, end);
        let mut rows = buf.slice_mut(ndarray::s![..end - start, ..]);
        let zeroed = start == 0;
        if ix.len() <= PER_EXAMPLE_TASK {
            fill(&ix, rows.view_mut(), zeroed)?;
        } else {
            let results: Vec<Result<()>> = rows
                .axis_chunks_iter_mut(ndarray::Axis(0), PER_EXAMPLE_TASK)
                .into_par_iter()
                .zip(ix.par_chunks(PER_EXAMPLE_TASK))
                .map(|(sub, sub_ix)| fill(sub_ix, sub, zeroed))
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
