//! The layout of image activations on the tape, and the ops that only rearrange it.
//!
//! Activations stay matrices with **one example per row**; an example's `C × H × W` feature map is laid out
//! row-major in its row (PyTorch's NCHW, flattened per example): feature `c·H·W + y·W + x`. Hence batching in
//! chunks of rows, per-example structure and per-example gradients work for images exactly as for vectors, and
//! `flatten`/`reshape` between a feature map and a vector are no-ops (the row already is PyTorch's
//! `x.flatten(1)`). Concatenation along channels is concatenation of the rows' features ([`Concat`]).
use crate::error::{AdError, Result};
use crate::graph::{Graph, Var};
use crate::primitive::Primitive;
use crate::tensor::{Mat, Tensor};

/// The shape `C × H × W` of one example's feature map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Image {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl Image {
    pub fn new(channels: usize, height: usize, width: usize) -> Self {
        Image {
            channels,
            height,
            width,
        }
    }

    /// `H · W`, checked.
    pub fn plane(&self) -> Result<usize> {
        checked_mul(self.height, self.width, "feature map plane")
    }

    /// `C · H · W`, the row length, checked.
    pub fn features(&self) -> Result<usize> {
        checked_mul(self.channels, self.plane()?, "feature map size")
    }
}

/// `a · b`, or an [`AdError::Invalid`] naming `what` when it overflows.
pub(crate) fn checked_mul(a: usize, b: usize, what: &'static str) -> Result<usize> {
    a.checked_mul(b).ok_or_else(|| AdError::Invalid {
        what,
        reason: format!("{a} · {b} overflows"),
    })
}

/// Columns `start..start + len` of `m`.
pub(crate) fn slice_cols(m: &Mat, start: usize, len: usize) -> Mat {
    m.slice(ndarray::s![.., start..start + len]).to_owned()
}

/// `m` placed at columns `start..` of a zero matrix with `total` columns (the adjoint of [`slice_cols`]).
pub(crate) fn place_cols(m: &Mat, start: usize, total: usize) -> Mat {
    let mut out = Mat::zeros((m.nrows(), total));
    out.slice_mut(ndarray::s![.., start..start + m.ncols()]).assign(m);
    out
}

/// Rows `start..start + len` of `m`.
pub(crate) fn slice_rows(m: &Mat, start: usize, len: usize) -> Mat {
    m.slice(ndarray::s![start..start + len, ..]).to_owned()
}

/// `m` placed at rows `start..` of a zero matrix with `total` rows (the adjoint of [`slice_rows`]).
pub(crate) fn place_rows(m: &Mat, start: usize, total: usize) -> Mat {
    let mut out = Mat::zeros((total, m.ncols()));
    out.slice_mut(ndarray::s![start..start + m.nrows(), ..]).assign(m);
    out
}

/// Concatenation of the inputs' features, `y_i = [x¹_i, x²_i, …]` row by row: for NCHW feature maps with
/// equal `H × W`, PyTorch's `torch.cat(xs, dim=1)`. Linear: `ẏ = [ẋ¹, ẋ², …]`, `x̄ᵏ` = the `k`-th block of
/// columns of `ȳ`.
#[derive(Clone, Copy, Debug)]
pub struct Concat;

impl Concat {
    /// `(offset, width)` of each input's block.
    fn blocks<T: Tensor>(x: &[&T]) -> Vec<(usize, usize)> {
        let mut off = 0;
        x.iter()
            .map(|v| {
                let w = v.shape().1;
                off += w;
                (off - w, w)
            })
            .collect()
    }

    fn join<T: Tensor>(x: &[Option<&T>], blocks: &[(usize, usize)], total: usize) -> Option<T> {
        x.iter()
            .zip(blocks)
            .filter_map(|(v, &(off, _))| v.map(|v| v.linear_map(&|m| place_cols(m, off, total))))
            .reduce(|a, b| a.add(&b))
    }
}

impl Primitive for Concat {
    fn name(&self) -> &'static str {
        "concat"
    }
    fn output_shape(&self, inputs: &[(usize, usize)]) -> Result<(usize, usize)> {
        let Some(&(rows, _)) = inputs.first() else {
            return Err(AdError::Invalid {
                what: "concat",
                reason: "no inputs".into(),
            });
        };
        let mut total = 0usize;
        for (k, &(r, c)) in inputs.iter().enumerate() {
            if r != rows {
                return Err(AdError::Shape {
                    op: "concat",
                    detail: format!("input {k}: expected {rows} rows, found {r}×{c}"),
                });
            }
            total = total.checked_add(c).ok_or_else(|| AdError::Invalid {
                what: "concat",
                reason: "total width overflows".into(),
            })?;
        }
        Ok((rows, total))
    }
    fn forward<T: Tensor>(&self, x: &[&T]) -> T {
        let blocks = Self::blocks(x);
        let total = blocks.last().map_or(0, |(o, w)| o + w);
        let some: Vec<Option<&T>> = x.iter().map(|v| Some(*v)).collect();
        Self::join(&some, &blocks, total).expect("at least one input")
    }
    fn jvp<T: Tensor>(&self, x: &[&T], y: &T, dx: &[Option<&T>]) -> Option<T> {
        Self::join(dx, &Self::blocks(x), y.shape().1)
    }
    fn vjp<T: Tensor>(&self, x: &[&T], _y: &T, g: &T, wants: &[bool]) -> Vec<Option<T>> {
        Self::blocks(x)
            .into_iter()
            .zip(wants)
            .map(|((off, w), &want)| want.then(|| g.linear_map(&|m| slice_cols(m, off, w))))
            .collect()
    }
}

impl<T: Tensor> Graph<T> {
    /// Concatenates the features of the inputs row by row (channels, for NCHW feature maps; see [`Concat`]).
    pub fn concat(&mut self, inputs: &[Var]) -> Result<Var> {
        self.apply(Concat, inputs)
    }
}
