//! 2-D convolution in PyTorch's conventions (`nn.Conv2d`), as a [`Primitive`].
//!
//! The input `x` is `n × (C·H·W)` (one NCHW example per row, see [`crate::layout`]), the weight `W` is PyTorch's
//! `[out, C/groups, kh, kw]` flattened to `out × (C/groups·kh·kw)`, the optional bias `b` is `1 × out`, and the
//! output is `n × (out·OH·OW)` with `OH = ⌊(H + 2p_h − d_h(k_h − 1) − 1)/s_h⌋ + 1` (likewise `OW`):
//!
//! `y[i, o, u, v] = b_o + Σ_{c ∈ group(o)} Σ_{a, b'} W[o, c, a, b'] · x[i, c, s_h u − p_h + d_h a, s_w v − p_w + d_w b']`
//!
//! (zero outside the image). It is computed by im2col and one GEMM per group: the transposed patches
//! `Pᵀ = im2col(x)`, `(C·kh·kw) × (n·OH·OW)`, so that `Z = W Pᵀ + b 1ᵀ` (per group, on the group's rows of `W`
//! and `Pᵀ`) holds the output with the channels as rows, whose blocks of `OH·OW` are then moved to NCHW rows.
//! Both im2col and that permutation copy contiguous runs (one output row's taps, one feature map).
//!
//! * JVP (bilinear): `ẏ = conv(ẋ, W) + conv(x, Ẇ) + ḃ`.
//! * VJP: with `G` the output cotangent permuted to `out × (n·OH·OW)`, `W̄ = G P`, `b̄ = G 1`,
//!   `x̄ = col2im(Wᵀ G)`, col2im being the adjoint (transpose) of im2col.
use crate::error::{AdError, Result};
use crate::graph::{Graph, Var};
use crate::layout::{checked_mul, place_rows, slice_cols, slice_rows, Image};
use crate::primitive::{expect_shape, Primitive};
use crate::tensor::{Mat, Tensor};

/// The geometry of a convolution (PyTorch `nn.Conv2d` arguments, with the input's feature-map shape).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    /// `C × H × W` of each example.
    pub input: Image,
    pub out_channels: usize,
    /// `(kh, kw)`.
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
    /// 1 (dense) or a divisor of both channel counts; `groups = C` is a depthwise convolution.
    pub groups: usize,
}

impl Conv2d {
    /// A dense convolution with stride 1, no padding and no dilation.
    pub fn new(input: Image, out_channels: usize, kernel: (usize, usize)) -> Self {
        Conv2d {
            input,
            out_channels,
            kernel,
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }

    /// The output feature map, checked: positive sizes, strides and dilations, `groups` dividing both
    /// channel counts, a kernel that fits into the padded input, no overflow.
    pub fn output(&self) -> Result<Image> {
        let bad = |reason: String| AdError::Invalid {
            what: "conv2d",
            reason,
        };
        let (kh, kw) = self.kernel;
        if kh == 0 || kw == 0 || self.stride.0 == 0 || self.stride.1 == 0 {
            return Err(bad(format!(
                "kernel {:?} and stride {:?} must be positive",
                self.kernel, self.stride
            )));
        }
        if self.dilation.0 == 0 || self.dilation.1 == 0 {
            return Err(bad(format!("dilation {:?} must be positive", self.dilation)));
        }
        let g = self.groups;
        if g == 0
            || !self.input.channels.is_multiple_of(g)
            || !self.out_channels.is_multiple_of(g)
            || self.out_channels == 0
        {
            return Err(bad(format!(
                "groups = {g} must divide in_channels = {} and out_channels = {} (> 0)",
                self.input.channels, self.out_channels
            )));
        }
        let side = |size: usize, k: usize, s: usize, p: usize, d: usize| -> Result<usize> {
            let padded = p
                .checked_mul(2)
                .and_then(|p2| size.checked_add(p2))
                .ok_or_else(|| bad("padded size overflows".into()))?;
            let span = (k - 1)
                .checked_mul(d)
                .and_then(|x| x.checked_add(1))
                .ok_or_else(|| bad("dilated kernel overflows".into()))?;
            if padded < span {
                return Err(bad(format!(
                    "dilated kernel of extent {span} is larger than the padded input {padded}"
                )));
            }
            Ok((padded - span) / s + 1)
        };
        let oh = side(
            self.input.height,
            kh,
            self.stride.0,
            self.padding.0,
            self.dilation.0,
        )?;
        let ow = side(
            self.input.width,
            kw,
            self.stride.1,
            self.padding.1,
            self.dilation.1,
        )?;
        let out = Image::new(self.out_channels, oh, ow);
        out.features()?;
        Ok(out)
    }

    /// The weight's shape, `out × (C/groups · kh · kw)`.
    pub fn weight_shape(&self) -> Result<(usize, usize)> {
        let k = checked_mul(self.kernel.0, self.kernel.1, "conv2d kernel")?;
        Ok((
            self.out_channels,
            checked_mul(self.input.channels / self.groups.max(1), k, "conv2d weight")?,
        ))
    }
}

/// A validated [`Conv2d`] on the tape.
#[derive(Clone, Debug)]
struct ConvOp {
    geo: Conv2d,
    out: Image,
    bias: bool,
}

/// The output positions `v` whose tap `v·s + t − p` (`t` the kernel offset `b'·d`) lands in `0..size`, and the
/// input position of the first one; `None` when no `v < ow` does.
fn tap_range(size: usize, ow: usize, s: usize, t: usize, p: usize) -> Option<(usize, usize, usize)> {
    // v·s + t ≥ p  ⇔  v ≥ ⌈(p − t)/s⌉;   v·s + t < size + p  ⇔  v < ⌈(size + p − t)/s⌉
    let lo = p.saturating_sub(t).div_ceil(s);
    let hi = (size + p).checked_sub(t)?.div_ceil(s).min(ow);
    (lo < hi).then(|| (lo, hi, lo * s + t - p))
}

impl ConvOp {
    /// `S = OH · OW`.
    fn plane(&self) -> usize {
        self.out.height * self.out.width
    }

