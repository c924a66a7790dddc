//! conv2d's reverse rules against the definition summed term by term: for `f = Σ R ⊙ conv(x, W, b)` the
//! gradient is `x̄[i, c, y, x'] = Σ R[i, o, u, v] W[o, c, a, b']`, `W̄[o, c, a, b'] = Σ R[i, o, u, v] x[i, c, y, x']`
//! and `b̄_o = Σ R[i, o, u, v]` over the taps that read that pixel (resp. weight), and, `f` being bilinear in
//! `(x, W)`, its HVP in a direction `(ẋ, Ẇ, ḃ)` is `(x̄ at W = Ẇ, W̄ at x = ẋ, 0)`. The per-example rule
//! `W̄_i = G_i P_iᵀ` is checked the same way example by example and against one tape per example, and all of it
//! is bitwise the same at 1 and 2 rayon threads. Geometries: dense 3×3 with padding on maps large enough that
//! the GEMM splits its inner dimension, strided/dilated/grouped, dilated/grouped with stride 1 and uneven
//! padding, depthwise and 1×1 without bias, and two with more input than output channels (the per-example
//! weight rule takes shifted windows of the padded image at stride 1 where they move less memory than the
//! patch matrix, `ConvOp::shifts_pay`: here the depthwise, 1×1 and the last two cases; the others take the
//! patch matrix).
use imreg_ad::{Conv2d, Graph, Image, Mat, Point, Program, Result, Tensor, Var};
mod common;
use common::{bits, max_rel_err, on_threads, random_point};
use ndarray::Array2;

/// `(geometry, examples, bias)`.
fn cases() -> Vec<(Conv2d, usize, bool)> {
    vec![
        (
            Conv2d {
                padding: (1, 1),
                ..Conv2d::new(Image::new(8, 16, 16), 12, (3, 3))
            },
            3,
            true,
        ),
        (
            Conv2d {
                stride: (2, 1),
                padding: (1, 2),
                dilation: (1, 2),
                groups: 2,
                ..Conv2d::new(Image::new(4, 7, 6), 6, (3, 2))
            },
            2,
            true,
        ),
        (
            Conv2d {
                padding: (2, 1),
                dilation: (2, 2),
                groups: 2,
                ..Conv2d::new(Image::new(4, 7, 6), 6, (3, 2))
            },
            2,
            true,
        ),
        (
            Conv2d {
                padding: (1, 1),
                groups: 3,
                ..Conv2d::new(Image::new(3, 6, 5), 3, (3, 3))
            },
            2,
            true,
        ),
        (Conv2d::new(Image::new(5, 4, 4), 7, (1, 1)), 3, false),
        // More input than output channels: the per-example weight rule takes the shifted windows (dense, and
        // dilated and grouped with uneven padding); the cases above with fewer take the patch matrix.
        (
            Conv2d {
                padding: (1, 1),
                ..Conv2d::new(Image::new(12, 9, 8), 8, (3, 3))
            },
            2,
            true,
        ),
        (
            Conv2d {
                padding: (2, 1),
                dilation: (2, 2),
                groups: 2,
                ..Conv2d::new(Image::new(8, 7, 6), 4, (3, 2))
            },
            2,
            false,
        ),
    ]
}

