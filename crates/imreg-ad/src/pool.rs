//! Pooling over NCHW rows ([`crate::layout`]) as [`Primitive`]s, in PyTorch's conventions.
//!
//! Every pool reads, for each output feature `(c, u, v)`, a window `Ω(c, u, v)` of input features of channel
//! `c`. With stride `s`, padding `p` and kernel `k`, the window covers rows `s_h u − p_h + a`, `0 ≤ a < k_h`
//! (likewise columns), clipped to the image, and `OH = ⌊(H + 2p_h − k_h)/s_h⌋ + 1`.
//!
//! * Average pool (`nn.AvgPool2d`, `count_include_pad = True`): `y = (1/(k_h k_w)) Σ_{Ω} x`, linear, so
//!   `ẏ = pool(ẋ)` and `x̄ = poolᵀ(ȳ)`.
//! * Adaptive average pool (`nn.AdaptiveAvgPool2d`): output `(OH, OW)`, window rows
//!   `⌊uH/OH⌋ ≤ y < ⌈(u+1)H/OH⌉`, divided by the window's size; the global average pool is `(1, 1)`.
//! * Max pool (`nn.MaxPool2d`, padding ≤ k/2 as PyTorch requires): `y = x_{m}`, `m = argmax_Ω x` (the first
//!   maximum in window order). It is piecewise linear: on the active piece `ẏ = ẋ_m`, `x̄ = ȳ` scattered to
//!   `m`, and its second derivative is zero — the HVP is that of the active piece, as in PyTorch and JAX.
use crate::error::{AdError, Result};
use crate::graph::{Graph, Var};
use crate::layout::Image;
use crate::primitive::{expect_inputs, expect_shape, Primitive};
use crate::tensor::{Mat, Tensor};
use std::sync::{Arc, Mutex};

/// Kernel, stride and padding of a pooling layer on inputs of shape `input`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    pub input: Image,
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
}

impl Pool2d {
    /// Stride = kernel and no padding (PyTorch's default).
    pub fn new(input: Image, kernel: (usize, usize)) -> Self {
        Pool2d {
            input,
            kernel,
            stride: kernel,
            padding: (0, 0),
        }
    }

    /// The windows, checked: positive kernel and stride, padding ≤ kernel/2, a kernel that fits.
    fn windows(&self, op: &'static str) -> Result<Windows> {
        let bad = |reason: String| AdError::Invalid { what: op, reason };
        let ((kh, kw), (sh, sw), (ph, pw)) = (self.kernel, self.stride, self.padding);
        if kh == 0 || kw == 0 || sh == 0 || sw == 0 {
            return Err(bad(format!(
                "kernel {:?} and stride {:?} must be positive",
                self.kernel, self.stride
            )));
        }
        if 2 * ph > kh || 2 * pw > kw {
            return Err(bad(format!(
                "padding {:?} must be at most half the kernel {:?}",
                self.padding, self.kernel
            )));
        }
        let side = |size: usize, k: usize, s: usize, p: usize| -> Result<usize> {
            let padded = size
                .checked_add(2 * p)
                .ok_or_else(|| bad("padded size overflows".into()))?;
            if padded < k {
                return Err(bad(format!(
                    "kernel {k} is larger than the padded input {padded}"
                )));
            }
            Ok((padded - k) / s + 1)
        };
        let oh = side(self.input.height, kh, sh, ph)?;
        let ow = side(self.input.width, kw, sw, pw)?;
        let clip = |start: usize, k: usize, p: usize, size: usize| {
            let lo = start.saturating_sub(p);
            let hi = (start + k).saturating_sub(p).min(size);
            lo..hi
        };
        Windows::build(self.input, Image::new(self.input.channels, oh, ow), |u, v| {
            (
                clip(u * sh, kh, ph, self.input.height),
                clip(v * sw, kw, pw, self.input.width),
            )
        })
    }
}