    fn patch_len(&self) -> usize {
        self.geo.input.channels * self.geo.kernel.0 * self.geo.kernel.1
    }

    /// Calls `f(patch run, image row run)` for every run of taps along an output row: the patch matrix `Pᵀ`
    /// is `(C·kh·kw) × (n·S)`, row `(c·kh + a)·kw + b'`, column `i·S + u·OW + v`; a run is the output positions
    /// `v ∈ lo..hi` of one `(row, i, u)`, whose taps read the input row `y` of channel `c` of example `i` at
    /// `x₀, x₀ + s_w, …`. Taps outside the image are skipped (they are the zero padding).
    fn for_each_run(&self, n: usize, mut f: impl FnMut(std::ops::Range<usize>, usize)) {
        let Conv2d {
            input,
            kernel: (kh, kw),
            stride: (sh, _),
            padding: (ph, pw),
            dilation: (dh, dw),
            ..
        } = self.geo;
        let (oh, ow, s) = (self.out.height, self.out.width, self.plane());
        let feats = input.channels * input.height * input.width;
        for c in 0..input.channels {
            for a in 0..kh {
                for b in 0..kw {
                    let row = (c * kh + a) * kw + b;
                    let Some((lo, hi, x0)) = tap_range(input.width, ow, self.geo.stride.1, b * dw, pw) else {
                        continue;
                    };
                    for u in 0..oh {
                        let Some(y) = (u * sh + a * dh).checked_sub(ph).filter(|&y| y < input.height) else {
                            continue;
                        };
                        for i in 0..n {
                            let dst = (row * n + i) * s + u * ow;
                            let src = i * feats + (c * input.height + y) * input.width + x0;
                            f(dst + lo..dst + hi, src);
                        }
                    }
                }
            }
        }
    }

    /// The transposed patch matrix `Pᵀ`, `(C·kh·kw) × (n·S)` (see [`ConvOp::for_each_run`]).
    fn im2col(&self, x: &Mat) -> Mat {
        let n = x.nrows();
        let x = x.as_standard_layout();
        let src = x.as_slice().expect("standard layout");
        let sw = self.geo.stride.1;
        let mut cols = vec![0.0; self.patch_len() * n * self.plane()];
        self.for_each_run(n, |dst, start| {
            let dst = &mut cols[dst];
            if sw == 1 {
                dst.copy_from_slice(&src[start..start + dst.len()]);
            } else {
                dst.iter_mut()
                    .zip(src[start..].iter().step_by(sw))
                    .for_each(|(d, s)| *d = *s);
            }
        });
        Mat::from_shape_vec((self.patch_len(), n * self.plane()), cols).expect("im2col shape")
    }

    /// The adjoint of [`ConvOp::im2col`]: every patch entry added back into its pixel.
    fn col2im(&self, cols: &Mat) -> Mat {
        let n = cols.ncols() / self.plane().max(1);
        let feats = self.geo.input.channels * self.geo.input.height * self.geo.input.width;
        let cols = cols.as_standard_layout();
        let src = cols.as_slice().expect("standard layout");
        let sw = self.geo.stride.1;
        let mut x = vec![0.0; n * feats];
        self.for_each_run(n, |run, start| {
            let run = &src[run];
            if sw == 1 {
                x[start..start + run.len()]
                    .iter_mut()
                    .zip(run)
                    .for_each(|(d, s)| *d += *s);
            } else {
                x[start..]
                    .iter_mut()
                    .step_by(sw)
                    .zip(run)
                    .for_each(|(d, s)| *d += *s);
            }
        });
        Mat::from_shape_vec((n, feats), x).expect("col2im shape")
    }