/// Calls `f(i, o, out index, x index, w index)` for every tap of the convolution on `n` examples that lands
/// inside the image (rows of `x` and of the output are NCHW, the weight is `out × (C/groups·kh·kw)`).
fn for_each_tap(geo: &Conv2d, n: usize, mut f: impl FnMut(usize, usize, usize, usize, usize)) {
    let out = geo.output().unwrap();
    let im = geo.input;
    let (kh, kw) = geo.kernel;
    let (cin, cout) = (im.channels / geo.groups, geo.out_channels / geo.groups);
    for i in 0..n {
        for o in 0..geo.out_channels {
            for u in 0..out.height {
                for v in 0..out.width {
                    let y_at = (o * out.height + u) * out.width + v;
                    for cg in 0..cin {
                        let c = (o / cout) * cin + cg;
                        for a in 0..kh {
                            for b in 0..kw {
                                let yy =
                                    (u * geo.stride.0 + a * geo.dilation.0) as isize - geo.padding.0 as isize;
                                let xx =
                                    (v * geo.stride.1 + b * geo.dilation.1) as isize - geo.padding.1 as isize;
                                if yy < 0 || xx < 0 || yy >= im.height as isize || xx >= im.width as isize {
                                    continue;
                                }
                                let x_at = (c * im.height + yy as usize) * im.width + xx as usize;
                                f(i, o, y_at, x_at, ((o * cin + cg) * kh + a) * kw + b);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `(x̄, W̄, b̄)` of `Σ R ⊙ conv(x, W, b)` by the definition.
fn direct_grads(geo: &Conv2d, n: usize, r: &Mat, x: &[f64], w: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (feats, outs) = (
        geo.input.features().unwrap(),
        geo.output().unwrap().features().unwrap(),
    );
    let (wr, wc) = geo.weight_shape().unwrap();
    let (mut dx, mut dw, mut db) = (vec![0.0; n * feats], vec![0.0; wr * wc], vec![0.0; wr]);
    for_each_tap(geo, n, |i, _, y_at, x_at, w_at| {
        let ri = r[(i, y_at)];
        dx[i * feats + x_at] += ri * w[w_at];
        dw[w_at] += ri * x[i * feats + x_at];
    });
    for i in 0..n {
        for (o, d) in db.iter_mut().enumerate() {
            *d += (0..outs / wr).map(|k| r[(i, o * (outs / wr) + k)]).sum::<f64>();
        }
    }
    (dx, dw, db)
}

/// `Σ R ⊙ conv(x, W, b)` with `x`, `W` (and `b`) the leaves.
#[derive(Debug)]
struct Bilinear {
    geo: Conv2d,
    n: usize,
    bias: bool,
    r: Mat,
}

impl Program for Bilinear {
    fn leaf_shapes(&self) -> Vec<(usize, usize)> {
        let mut s = vec![
            (self.n, self.geo.input.features().unwrap()),
            self.geo.weight_shape().unwrap(),
        ];
        if self.bias {
            s.push((1, self.geo.out_channels));
        }
        s
    }
    fn build<T: Tensor>(&self, g: &mut Graph<T>, l: &[Var]) -> Result<Var> {
        let y = g.conv2d(l[0], l[1], self.bias.then(|| l[2]), &self.geo)?;
        let r = g.constant(self.r.clone());
        let s = g.mul(y, r)?;
        Ok(g.sum(s))
    }
}

/// `Σ_{i ∈ rows} Σ R_i ⊙ conv(x_i, W, b)` with the examples `x` fixed and `W` (and `b`) the leaves.
#[derive(Debug)]
struct Examples<'a> {
    geo: Conv2d,
    bias: bool,
    x: &'a Mat,
    r: &'a Mat,
    rows: Vec<usize>,
}

impl<'a> Examples<'a> {
    /// The program over all `n` rows of `x` (inputs) and `r` (output weights).
    fn all(geo: Conv2d, bias: bool, x: &'a Mat, r: &'a Mat) -> Self {
        Examples {
            geo,
            bias,
            x,
            r,
            rows: (0..x.nrows()).collect(),
        }
    }
}

impl Program for Examples<'_> {
    fn leaf_shapes(&self) -> Vec<(usize, usize)> {
        let mut s = vec![self.geo.weight_shape().unwrap()];
        if self.bias {
            s.push((1, self.geo.out_channels));
        }
        s
    }
    fn build<T: Tensor>(&self, g: &mut Graph<T>, l: &[Var]) -> Result<Var> {
        let x = g.constant(self.x.select(ndarray::Axis(0), &self.rows));
        let y = g.conv2d(x, l[0], self.bias.then(|| l[1]), &self.geo)?;
        let r = g.constant(self.r.select(ndarray::Axis(0), &self.rows));
        let s = g.mul(y, r)?;
        Ok(g.sum(s))
    }
}

fn mat(rows: usize, cols: usize, seed: u64) -> Mat {
    Mat::from_shape_vec((rows, cols), random_point(rows * cols, seed)).unwrap()
}

fn leaves_of(p: &Bilinear, seed: u64) -> Vec<f64> {
    let len = p.leaf_shapes().iter().map(|(r, c)| r * c).sum();
    random_point(len, seed)
}

#[test]
fn gradient_and_hvp_equal_the_direct_sums() {
    for (k, (geo, n, bias)) in cases().into_iter().enumerate() {
        let outs = geo.output().unwrap().features().unwrap();
        let p = Bilinear {
            geo,
            n,
            bias,
            r: mat(n, outs, 10 + k as u64),
        };
        let (nx, nw) = (n * geo.input.features().unwrap(), {
            let (a, b) = geo.weight_shape().unwrap();
            a * b
        });
        let theta = leaves_of(&p, 20 + k as u64);
        let (x, w) = (&theta[..nx], &theta[nx..nx + nw]);
        let (dx, dw, db) = direct_grads(&geo, n, &p.r, x, w);
        let (_, g) = imreg_ad::grad(&p, &theta).unwrap();
        assert!(max_rel_err(&g[..nx], &dx) <= 1e-12, "case {k}: x̄");
        assert!(max_rel_err(&g[nx..nx + nw], &dw) <= 1e-12, "case {k}: W̄");
        if bias {
            assert!(max_rel_err(&g[nx + nw..], &db) <= 1e-12, "case {k}: b̄");
        }
        let v = leaves_of(&p, 30 + k as u64);
        let hv = imreg_ad::hvp(&p, &theta, &v).unwrap();
        let (hx, _, _) = direct_grads(&geo, n, &p.r, x, &v[nx..nx + nw]);
        let (_, hw, _) = direct_grads(&geo, n, &p.r, &v[..nx], w);
        assert!(max_rel_err(&hv[..nx], &hx) <= 1e-12, "case {k}: (Hv)_x");
        assert!(max_rel_err(&hv[nx..nx + nw], &hw) <= 1e-12, "case {k}: (Hv)_W");
        assert!(hv[nx + nw..].iter().all(|&h| h == 0.0), "case {k}: (Hv)_b");
    }
}

#[test]
fn per_example_weight_gradients_equal_the_direct_sums_and_one_tape_per_example() {
    for (k, (geo, n, bias)) in cases().into_iter().enumerate() {
        let (feats, outs) = (
            geo.input.features().unwrap(),
            geo.output().unwrap().features().unwrap(),
        );
        let (x, r) = (mat(n, feats, 40 + k as u64), mat(n, outs, 50 + k as u64));
        let all = Examples::all(geo, bias, &x, &r);
        let shapes = all.leaf_shapes();
        let len: usize = shapes.iter().map(|(a, b)| a * b).sum();
        let theta = random_point(len, 60 + k as u64);
        let at = Point::new(&shapes, &theta).unwrap();
        let mut rows = Array2::from_elem((n, len), f64::NAN);
        imreg_ad::per_example_grads_into(&all, &at, rows.view_mut())
            .unwrap()
            .expect("conv2d has a per-example rule on its weight and bias");
        for i in 0..n {
            let xi = x.row(i).to_vec();
            let ri = r.select(ndarray::Axis(0), &[i]);
            let (_, dw, db) = direct_grads(&geo, 1, &ri, &xi, &theta);
            let row = rows.row(i).to_vec();
            let nw = dw.len();
            assert!(
                max_rel_err(&row[..nw], &dw) <= 1e-12,
                "case {k}, example {i}: W̄_i"
            );
            if bias {
                assert!(
                    max_rel_err(&row[nw..], &db) <= 1e-12,
                    "case {k}, example {i}: b̄_i"
                );
            }
            let one = Examples { rows: vec![i], ..all };
            let (_, gi) = imreg_ad::grad(&one, &theta).unwrap();
            assert!(max_rel_err(&row, &gi) <= 1e-13, "case {k}, example {i}: one tape");
        }
    }
}

/// Both per-example paths: case 0 takes the patch matrix, case 5 the shifted windows.
#[test]
fn conv_derivatives_are_bitwise_the_same_at_one_and_two_threads() {
    let cases = cases();
    for k in [0, 5] {
        let (geo, n, bias) = cases[k];
        let (feats, outs) = (
            geo.input.features().unwrap(),
            geo.output().unwrap().features().unwrap(),
        );
        let p = Bilinear {
            geo,
            n,
            bias,
            r: mat(n, outs, 70),
        };
        let theta = leaves_of(&p, 71);
        let v = leaves_of(&p, 72);
        let (x, r) = (mat(n, feats, 73), mat(n, outs, 74));
        let ex = Examples::all(geo, bias, &x, &r);
        let shapes = ex.leaf_shapes();
        let w = &theta[n * feats..];
        let derivatives = || {
            let (_, g) = imreg_ad::grad(&p, &theta).unwrap();
            let hv = imreg_ad::hvp(&p, &theta, &v).unwrap();
            let at = Point::new(&shapes, w).unwrap();
            let mut rows = Array2::zeros((n, w.len()));
            imreg_ad::per_example_grads_into(&ex, &at, rows.view_mut())
                .unwrap()
                .unwrap();
            (bits(&g), bits(&hv), bits(rows.as_slice().unwrap()))
        };
        assert_eq!(on_threads(1, derivatives), on_threads(2, derivatives), "case {k}");
    }
}
