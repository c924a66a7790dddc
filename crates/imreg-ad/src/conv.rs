//! 2-D convolution in PyTorch's conventions (`nn.Conv2d`), as a [`Primitive`].
//!
//! The input `x` is `n × (C·H·W)` (one NCHW example per row, see [`crate::layout`]), the weight `W` is PyTorch's
//! `[out, C/groups, kh, kw]` flattened to `out × (C/groups·kh·kw)`, the optional bias `b` is `1 × out`, and the
//! output is `n × (out·OH·OW)` with `OH = ⌊(H + 2p_h − d_h(k_h − 1) − 1)/s_h⌋ + 1` (likewise `OW`):
//!
//! `y[i, o, u, v] = b_o + Σ_{c ∈ group(o)} Σ_{a, b'} W[o, c, a, b'] · x[i, c, s_h u − p_h + d_h a, s_w v − p_w + d_w b']`
//!
//! (zero outside the image). It is computed by im2col and one GEMM per group: the patches `P = im2col(x)`,
//! `(n·OH·OW) × (C·kh·kw)`, so that `Z = P Wᵀ + 1 bᵀ` (per group, on the group's columns of `P` and rows of
//! `W`) holds the output with the spatial positions as rows, which are then permuted back to NCHW rows.
//!
//! * JVP (bilinear): `ẏ = conv(ẋ, W) + conv(x, Ẇ) + ḃ`.
//! * VJP: with `G` the output cotangent permuted to `(n·OH·OW) × out`, `W̄ = Gᵀ P`, `b̄ = 1ᵀ G`,
//!   `x̄ = col2im(G W)`, col2im being the adjoint (transpose) of im2col.
use crate::error::{AdError, Result};
use crate::graph::{Graph, Var};
use crate::layout::{checked_mul, place_cols, place_rows, slice_cols, slice_rows, Image};
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

impl ConvOp {
    /// The patch matrix `P`: row `(i·OH + u)·OW + v`, column `c·kh·kw + a·kw + b'`.
    fn im2col(&self, x: &Mat) -> Mat {
        let mut cols = Mat::zeros((x.nrows() * self.out.height * self.out.width, self.patch_len()));
        self.for_each_tap(x.nrows(), |r, c, src| cols[(r, c)] = x[src]);
        cols
    }

    /// The adjoint of [`ConvOp::im2col`]: every patch entry added back into its pixel.
    fn col2im(&self, cols: &Mat) -> Mat {
        let n = cols.nrows() / (self.out.height * self.out.width).max(1);
        let mut x = Mat::zeros((
            n,
            self.geo.input.channels * self.geo.input.height * self.geo.input.width,
        ));
        self.for_each_tap(n, |r, c, dst| x[dst] += cols[(r, c)]);
        x
    }

    fn patch_len(&self) -> usize {
        self.geo.input.channels * self.geo.kernel.0 * self.geo.kernel.1
    }

    /// Calls `f(patch row, patch column, (example, input feature))` for every tap that lands inside the image.
    fn for_each_tap(&self, n: usize, mut f: impl FnMut(usize, usize, (usize, usize))) {
        let Conv2d {
            input,
            kernel: (kh, kw),
            stride: (sh, sw),
            padding: (ph, pw),
            dilation: (dh, dw),
            ..
        } = self.geo;
        let (oh, ow) = (self.out.height, self.out.width);
        for i in 0..n {
            for u in 0..oh {
                for v in 0..ow {
                    let r = (i * oh + u) * ow + v;
                    for c in 0..input.channels {
                        for a in 0..kh {
                            let Some(y) = (u * sh + a * dh).checked_sub(ph).filter(|&y| y < input.height)
                            else {
                                continue;
                            };
                            for b in 0..kw {
                                let Some(x) = (v * sw + b * dw).checked_sub(pw).filter(|&x| x < input.width)
                                else {
                                    continue;
                                };
                                let col = (c * kh + a) * kw + b;
                                f(r, col, (i, (c * input.height + y) * input.width + x));
                            }
                        }
                    }
                }
            }
        }
    }

    /// `(n·S) × out` with spatial positions as rows → `n × (out·S)` NCHW rows.
    fn rows_to_nchw(&self, z: &Mat) -> Mat {
        let s = self.out.height * self.out.width;
        let (rows, o) = z.dim();
        let n = rows / s.max(1);
        Mat::from_shape_fn((n, o * s), |(i, f)| z[(i * s + f % s, f / s)])
    }