    /// `out × (n·S)` (channels as rows) → `n × (out·S)` NCHW rows: blocks of `S` moved.
    fn channels_to_nchw(&self, z: &Mat) -> Mat {
        let s = self.plane();
        let (o, cols) = z.dim();
        let n = cols / s.max(1);
        let z = z.as_standard_layout();
        let src = z.as_slice().expect("standard layout");
        let mut y = vec![0.0; n * o * s];
        for (c, from) in src.chunks_exact(n * s).enumerate() {
            for (i, block) in from.chunks_exact(s).enumerate() {
                y[(i * o + c) * s..][..s].copy_from_slice(block);
            }
        }
        Mat::from_shape_vec((n, o * s), y).expect("nchw shape")
    }

    /// The inverse permutation of [`ConvOp::channels_to_nchw`] (also its adjoint).
    fn nchw_to_channels(&self, y: &Mat) -> Mat {
        let s = self.plane();
        let (n, f) = y.dim();
        let o = f / s.max(1);
        let y = y.as_standard_layout();
        let src = y.as_slice().expect("standard layout");
        let mut z = vec![0.0; n * o * s];
        for (i, row) in src.chunks_exact(o * s).enumerate() {
            for (c, block) in row.chunks_exact(s).enumerate() {
                z[(c * n + i) * s..][..s].copy_from_slice(block);
            }
        }
        Mat::from_shape_vec((o, n * s), z).expect("channels shape")
    }

    /// `Z = W Pᵀ` (`out × (n·S)`), plus `b` in every column when given: one GEMM, or one per group on the
    /// group's rows of `W` and `Pᵀ`.
    fn product<T: Tensor>(&self, w: &T, p: &T, b: Option<&T>) -> T {
        let g = self.geo.groups;
        let bias = |rows: usize, cols: usize, j: usize| b.map(|b| self.bias_columns(b, j * rows, rows, cols));
        let mul = |w: &T, p: &T, b: Option<T>| match b {
            Some(mut c) => {
                T::matmul_acc(&mut c, w, false, p, false);
                c
            }
            None => T::matmul(w, false, p, false),
        };
        let cols = p.shape().1;
        if g == 1 {
            return mul(w, p, bias(self.geo.out_channels, cols, 0));
        }
        let (og, kg) = (self.geo.out_channels / g, self.patch_len() / g);
        stack_rows(
            (0..g)
                .map(|j| {
                    let wj = w.linear_map(&|m| slice_rows(m, j * og, og));
                    let pj = p.linear_map(&|m| slice_rows(m, j * kg, kg));
                    mul(&wj, &pj, bias(og, cols, j))
                })
                .collect(),
        )
    }

    /// `(W̄, P̄ᵀ) = (G P, Wᵀ G)` for `G` the cotangent of `Z` (`out × (n·S)`), group by group, each only when
    /// wanted.
    fn product_vjp<T: Tensor>(&self, w: &T, p: Option<&T>, g: &T, want_p: bool) -> (Option<T>, Option<T>) {
        let groups = self.geo.groups;
        if groups == 1 {
            return (
                p.map(|p| T::matmul(g, false, p, true)),
                want_p.then(|| T::matmul(w, true, g, false)),
            );
        }
        let (og, kg) = (self.geo.out_channels / groups, self.patch_len() / groups);
        let mut gw = Vec::new();
        let mut gp = Vec::new();
        for j in 0..groups {
            let gj = g.linear_map(&|m| slice_rows(m, j * og, og));
            if let Some(p) = p {
                let pj = p.linear_map(&|m| slice_rows(m, j * kg, kg));
                gw.push(T::matmul(&gj, false, &pj, true));
            }
            if want_p {
                let wj = w.linear_map(&|m| slice_rows(m, j * og, og));
                gp.push(T::matmul(&wj, true, &gj, false));
            }
        }
        (
            p.is_some().then(|| stack_rows(gw)),
            want_p.then(|| stack_rows(gp)),
        )
    }

    /// Entries `start..start + rows` of the row `b` as a column, repeated in `cols` columns.
    fn bias_columns<T: Tensor>(&self, b: &T, start: usize, rows: usize, cols: usize) -> T {
        b.linear_map(&|m| slice_cols(m, start, rows).reversed_axes())
            .broadcast_to(rows, cols)
    }