/// For each output feature, the input features of its window. Every channel has the same windows on its own
/// plane, so they are stored once, for one plane (CSR: the window of the plane's output position `q` is
/// `index[start[q]..start[q + 1]]`, offsets in the input plane), and output feature `j = c·OH·OW + q` reads
/// the input features `c·H·W + index[…]`. (One plane's index stays in the L1 cache while every channel and
/// example is pooled.)
#[derive(Debug)]
struct Windows {
    input: Image,
    output: Image,
    start: Vec<usize>,
    index: Vec<usize>,
}

impl Windows {
    /// Windows of the rectangle `rect(u, v) = (rows, cols)` in every channel.
    fn build(
        input: Image,
        output: Image,
        rect: impl Fn(usize, usize) -> (std::ops::Range<usize>, std::ops::Range<usize>),
    ) -> Result<Windows> {
        output.features()?;
        let mut start = vec![0];
        let mut index = Vec::new();
        for u in 0..output.height {
            for v in 0..output.width {
                let (rows, cols) = rect(u, v);
                for y in rows {
                    index.extend(cols.clone().map(|x| y * input.width + x));
                }
                start.push(index.len());
            }
        }
        Ok(Windows {
            input,
            output,
            start,
            index,
        })
    }

    /// The window of output position `q` of a plane, as offsets in the input plane.
    fn window(&self, q: usize) -> &[usize] {
        &self.index[self.start[q]..self.start[q + 1]]
    }

    /// `OH · OW`.
    fn out_plane(&self) -> usize {
        self.start.len() - 1
    }

    /// `H · W`.
    fn in_plane(&self) -> usize {
        self.input.height * self.input.width
    }

    fn out_len(&self) -> usize {
        self.output.channels * self.out_plane()
    }

    fn in_len(&self) -> usize {
        self.input.channels * self.in_plane()
    }

    /// `y_ij = w_q Σ_{k ∈ Ω_j} x_ik` for `j = c·OH·OW + q`, the weights `w_q` given per window of a plane.
    fn average(&self, x: &Mat, w: &[f64]) -> Mat {
        let (pin, pout) = (self.in_plane(), self.out_plane());
        self.map_rows(x, self.in_len(), self.out_len(), |xi, yi| {
            for (xc, yc) in xi.chunks_exact(pin).zip(yi.chunks_exact_mut(pout)) {
                for (q, y) in yc.iter_mut().enumerate() {
                    *y = w[q] * self.window(q).iter().map(|&k| xc[k]).sum::<f64>();
                }
            }
        })
    }

    /// The adjoint of [`Windows::average`].
    fn average_adjoint(&self, g: &Mat, w: &[f64]) -> Mat {
        let (pin, pout) = (self.in_plane(), self.out_plane());
        self.map_rows(g, self.out_len(), self.in_len(), |gi, xi| {
            for (xc, gc) in xi.chunks_exact_mut(pin).zip(gi.chunks_exact(pout)) {
                for (q, &gq) in gc.iter().enumerate() {
                    for &k in self.window(q) {
                        xc[k] += w[q] * gq;
                    }
                }
            }
        })
    }

    /// The first maximum of every window of every row, as input features (`n × out`, row-major).
    fn argmax(&self, x: &Mat) -> Vec<usize> {
        let x = x.as_standard_layout();
        let src = x.as_slice().expect("standard layout");
        let o = self.out_len();
        let mut m = vec![0; x.nrows() * o];
        if o == 0 {
            return m;
        }
        let (pin, pout) = (self.in_plane(), self.out_plane());
        for (xi, mi) in src.chunks_exact(self.in_len()).zip(m.chunks_exact_mut(o)) {
            let planes = xi.chunks_exact(pin).zip(mi.chunks_exact_mut(pout));
            for (c, (xc, mc)) in planes.enumerate() {
                for (q, best) in mc.iter_mut().enumerate() {
                    let w = self.window(q);
                    let (b, _) = w[1..].iter().fold((w[0], xc[w[0]]), |(b, bv), &k| {
                        let v = xc[k];
                        if v > bv {
                            (k, v)
                        } else {
                            (b, bv)
                        }
                    });
                    *best = c * pin + b;
                }
            }
        }
        m
    }

