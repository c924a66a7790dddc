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
//! Both im2col and that permutation copy contiguous runs (one output row's taps, one feature map); with unit
//! strides and "same" padding across, one patch row of an example is its input plane shifted and im2col copies
//! it in one piece, then zeroes the entries that fall into the padding.
//!
//! * JVP (bilinear): `ẏ = conv(ẋ, W) + conv(x, Ẇ) + ḃ`.
//! * VJP: with `G` the output cotangent permuted to `out × (n·OH·OW)`, `W̄ = G P`, `b̄ = G 1`,
//!   `x̄ = col2im(Wᵀ G)`, col2im being the adjoint (transpose) of im2col.
use crate::dual::{product_tangent, Dual};
use crate::error::{AdError, Result};
use crate::graph::{Graph, Var};
use crate::layout::{checked_mul, place_rows, slice_cols, slice_rows, Image};
use crate::matmul::gemm_into;
use crate::primitive::{expect_shape, Primitive};
use crate::tensor::{Mat, Tensor};
use ndarray::{ArrayView2, ArrayViewMut2};

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
    /// `x₀, x₀ + s_w, …`. Taps outside the image are skipped (they are the zero padding). Runs come in
    /// increasing order of their patch positions, and the runs of one patch row touch distinct pixels.
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
                    for i in 0..n {
                        for u in 0..oh {
                            let Some(y) = (u * sh + a * dh).checked_sub(ph).filter(|&y| y < input.height)
                            else {
                                continue;
                            };
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
        self.im2col_view(x.view())
    }

    /// [`ConvOp::im2col`] of a view (one example's row, say).
    fn im2col_view(&self, x: ArrayView2<'_, f64>) -> Mat {
        let n = x.nrows();
        let x = x.as_standard_layout();
        let src = x.as_slice().expect("standard layout");
        let cols = if self.shifts_planes() {
            self.im2col_planes(src, n)
        } else {
            self.im2col_runs(src, n)
        };
        Mat::from_shape_vec((self.patch_len(), n * self.plane()), cols).expect("im2col shape")
    }

    /// Whether every patch row of an example is its input plane shifted: unit strides and an output as wide as
    /// the input (`2 p_w = d_w (k_w − 1)`, "same" padding across). Then the taps of output rows `u` and `u + 1`
    /// are `W` apart in the input as in the patch row, so the runs of one `(patch row, example)` are a single
    /// contiguous copy, whose entries between runs (neighbouring pixels) are then reset to the zero padding.
    fn shifts_planes(&self) -> bool {
        self.geo.stride == (1, 1) && self.out.width == self.geo.input.width
    }

    /// `Pᵀ` by [`ConvOp::for_each_run`]'s runs, in order: the zero padding before each run, then the run (no
    /// pass zeroing the whole matrix).
    fn im2col_runs(&self, src: &[f64], n: usize) -> Vec<f64> {
        let sw = self.geo.stride.1;
        let total = self.patch_len() * n * self.plane();
        let mut cols = Vec::with_capacity(total);
        self.for_each_run(n, |dst, start| {
            debug_assert!(dst.start >= cols.len());
            cols.resize(dst.start, 0.0);
            if sw == 1 {
                cols.extend_from_slice(&src[start..start + dst.len()]);
            } else {
                cols.extend(src[start..].iter().step_by(sw).take(dst.len()));
            }
        });
        cols.resize(total, 0.0);
        cols
    }

    /// `Pᵀ` when [`ConvOp::shifts_planes`]: per `(patch row, example)` the output rows `u₀..u₁` whose input row
    /// `y = u + a d_h − p_h` exists copy in one piece, from the first tap `(u₀, lo)` to the last `(u₁ − 1, hi)`;
    /// the `W − (hi − lo)` entries between two runs are then zeroed. The same entries as
    /// [`ConvOp::im2col_runs`], bit for bit.
    fn im2col_planes(&self, src: &[f64], n: usize) -> Vec<f64> {
        let Conv2d {
            input,
            kernel: (kh, kw),
            padding: (ph, pw),
            dilation: (dh, dw),
            ..
        } = self.geo;
        let (oh, ow, s) = (self.out.height, self.out.width, self.plane());
        let (h, w) = (input.height, input.width);
        let feats = input.channels * h * w;
        let total = self.patch_len() * n * s;
        let mut cols = Vec::with_capacity(total);
        for c in 0..input.channels {
            for a in 0..kh {
                // y = u + a·d_h − p_h ∈ 0..H  ⇔  u ∈ u0..u1
                let u0 = ph.saturating_sub(a * dh);
                let u1 = (h + ph).saturating_sub(a * dh).min(oh);
                if u0 >= u1 {
                    continue;
                }
                for b in 0..kw {
                    let row = (c * kh + a) * kw + b;
                    let Some((lo, hi, x0)) = tap_range(w, ow, 1, b * dw, pw) else {
                        continue;
                    };
                    for i in 0..n {
                        let plane = (row * n + i) * s;
                        let first = plane + u0 * ow + lo;
                        let len = (u1 - 1 - u0) * ow + (hi - lo);
                        let start = i * feats + (c * h + u0 + a * dh - ph) * w + x0;
                        cols.resize(first, 0.0);
                        cols.extend_from_slice(&src[start..start + len]);
                        for u in u0..u1 - 1 {
                            cols[plane + u * ow + hi..plane + (u + 1) * ow + lo].fill(0.0);
                        }
                    }
                }
            }
        }
        cols.resize(total, 0.0);
        cols
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
        let mut y = Vec::with_capacity(n * o * s);
        for i in 0..n {
            for c in 0..o {
                y.extend_from_slice(&src[(c * n + i) * s..][..s]);
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
        let mut z = Vec::with_capacity(n * o * s);
        for c in 0..o {
            for i in 0..n {
                z.extend_from_slice(&src[(i * o + c) * s..][..s]);
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
                p.map(|p| weight_product(g, p)),
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
                gw.push(weight_product(&gj, &pj));
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

    /// The tangents of [`ConvOp::product_vjp`]'s `(G P, Wᵀ G)` for factors given as `(primal, tangent)` pairs
    /// (`None` for a zero tangent), formed as [`Dual`]'s product forms them (`Ȧ B`, then `A Ḃ` accumulated),
    /// so that they equal the tangents of the VJP run on dual values bitwise; the primal products are skipped.
    fn product_vjp_tangent(
        &self,
        w: Pair<'_>,
        p: Option<Pair<'_>>,
        g: Pair<'_>,
        want_p: bool,
    ) -> (Option<Mat>, Option<Mat>) {
        let gw = |g: Pair<'_>, p: Pair<'_>| {
            product_tangent(p.0, p.1, false, g.0, g.1, true).map(|t| transposed(&t))
        };
        let gp = |w: Pair<'_>, g: Pair<'_>| product_tangent(w.0, w.1, true, g.0, g.1, false);
        let groups = self.geo.groups;
        if groups == 1 {
            return (p.and_then(|p| gw(g, p)), want_p.then(|| gp(w, g)).flatten());
        }
        let (og, kg) = (self.geo.out_channels / groups, self.patch_len() / groups);
        let rows = |m: &Mat, j: usize, r: usize| slice_rows(m, j * r, r);
        let (mut tw, mut tp) = (Vec::new(), Vec::new());
        for j in 0..groups {
            let (g0, g1) = (rows(g.0, j, og), g.1.map(|t| rows(t, j, og)));
            let gj = (&g0, g1.as_ref());
            if let Some(p) = p {
                let (p0, p1) = (rows(p.0, j, kg), p.1.map(|t| rows(t, j, kg)));
                tw.push(gw(gj, (&p0, p1.as_ref())));
            }
            if want_p {
                let (w0, w1) = (rows(w.0, j, og), w.1.map(|t| rows(t, j, og)));
                tp.push(gp((&w0, w1.as_ref()), gj));
            }
        }
        // Every group's tangent is present or every one is absent (the factors' tangents are whole matrices).
        let stack = |blocks: Vec<Option<Mat>>| {
            let blocks = blocks.into_iter().collect::<Option<Vec<Mat>>>()?;
            (!blocks.is_empty()).then(|| stack_rows(blocks))
        };
        (stack(tw), stack(tp))
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

/// A factor of a product and its tangent (`None` for zero).
type Pair<'a> = (&'a Mat, Option<&'a Mat>);

/// The weight cotangent `W̄ = G P` (`out × K`) of `G` (`out × N`) and the transposed patches `Pᵀ` (`K × N`),
/// formed as `(Pᵀ Gᵀ)ᵀ`: the GEMM kernel works on column-major blocks, and in this order its packed operand is
/// `G` (`out` rows) rather than the patch matrix (`K = C·kh·kw` rows, `K/out` times as large; packing it was a
/// quarter of `resnet-small`'s per-example gradients), while `Pᵀ` is read in place along its rows. The
/// `K × out` product is then transposed (a copy of the small weight block).
fn weight_product<T: Tensor>(g: &T, p: &T) -> T {
    T::matmul(p, false, g, true).linear_map(&transposed)
}

/// `mᵀ` in standard (row-major) layout.
fn transposed(m: &Mat) -> Mat {
    m.t().as_standard_layout().into_owned()
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
    /// `ẋ̄ = col2im(Ẇᵀ G + Wᵀ Ġ)`, `Ẇ̄ = Ġ P + G Ṗ` and `ḃ̄ = Ġ 1`, without the primal products `Wᵀ G` and `G P`
    /// that a linearized tape already holds (a third of the reverse rule's GEMMs on dual values).
    fn vjp_tangent(
        &self,
        x: &[&Dual<Mat>],
        _y: &Dual<Mat>,
        g: &Mat,
        dg: Option<&Mat>,
        wants: &[bool],
    ) -> Vec<Option<Mat>> {
        let (x0, w) = (x[0], x[1]);
        let g0 = self.nchw_to_channels(g);
        let g1 = dg.map(|d| self.nchw_to_channels(d));
        let p0 = wants[1].then(|| self.im2col(&x0.p));
        let p1 = if wants[1] {
            x0.t.as_ref().map(|t| self.im2col(t))
        } else {
            None
        };
        let p = p0.as_ref().map(|p0| (p0, p1.as_ref()));
        let (tw, tx) = self.product_vjp_tangent((&w.p, w.t.as_ref()), p, (&g0, g1.as_ref()), wants[0]);
        let mut out = vec![tx.map(|t| self.col2im(&t)), tw];
        if self.bias {
            out.push(if wants[2] {
                g1.map(|t| t.sum_cols().t().to_owned())
            } else {
                None
            });
        }
        out
    }
    fn has_vjp_per_example(&self, input: usize) -> bool {
        input == 1 || (self.bias && input == 2)
    }
    /// `W̄_i = G_i P_iᵀ` and `b̄_i = G_i 1` over example `i`'s output positions.
    fn vjp_per_example(
        &self,
        x: &[&Mat],
        _y: &Mat,
        g: &Mat,
        input: usize,
        mut acc: ArrayViewMut2<'_, f64>,
    ) -> Result<()> {
        match input {
            1 => self.weight_per_example(x[0], g, &mut acc),
            2 if self.bias => self.bias_per_example(g, &mut acc),
            _ => {
                return Err(AdError::Invalid {
                    what: "conv2d",
                    reason: format!("no per-example rule for input {input}"),
                })
            }
        }
        Ok(())
    }
}

impl ConvOp {
    /// `W̄_i = G_i P_iᵀ` into row `i` of `acc` (`n × (out · C/groups·kh·kw)`) for every example `i`: `G_i`, the
    /// cotangent of example `i`'s output as `out × S` (its NCHW row read in place), times its own patch
    /// matrix, so each example's product is the one its own tape forms (one GEMM per group, in
    /// [`weight_product`]'s order).
    fn weight_per_example(&self, x: &Mat, g: &Mat, acc: &mut ArrayViewMut2<'_, f64>) {
        if self.shifts_pay() {
            return self.weight_per_example_by_shifts(x, g, acc);
        }
        let (o, s) = (self.geo.out_channels, self.plane());
        let groups = self.geo.groups;
        let (og, kg) = (o / groups, self.patch_len() / groups);
        let g = g.as_standard_layout();
        let gs = g.as_slice().expect("standard layout");
        let mut wt = Mat::zeros((kg, og));
        for (i, mut row) in acc.rows_mut().into_iter().enumerate() {
            let patches = self.im2col_view(x.slice(ndarray::s![i..i + 1, ..]));
            let gi = ArrayView2::from_shape((o, s), &gs[i * o * s..(i + 1) * o * s]).expect("NCHW row");
            let row = row.as_slice_mut().expect("row-major rows");
            let mut w = ArrayViewMut2::from_shape((o, kg), row).expect("weight shape");
            for j in 0..groups {
                gemm_into(
                    &mut wt.view_mut(),
                    patches.slice(ndarray::s![j * kg..(j + 1) * kg, ..]),
                    gi.slice(ndarray::s![j * og..(j + 1) * og, ..]).t(),
                    false,
                );
                let mut wj = w.slice_mut(ndarray::s![j * og..(j + 1) * og, ..]);
                wj += &wt.t();
            }
        }
    }

    /// Whether [`ConvOp::weight_per_example_by_shifts`] moves less memory than the patch matrix. Per example,
    /// group and output position, at stride 1: the shifted windows read, for each of the `kh·kw` taps, the
    /// cotangent (`o_g = out/groups` values) and the window (`c_g = C/groups`); the patch path writes and
    /// reads the patch column (`2·kh·kw·c_g`) and reads the cotangent once (`o_g`; it is the operand the GEMM
    /// packs, [`weight_product`]). So shifts when `kh·kw·(o_g + c_g) < 2·kh·kw·c_g + o_g`, i.e. when the input
    /// has about as many channels as the output (`resnet-small`'s 16 → 16); a first layer (`c_g` = 1 or 3)
    /// keeps the patch matrix, where its shifted windows would be `kh·kw` matrix–vector products.
    fn shifts_pay(&self) -> bool {
        let Conv2d {
            input,
            kernel: (kh, kw),
            stride,
            groups,
            out_channels,
            ..
        } = self.geo;
        let (taps, cg, og) = (kh * kw, input.channels / groups, out_channels / groups);
        stride == (1, 1) && taps * (og + cg) < 2 * taps * cg + og
    }

    /// [`ConvOp::weight_per_example`] for stride 1 without a patch matrix. On the zero-padded image `x̃`
    /// (`C × H̃·W̃`, `H̃ = H + 2p_h`, `W̃ = W + 2p_w`, a tail of `(kw − 1)·d_w` zeros) the output position
    /// `(u, v)` reads the tap `(a, b')` at `x̃[c, s + (a·d_h·W̃ + b'·d_w)]` with `s = u·W̃ + v`; so, with `G̃_i`
    /// the cotangent spread onto the padded-width grid `s < OH·W̃` (zero at the columns `v ≥ OW`, which read
    /// the next row), every tap's weight block is one product over a shifted window of `x̃`:
    ///
    /// `W̄_i[:, :, a, b'] = G̃_i · x̃[:, δ_{ab'} .. δ_{ab'} + OH·W̃]ᵀ`,  `δ_{ab'} = a·d_h·W̃ + b'·d_w`
    ///
    /// (per group on its rows and channels). Both GEMM operands are read in place (`G̃_iᵀ` is stored
    /// `OH·W̃ × out` so that the kernel needs no packed copy of either), which replaces the `(C·kh·kw) × S`
    /// patch matrix and its packed copy by two copies of the size of one feature map. The zero columns add
    /// exact zeros; the result equals `G_i P_iᵀ` up to the order of the sum over positions.
    fn weight_per_example_by_shifts(&self, x: &Mat, g: &Mat, acc: &mut ArrayViewMut2<'_, f64>) {
        let Conv2d {
            input,
            kernel: (kh, kw),
            padding: (ph, pw),
            dilation: (dh, dw),
            groups,
            out_channels: o,
            ..
        } = self.geo;
        let (oh, ow) = (self.out.height, self.out.width);
        let (hp, wp) = (input.height + 2 * ph, input.width + 2 * pw);
        // One channel of x̃: the padded image and the tail that the last windows overrun.
        let len = hp * wp + (kw - 1) * dw;
        let (cg, og, kg) = (input.channels / groups, o / groups, self.patch_len() / groups);
        let span = oh * wp;
        let x = x.as_standard_layout();
        let xs = x.as_slice().expect("standard layout");
        let g = g.as_standard_layout();
        let gs = g.as_slice().expect("standard layout");
        let feats = input.channels * input.height * input.width;
        let (s, hw) = (self.plane(), input.height * input.width);
        let mut xp = Mat::zeros((input.channels, len));
        let mut gt = Mat::zeros((span, o));
        // `T_{ab'}ᵀ` (`C/groups × out/groups`), written through its transpose so that the GEMM writes
        // column-major blocks in place.
        let mut t = Mat::zeros((cg, og));
        for (i, mut row) in acc.rows_mut().into_iter().enumerate() {
            let xi = &xs[i * feats..(i + 1) * feats];
            for (c, mut dst) in xp.rows_mut().into_iter().enumerate() {
                let dst = dst.as_slice_mut().expect("row-major rows");
                for y in 0..input.height {
                    let at = (y + ph) * wp + pw;
                    dst[at..at + input.width].copy_from_slice(&xi[c * hw + y * input.width..][..input.width]);
                }
            }
            // G̃_iᵀ, eight channels at a time (eight read streams, one contiguous write per position).
            let gi = &gs[i * o * s..(i + 1) * o * s];
            let gts = gt.as_slice_mut().expect("row-major");
            for k0 in (0..o).step_by(8) {
                let k1 = (k0 + 8).min(o);
                for u in 0..oh {
                    for v in 0..ow {
                        let dst = &mut gts[(u * wp + v) * o + k0..][..k1 - k0];
                        for (d, k) in dst.iter_mut().zip(k0..k1) {
                            *d = gi[k * s + u * ow + v];
                        }
                    }
                }
            }
            let row = row.as_slice_mut().expect("row-major rows");
            for j in 0..groups {
                let gj = gt.slice(ndarray::s![.., j * og..(j + 1) * og]);
                for a in 0..kh {
                    for b in 0..kw {
                        let at = a * dh * wp + b * dw;
                        let window = xp.slice(ndarray::s![j * cg..(j + 1) * cg, at..at + span]);
                        gemm_into(&mut t.view_mut().reversed_axes(), gj.t(), window.t(), false);
                        let ts = t.as_slice().expect("row-major");
                        for ol in 0..og {
                            let wrow = &mut row[(j * og + ol) * kg..][..kg];
                            for c in 0..cg {
                                wrow[(c * kh + a) * kw + b] += ts[c * og + ol];
                            }
                        }
                    }
                }
            }
        }
    }

    /// `b̄_i = G_i 1` into row `i` of `acc` (`n × out`), summed as the tape's `sum_cols` sums.
    fn bias_per_example(&self, g: &Mat, acc: &mut ArrayViewMut2<'_, f64>) {
        let (o, s) = (self.geo.out_channels, self.plane());
        let g = g.as_standard_layout();
        let gs = g.as_slice().expect("standard layout");
        for (i, mut row) in acc.rows_mut().into_iter().enumerate() {
            let gi = ArrayView2::from_shape((o, s), &gs[i * o * s..(i + 1) * o * s]).expect("NCHW row");
            row += &gi.sum_axis(ndarray::Axis(1));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn mat(r: usize, c: usize, seed: usize) -> Mat {
        Mat::from_shape_fn((r, c), |(i, j)| {
            (((i * 31 + j * 17 + seed * 13) % 29) as f64 - 14.0) / 9.0
        })
    }

    fn op(geo: Conv2d, bias: bool) -> ConvOp {
        ConvOp {
            geo,
            out: geo.output().unwrap(),
            bias,
        }
    }

    /// Where the patch rows are shifted planes, the one-copy-per-plane im2col writes the run-by-run one's
    /// entries bit for bit: "same" padding, dilations, vertical padding beyond the kernel (output rows without an
    /// input row), 1×1 kernels, groups; and the geometries it does not cover are refused.
    #[test]
    fn plane_copies_equal_run_copies_bitwise() {
        let input = Image::new(3, 5, 6);
        let same = [
            Conv2d {
                padding: (1, 1),
                ..Conv2d::new(input, 4, (3, 3))
            },
            Conv2d {
                padding: (3, 2),
                dilation: (2, 1),
                ..Conv2d::new(input, 2, (2, 5))
            },
            Conv2d {
                padding: (1, 2),
                dilation: (2, 2),
                groups: 3,
                ..Conv2d::new(input, 3, (3, 3))
            },
            Conv2d::new(input, 2, (1, 1)),
            Conv2d {
                padding: (0, 1),
                ..Conv2d::new(input, 2, (4, 3))
            },
        ];
        for (k, geo) in same.into_iter().enumerate() {
            let op = op(geo, false);
            assert!(op.shifts_planes(), "geometry {k}");
            for n in [1, 3] {
                let x = mat(n, input.features().unwrap(), k);
                let src = x.as_slice().unwrap();
                let bits = |v: Vec<f64>| v.into_iter().map(f64::to_bits).collect::<Vec<_>>();
                assert_eq!(
                    bits(op.im2col_planes(src, n)),
                    bits(op.im2col_runs(src, n)),
                    "geometry {k}, n = {n}"
                );
            }
        }
        for geo in [
            Conv2d {
                stride: (2, 1),
                padding: (1, 1),
                ..Conv2d::new(input, 2, (3, 3))
            },
            Conv2d::new(input, 2, (3, 3)),
        ] {
            let op = op(geo, false);
            assert!(!op.shifts_planes());
        }
    }

    /// The tangent-only reverse rule equals the tangents of the reverse rule run on dual values, bit for bit,
    /// for dense and grouped convolutions, with and without bias, and every pattern of present tangents.
    #[test]
    fn tangent_of_the_reverse_rule_equals_the_dual_reverse_rule_bitwise() {
        let input = Image::new(4, 5, 6);
        let geos = [
            Conv2d {
                padding: (1, 1),
                ..Conv2d::new(input, 6, (3, 3))
            },
            Conv2d {
                stride: (2, 1),
                padding: (1, 2),
                dilation: (1, 2),
                groups: 2,
                ..Conv2d::new(input, 4, (3, 2))
            },
        ];
        let n = 3;
        for (k, geo) in geos.into_iter().enumerate() {
            for bias in [false, true] {
                let op = op(geo, bias);
                let (wr, wc) = geo.weight_shape().unwrap();
                let feats = input.features().unwrap();
                let outs = op.out.features().unwrap();
                let primals = [mat(n, feats, k), mat(wr, wc, k + 1), mat(1, wr, k + 2)];
                let tangents = [mat(n, feats, k + 3), mat(wr, wc, k + 4), mat(1, wr, k + 5)];
                let (g, dg) = (mat(n, outs, k + 6), mat(n, outs, k + 7));
                let k_in = 2 + usize::from(bias);
                for mask in 0..(1usize << (k_in + 1)) {
                    let xs: Vec<Dual<Mat>> = (0..k_in)
                        .map(|i| {
                            Dual::new(
                                primals[i].clone(),
                                (mask >> i & 1 == 1).then(|| tangents[i].clone()),
                            )
                        })
                        .collect();
                    let dg = (mask >> k_in & 1 == 1).then_some(&dg);
                    let xr: Vec<&Dual<Mat>> = xs.iter().collect();
                    let y = Dual::new(Mat::zeros((n, outs)), None);
                    for wants in [vec![true; k_in], {
                        let mut w = vec![true; k_in];
                        w[0] = false;
                        w
                    }] {
                        let fast = Primitive::vjp_tangent(&op, &xr, &y, &g, dg, &wants);
                        let gd = Dual::new(g.clone(), dg.cloned());
                        let slow: Vec<Option<Mat>> = Primitive::vjp(&op, &xr, &y, &gd, &wants)
                            .into_iter()
                            .map(|d| d.and_then(|d| d.t))
                            .collect();
                        for (i, (f, s)) in fast.iter().zip(&slow).enumerate() {
                            let bits = |m: &Option<Mat>| {
                                m.as_ref()
                                    .filter(|_| wants[i])
                                    .map(|m| m.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
                            };
                            assert_eq!(
                                bits(f),
                                bits(s),
                                "geometry {k}, bias {bias}, mask {mask:b}, input {i}"
                            );
                        }
                    }
                }
            }
        }
    }
}