    /// The inverse permutation of [`ConvOp::rows_to_nchw`] (also its adjoint).
    fn nchw_to_rows(&self, y: &Mat) -> Mat {
        let s = self.out.height * self.out.width;
        let (n, f) = y.dim();
        let o = f / s.max(1);
        Mat::from_shape_fn((n * s, o), |(r, c)| y[(r / s, c * s + r % s)])
    }

    /// `Z = P Wᵀ` group by group (`P`'s and `W`'s blocks of the group, the result in the group's columns).
    fn product<T: Tensor>(&self, p: &T, w: &T) -> T {
        let g = self.geo.groups;
        if g == 1 {
            return T::matmul(p, false, w, true);
        }
        let (o, k) = (self.geo.out_channels, self.patch_len());
        let (og, kg) = (o / g, k / g);
        (0..g)
            .map(|j| {
                let pj = p.linear_map(&|m| slice_cols(m, j * kg, kg));
                let wj = w.linear_map(&|m| slice_rows(m, j * og, og));
                T::matmul(&pj, false, &wj, true).linear_map(&|m| place_cols(m, j * og, o))
            })
            .reduce(|a, b| a.add(&b))
            .expect("groups > 0")
    }

    /// `(W̄, P̄) = (Gᵀ P, G W)` group by group, each only when wanted.
    fn product_vjp<T: Tensor>(
        &self,
        p: &T,
        w: &T,
        g: &T,
        want_w: bool,
        want_p: bool,
    ) -> (Option<T>, Option<T>) {
        let groups = self.geo.groups;
        if groups == 1 {
            return (
                want_w.then(|| T::matmul(g, true, p, false)),
                want_p.then(|| T::matmul(g, false, w, false)),
            );
        }
        let (o, k) = (self.geo.out_channels, self.patch_len());
        let (og, kg) = (o / groups, k / groups);
        let mut gw: Option<T> = None;
        let mut gp: Option<T> = None;
        for j in 0..groups {
            let gj = g.linear_map(&|m| slice_cols(m, j * og, og));
            if want_w {
                let pj = p.linear_map(&|m| slice_cols(m, j * kg, kg));
                let t = T::matmul(&gj, true, &pj, false).linear_map(&|m| place_rows(m, j * og, o));
                gw = crate::dual::add_opt(gw, Some(t));
            }
            if want_p {
                let wj = w.linear_map(&|m| slice_rows(m, j * og, og));
                let t = T::matmul(&gj, false, &wj, false).linear_map(&|m| place_cols(m, j * kg, k));
                gp = crate::dual::add_opt(gp, Some(t));
            }
        }
        (gw, gp)
    }

    fn patches<T: Tensor>(&self, x: &T) -> T {
        x.linear_map(&|m| self.im2col(m))
    }
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
        let mut z = self.product(&self.patches(x[0]), x[1]);
        if self.bias {
            z = z.add_row(x[2]);
        }
        z.linear_map(&|m| self.rows_to_nchw(m))
    }
    fn jvp<T: Tensor>(&self, x: &[&T], _y: &T, dx: &[Option<&T>]) -> Option<T> {
        let z = crate::dual::add_opt(
            dx[0].map(|dx| self.product(&self.patches(dx), x[1])),
            dx[1].map(|dw| self.product(&self.patches(x[0]), dw)),
        );
        let z = match (z, dx.get(2).copied().flatten()) {
            (Some(z), Some(db)) => Some(z.add_row(db)),
            (None, Some(db)) => {
                let rows = x[0].shape().0 * self.out.plane().unwrap_or(0);
                Some(db.broadcast_to(rows, self.geo.out_channels))
            }
            (z, None) => z,
        };
        z.map(|z| z.linear_map(&|m| self.rows_to_nchw(m)))
    }
    fn vjp<T: Tensor>(&self, x: &[&T], _y: &T, g: &T, wants: &[bool]) -> Vec<Option<T>> {
        let g = g.linear_map(&|m| self.nchw_to_rows(m));
        let p = wants[1].then(|| self.patches(x[0]));
        let (gw, gp) = match &p {
            Some(p) => self.product_vjp(p, x[1], &g, true, wants[0]),
            None => self.product_vjp(&g, x[1], &g, false, wants[0]),
        };
        let mut out = vec![gp.map(|gp| gp.linear_map(&|m| self.col2im(m))), gw];
        if self.bias {
            out.push(wants[2].then(|| g.sum_rows()));
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