    fn gather(&self, x: &Mat, m: &[usize]) -> Mat {
        let o = self.out_len();
        let mut i = 0;
        self.map_rows(x, self.in_len(), o, |xi, yi| {
            let mi = &m[i * o..(i + 1) * o];
            yi.iter_mut().zip(mi).for_each(|(y, &k)| *y = xi[k]);
            i += 1;
        })
    }

    /// The adjoint of [`Windows::gather`].
    fn scatter(&self, g: &Mat, m: &[usize]) -> Mat {
        let o = self.out_len();
        let mut i = 0;
        self.map_rows(g, o, self.in_len(), |gi, xi| {
            let mi = &m[i * o..(i + 1) * o];
            gi.iter().zip(mi).for_each(|(g, &k)| xi[k] += g);
            i += 1;
        })
    }

    /// `n × to` rows `f(row of x, zeroed row of the result)` for the `n × from` matrix `x`.
    fn map_rows(&self, x: &Mat, from: usize, to: usize, mut f: impl FnMut(&[f64], &mut [f64])) -> Mat {
        let n = x.nrows();
        let x = x.as_standard_layout();
        let src = x.as_slice().expect("standard layout");
        let mut y = vec![0.0; n * to];
        if to > 0 && from > 0 {
            src.chunks_exact(from)
                .zip(y.chunks_exact_mut(to))
                .for_each(|(xi, yi)| f(xi, yi));
        }
        Mat::from_shape_vec((n, to), y).expect("pool shape")
    }

    fn check_input(&self, op: &'static str, inputs: &[(usize, usize)]) -> Result<(usize, usize)> {
        expect_inputs(op, inputs, 1)?;
        let n = inputs[0].0;
        expect_shape(op, "input [n, C·H·W]", inputs[0], (n, self.input.features()?))?;
        Ok((n, self.output.features()?))
    }
}

/// An average pool (plain or adaptive): `y = A x` row by row with the window weights of `A` (one per window
/// of a plane; every channel has the same).
#[derive(Debug)]
struct AvgPoolOp {
    name: &'static str,
    windows: Arc<Windows>,
    weights: Arc<Vec<f64>>,
}

impl Primitive for AvgPoolOp {
    fn name(&self) -> &'static str {
        self.name
    }
    fn output_shape(&self, inputs: &[(usize, usize)]) -> Result<(usize, usize)> {
        self.windows.check_input(self.name, inputs)
    }
    fn forward<T: Tensor>(&self, x: &[&T]) -> T {
        x[0].linear_map(&|m| self.windows.average(m, &self.weights))
    }
    fn jvp<T: Tensor>(&self, _x: &[&T], _y: &T, dx: &[Option<&T>]) -> Option<T> {
        dx[0].map(|d| d.linear_map(&|m| self.windows.average(m, &self.weights)))
    }
    fn vjp<T: Tensor>(&self, _x: &[&T], _y: &T, g: &T, _wants: &[bool]) -> Vec<Option<T>> {
        vec![Some(
            g.linear_map(&|m| self.windows.average_adjoint(m, &self.weights)),
        )]
    }
}

/// A max pool: `y = x_m` with the argmax `m` of the innermost primal value (a constant of the active piece).
///
/// The forward, tangent and reverse rules of one tape node all see the same input value (the tape's), so the
/// argmax is kept from the first rule that computes it, tagged with the identity of that value (its buffer,
/// length and a few entries); a rule that sees another value computes its own.
#[derive(Debug)]
struct MaxPoolOp {
    windows: Windows,
    argmax: Mutex<Option<(ValueTag, Arc<Vec<usize>>)>>,
}

/// The identity of a primal value: its buffer's address, its shape and its first, middle and last entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ValueTag {
    ptr: usize,
    dim: (usize, usize),
    entries: [u64; 3],
}

impl ValueTag {
    fn of(x: &Mat) -> Option<ValueTag> {
        let s = x.as_slice()?;
        let at = |i: usize| s.get(i).map_or(0, |v| v.to_bits());
        Some(ValueTag {
            ptr: s.as_ptr() as usize,
            dim: x.dim(),
            entries: [at(0), at(s.len() / 2), at(s.len().saturating_sub(1))],
        })
    }
}