    fn patches<T: Tensor>(&self, x: &T) -> T {
        x.linear_map(&|m| self.im2col(m))
    }

    fn to_nchw<T: Tensor>(&self, z: T) -> T {
        z.linear_map(&|m| self.channels_to_nchw(m))
    }
}

/// The blocks stacked on top of each other (pairwise, so that the copies cost `O(total · log blocks)`).
fn stack_rows<T: Tensor>(mut blocks: Vec<T>) -> T {
    while blocks.len() > 1 {
        let mut next = Vec::with_capacity(blocks.len().div_ceil(2));
        let mut it = blocks.into_iter();
        while let Some(a) = it.next() {
            match it.next() {
                Some(b) => {
                    let (ra, rb) = (a.shape().0, b.shape().0);
                    let top = a.linear_map(&|m| place_rows(m, 0, ra + rb));
                    next.push(top.add(&b.linear_map(&|m| place_rows(m, ra, ra + rb))));
                }
                None => next.push(a),
            }
        }
        blocks = next;
    }
    blocks.pop().expect("at least one block")
}

impl Primitive for ConvOp {
    fn name(&self) -> &'static str {
        "conv2d"
    }
    fn output_shape(&self, inputs: &[(usize, usize)]) -> Result<(usize, usize)> {
        crate::primitive::expect_inputs("conv2d", inputs, 2 + usize::from(self.bias))?;
        let n = inputs[0].0;
        expect_shape(
            "conv2d",
            "input [n, C·H·W]",
            inputs[0],
            (n, self.geo.input.features()?),
        )?;
        expect_shape(
            "conv2d",
            "weight [out, C/groups·kh·kw]",
            inputs[1],
            self.geo.weight_shape()?,
        )?;
        if self.bias {
            expect_shape("conv2d", "bias [1, out]", inputs[2], (1, self.geo.out_channels))?;
        }
        // The patch matrix must be addressable too.
        let rows = checked_mul(n, self.out.plane()?, "conv2d patches")?;
        checked_mul(rows, self.patch_len(), "conv2d patches")?;
        Ok((n, self.out.features()?))
    }
    fn forward<T: Tensor>(&self, x: &[&T]) -> T {
        let b = if self.bias { Some(x[2]) } else { None };
        self.to_nchw(self.product(x[1], &self.patches(x[0]), b))
    }
    fn jvp<T: Tensor>(&self, x: &[&T], _y: &T, dx: &[Option<&T>]) -> Option<T> {
        let db = dx.get(2).copied().flatten();
        let z = match (dx[0], dx[1]) {
            (Some(dx0), dw) => {
                let z = self.product(x[1], &self.patches(dx0), db);
                Some(match dw {
                    Some(dw) => z.add(&self.product(dw, &self.patches(x[0]), None)),
                    None => z,
                })
            }
            (None, Some(dw)) => Some(self.product(dw, &self.patches(x[0]), db)),
            (None, None) => db.map(|db| {
                let cols = x[0].shape().0 * self.plane();
                self.bias_columns(db, 0, self.geo.out_channels, cols)
            }),
        };
        z.map(|z| self.to_nchw(z))
    }
    fn vjp<T: Tensor>(&self, x: &[&T], _y: &T, g: &T, wants: &[bool]) -> Vec<Option<T>> {
        let g = g.linear_map(&|m| self.nchw_to_channels(m));
        let p = wants[1].then(|| self.patches(x[0]));
        let (gw, gp) = self.product_vjp(x[1], p.as_ref(), &g, wants[0]);
        let mut out = vec![gp.map(|gp| gp.linear_map(&|m| self.col2im(m))), gw];
        if self.bias {
            out.push(wants[2].then(|| g.sum_cols().linear_map(&|m| m.t().to_owned())));
        }
        out
    }
}

impl<T: Tensor> Graph<T> {
    /// PyTorch's `nn.Conv2d` on NCHW rows (see [`crate::conv`]): `x` is `n × (C·H·W)`, `w` is
    /// `out × (C/groups·kh·kw)`, `b` is `1 × out`; the output is `n × (out·OH·OW)`.
    pub fn conv2d(&mut self, x: Var, w: Var, b: Option<Var>, geometry: &Conv2d) -> Result<Var> {
        let out = geometry.output()?;
        let op = ConvOp {
            geo: *geometry,
            out,
            bias: b.is_some(),
        };
        match b {
            Some(b) => self.apply(op, &[x, w, b]),
            None => self.apply(op, &[x, w]),
        }
    }
}