impl MaxPoolOp {
    /// The argmax of `x`, from the kept one when `x` is the value it was computed for.
    fn argmax(&self, x: &Mat) -> Arc<Vec<usize>> {
        let tag = ValueTag::of(x);
        let mut kept = self.argmax.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some(tag), Some((t, m))) = (tag, kept.as_ref()) {
            if *t == tag {
                return Arc::clone(m);
            }
        }
        let m = Arc::new(self.windows.argmax(x));
        if let Some(tag) = tag {
            *kept = Some((tag, Arc::clone(&m)));
        }
        m
    }
}

impl Primitive for MaxPoolOp {
    fn name(&self) -> &'static str {
        "max_pool2d"
    }
    fn output_shape(&self, inputs: &[(usize, usize)]) -> Result<(usize, usize)> {
        self.windows.check_input("max_pool2d", inputs)
    }
    fn forward<T: Tensor>(&self, x: &[&T]) -> T {
        let m = self.argmax(x[0].primal());
        x[0].linear_map(&|v| self.windows.gather(v, &m))
    }
    fn jvp<T: Tensor>(&self, x: &[&T], _y: &T, dx: &[Option<&T>]) -> Option<T> {
        let m = self.argmax(x[0].primal());
        dx[0].map(|d| d.linear_map(&|v| self.windows.gather(v, &m)))
    }
    fn vjp<T: Tensor>(&self, x: &[&T], _y: &T, g: &T, _wants: &[bool]) -> Vec<Option<T>> {
        let m = self.argmax(x[0].primal());
        vec![Some(g.linear_map(&|v| self.windows.scatter(v, &m)))]
    }
}

impl<T: Tensor> Graph<T> {
    /// PyTorch's `nn.MaxPool2d` on NCHW rows (see [`crate::pool`]).
    pub fn max_pool2d(&mut self, x: Var, pool: &Pool2d) -> Result<Var> {
        let windows = pool.windows("max_pool2d")?;
        self.apply(
            MaxPoolOp {
                windows,
                argmax: Mutex::new(None),
            },
            &[x],
        )
    }

    /// PyTorch's `nn.AvgPool2d` (`count_include_pad = True`: every window is divided by `kh · kw`).
    pub fn avg_pool2d(&mut self, x: Var, pool: &Pool2d) -> Result<Var> {
        let windows = pool.windows("avg_pool2d")?;
        let w = 1.0 / (pool.kernel.0 * pool.kernel.1) as f64;
        let weights = vec![w; windows.out_plane()];
        self.apply(
            AvgPoolOp {
                name: "avg_pool2d",
                windows: Arc::new(windows),
                weights: Arc::new(weights),
            },
            &[x],
        )
    }

    /// PyTorch's `nn.AdaptiveAvgPool2d(output)` on inputs of shape `input`; `output = (1, 1)` is the global
    /// average pool.
    pub fn adaptive_avg_pool2d(&mut self, x: Var, input: Image, output: (usize, usize)) -> Result<Var> {
        let (oh, ow) = output;
        if oh == 0 || ow == 0 || oh > input.height || ow > input.width {
            return Err(AdError::Invalid {
                what: "adaptive_avg_pool2d",
                reason: format!(
                    "output {oh}×{ow} must be positive and at most the input {}×{}",
                    input.height, input.width
                ),
            });
        }
        let range = |u: usize, o: usize, size: usize| (u * size / o)..((u + 1) * size).div_ceil(o);
        let windows = Windows::build(input, Image::new(input.channels, oh, ow), |u, v| {
            (range(u, oh, input.height), range(v, ow, input.width))
        })?;
        let weights = (0..windows.out_plane())
            .map(|q| 1.0 / windows.window(q).len() as f64)
            .collect();
        self.apply(
            AvgPoolOp {
                name: "adaptive_avg_pool2d",
                windows: Arc::new(windows),
                weights: Arc::new(weights),
            },
            &[x],
        )
    }

    /// The mean of each channel over its `H × W` plane: `n × C` (PyTorch's `AdaptiveAvgPool2d(1)` + flatten).
    pub fn global_avg_pool2d(&mut self, x: Var, input: Image) -> Result<Var> {
        self.adaptive_avg_pool2d(x, input, (1, 1))
    }
}
