//! The layers of convolutional networks (conv2d, pools, concat, leaky ReLU, ELU, layer norm, batch norm), each
//! a `Primitive`: value, gradient, HVP and third-order derivative against central differences (`check_grads`
//! at order 2 on `f` and on `∇f`), HVP against the dense forward-over-forward Hessian, HVP symmetry, prepared
//! HVPs equal to per-call HVPs, and typed errors for bad shapes.
use imreg_ad::{BatchNormMode, Conv2d, Graph, Image, Mat, Pool2d, Program, Result, Tensor, Var};
mod common;
use common::{assert_passes_check_grads, dot, max_rel_err, random_point};

const N: usize = 2;

#[derive(Clone, Debug)]
enum Case {
    Conv { geo: Conv2d, bias: bool },
    MaxPool(Pool2d),
    AvgPool(Pool2d),
    Adaptive(Image, (usize, usize)),
    Global(Image),
    Concat,
    LeakyRelu,
    Elu,
    LayerNorm,
    BatchNormTrain(Image),
    BatchNormEval(Image),
}

fn conv(input: Image, out: usize, kernel: (usize, usize)) -> Conv2d {
    Conv2d::new(input, out, kernel)
}

fn cases() -> Vec<Case> {
    let im = Image::new(2, 4, 4);
    let odd = Image::new(3, 5, 4);
    vec![
        Case::Conv {
            geo: conv(im, 3, (3, 3)),
            bias: true,
        },
        Case::Conv {
            geo: Conv2d {
                stride: (2, 2),
                padding: (1, 1),
                ..conv(odd, 2, (3, 3))
            },
            bias: true,
        },
        Case::Conv {
            geo: Conv2d {
                dilation: (2, 1),
                padding: (1, 0),
                ..conv(odd, 2, (2, 3))
            },
            bias: false,
        },
        Case::Conv {
            // depthwise with a channel multiplier of 2
            geo: Conv2d {
                groups: 3,
                padding: (1, 1),
                stride: (1, 2),
                ..conv(odd, 6, (3, 3))
            },
            bias: true,
        },
        Case::MaxPool(Pool2d::new(im, (2, 2))),
        Case::MaxPool(Pool2d {
            stride: (2, 2),
            padding: (1, 1),
            ..Pool2d::new(odd, (3, 3))
        }),
        Case::AvgPool(Pool2d {
            stride: (1, 2),
            padding: (1, 1),
            ..Pool2d::new(odd, (2, 3))
        }),
        Case::Adaptive(odd, (2, 3)),
        Case::Global(odd),
        Case::Concat,
        Case::LeakyRelu,
        Case::Elu,
        Case::LayerNorm,
        Case::BatchNormTrain(im),
        Case::BatchNormTrain(Image::new(3, 1, 1)),
        Case::BatchNormEval(im),
    ]
}

impl Program for Case {
    fn leaf_shapes(&self) -> Vec<(usize, usize)> {
        let f = |im: Image| im.features().unwrap();
        match self {
            Case::Conv { geo, bias } => {
                let mut s = vec![(N, f(geo.input)), geo.weight_shape().unwrap()];
                if *bias {
                    s.push((1, geo.out_channels));
                }
                s
            }
            Case::MaxPool(p) | Case::AvgPool(p) => vec![(N, f(p.input))],
            Case::Adaptive(im, _) | Case::Global(im) => vec![(N, f(*im))],
            Case::Concat => vec![(N, 3), (N, 5)],
            Case::LeakyRelu | Case::Elu => vec![(N, 5)],
            Case::LayerNorm => vec![(3, 5), (1, 5), (1, 5)],
            Case::BatchNormTrain(im) | Case::BatchNormEval(im) => {
                let rows = if im.plane().unwrap() == 1 { 4 } else { N };
                vec![(rows, f(*im)), (1, im.channels), (1, im.channels)]
            }
        }
    }

    fn build<T: Tensor>(&self, g: &mut Graph<T>, l: &[Var]) -> Result<Var> {
        let y = match self {
            Case::Conv { geo, bias } => g.conv2d(l[0], l[1], bias.then(|| l[2]), geo)?,
            Case::MaxPool(p) => g.max_pool2d(l[0], p)?,
            Case::AvgPool(p) => g.avg_pool2d(l[0], p)?,
            Case::Adaptive(im, out) => g.adaptive_avg_pool2d(l[0], *im, *out)?,
            Case::Global(im) => g.global_avg_pool2d(l[0], *im)?,
            Case::Concat => g.concat(&[l[0], l[1]])?,
            Case::LeakyRelu => g.leaky_relu(l[0], 0.1)?,
            Case::Elu => g.elu(l[0], 1.3)?,
            Case::LayerNorm => g.layer_norm(l[0], l[1], l[2], 1e-5)?,
            Case::BatchNormTrain(im) => {
                let rows = g.shape(l[0]).0;
                g.batch_norm(
                    l[0],
                    l[1],
                    l[2],
                    *im,
                    &BatchNormMode::Training { batch_rows: rows },
                    1e-5,
                )?
            }
            Case::BatchNormEval(im) => {
                let c = im.channels;
                let mode = BatchNormMode::Eval {
                    mean: (0..c).map(|k| 0.1 * k as f64 - 0.05).collect(),
                    var: (0..c).map(|k| 0.5 + 0.25 * k as f64).collect(),
                };
                g.batch_norm(l[0], l[1], l[2], *im, &mode, 1e-5)?
            }
        };
        // weighted per entry so that no symmetry of a layer hides an error
        let (r, c) = g.shape(y);
        let w = Mat::from_shape_fn((r, c), |(i, j)| 1.0 + 0.1 * ((3 * i + 7 * j) % 5) as f64);
        common::head(g, y, Some(w))
    }
}

#[test]
fn every_layer_passes_check_grads_to_order_two() {
    for (k, case) in cases().into_iter().enumerate() {
        let x = random_point(case.n_inputs(), k as u64);
        assert_passes_check_grads(&case, &x, 200 + k as u64);
    }
}

#[test]
fn every_layer_hvp_equals_the_dense_hessian_is_symmetric_and_equals_the_prepared_hvp() {
    for (k, case) in cases().into_iter().enumerate() {
        let n = case.n_inputs();
        let x = random_point(n, 300 + k as u64);
        let h = imreg_ad::dense_hessian_forward(&case, &x).unwrap();
        let at = imreg_ad::Point::new(&case.leaf_shapes(), &x).unwrap();
        let mut lin = imreg_ad::linearize(&case, &at).unwrap();
        let u = random_point(n, 400 + k as u64);
        let v = random_point(n, 500 + k as u64);
        let hv = imreg_ad::hvp(&case, &x, &v).unwrap();
        let hu = imreg_ad::hvp(&case, &x, &u).unwrap();
        let dense: Vec<f64> = (0..n).map(|i| dot(&h[i * n..(i + 1) * n], &v)).collect();
        assert!(
            max_rel_err(&hv, &dense) < 1e-12,
            "{case:?}: hvp vs dense {:e}",
            max_rel_err(&hv, &dense)
        );
        let (uhv, vhu) = (dot(&u, &hv), dot(&v, &hu));
        assert!(
            (uhv - vhu).abs() <= 1e-12 * uhv.abs().max(vhu.abs()).max(1.0),
            "{case:?}: uᵀHv = {uhv} vs vᵀHu = {vhu}"
        );
        for (dir, want) in [(&v, &hv), (&u, &hu)] {
            let mut got = vec![0.0; n];
            lin.hvp_acc(dir, &mut got).unwrap();
            assert!(
                max_rel_err(&got, want) < 1e-13,
                "{case:?}: prepared {:e}",
                max_rel_err(&got, want)
            );
        }
    }
}

/// conv2d against the definition, entry by entry, for a strided, padded, dilated depthwise case.
#[test]
fn conv2d_matches_the_direct_sum() {
    let input = Image::new(2, 5, 6);
    let geo = Conv2d {
        stride: (2, 1),
        padding: (1, 2),
        dilation: (1, 2),
        groups: 2,
        ..Conv2d::new(input, 4, (3, 2))
    };
    let out = geo.output().unwrap();
    let x = random_point(N * input.features().unwrap(), 1);
    let (wr, wc) = geo.weight_shape().unwrap();
    let w = random_point(wr * wc, 2);
    let b = random_point(4, 3);
    let mut g = Graph::<Mat>::new();
    let xv = g.constant(Mat::from_shape_vec((N, input.features().unwrap()), x.clone()).unwrap());
    let wv = g.constant(Mat::from_shape_vec((wr, wc), w.clone()).unwrap());
    let bv = g.constant(Mat::from_shape_vec((1, 4), b.clone()).unwrap());
    let y = g.conv2d(xv, wv, Some(bv), &geo).unwrap();
    assert_eq!(g.shape(y), (N, out.features().unwrap()));
    let (kh, kw) = geo.kernel;
    let cin_g = 1; // 2 input channels in 2 groups
    for i in 0..N {
        for o in 0..4 {
            let grp = o / 2;
            for u in 0..out.height {
                for v in 0..out.width {
                    let mut want = b[o];
                    for cg in 0..cin_g {
                        let c = grp * cin_g + cg;
                        for a in 0..kh {
                            for bb in 0..kw {
                                let yy = (u * 2 + a) as isize - 1;
                                let xx = (v + 2 * bb) as isize - 2;
                                if yy < 0 || xx < 0 || yy >= 5 || xx >= 6 {
                                    continue;
                                }
                                let xi = (c * 5 + yy as usize) * 6 + xx as usize;
                                want += w[((o * cin_g + cg) * kh + a) * kw + bb] * x[i * 60 + xi];
                            }
                        }
                    }
                    let got = g.value(y)[(i, (o * out.height + u) * out.width + v)];
                    assert!((got - want).abs() < 1e-14, "({i},{o},{u},{v}): {got} vs {want}");
                }
            }
        }
    }
}

#[test]
fn pools_and_norms_match_their_definitions() {
    let input = Image::new(1, 3, 3);
    let x = Mat::from_shape_vec((1, 9), (0..9).map(|v| ((v * 5) % 9) as f64).collect()).unwrap();
    let mut g = Graph::<Mat>::new();
    let xv = g.constant(x.clone());
    // max pool 2×2, stride 1: windows of [[0,5,1],[6,2,7],[3,8,4]]
    let mp = g
        .max_pool2d(
            xv,
            &Pool2d {
                stride: (1, 1),
                ..Pool2d::new(input, (2, 2))
            },
        )
        .unwrap();
    assert_eq!(g.value(mp).as_slice().unwrap(), &[6.0, 7.0, 8.0, 8.0]);
    // average pool 2×2 with padding 1, count_include_pad: the corner window holds one pixel, 0/4
    let ap = g
        .avg_pool2d(
            xv,
            &Pool2d {
                padding: (1, 1),
                ..Pool2d::new(input, (2, 2))
            },
        )
        .unwrap();
    assert_eq!(g.value(ap).as_slice().unwrap(), &[0.0, 1.5, 2.25, 5.25]);
    // adaptive 3 → 2: windows [0, 2) and [1, 3)
    let ad = g.adaptive_avg_pool2d(xv, input, (2, 2)).unwrap();
    assert_eq!(
        g.value(ad).as_slice().unwrap(),
        &[13.0 / 4.0, 15.0 / 4.0, 19.0 / 4.0, 21.0 / 4.0]
    );
    let gp = g.global_avg_pool2d(xv, input).unwrap();
    assert_eq!(g.value(gp).as_slice().unwrap(), &[4.0]);
    // layer norm with γ = 1, β = 0: zero mean, variance σ²/(σ² + ε) with the biased σ² = 20/3 of 0..8
    let ones = g.constant(Mat::ones((1, 9)));
    let zeros = g.constant(Mat::zeros((1, 9)));
    let ln = g.layer_norm(xv, ones, zeros, 1e-5).unwrap();
    let y = g.value(ln);
    let mean = y.sum() / 9.0;
    let var = y.iter().map(|v| v * v).sum::<f64>() / 9.0;
    assert!(
        mean.abs() < 1e-15 && (var - (20.0 / 3.0) / (20.0 / 3.0 + 1e-5)).abs() < 1e-14,
        "{mean} {var}"
    );
    // leaky ReLU and ELU
    let z = g.constant(Mat::from_shape_vec((1, 2), vec![-2.0, 3.0]).unwrap());
    let lr = g.leaky_relu(z, 0.01).unwrap();
    assert_eq!(g.value(lr).as_slice().unwrap(), &[-0.02, 3.0]);
    let el = g.elu(z, 1.0).unwrap();
    assert_eq!(g.value(el).as_slice().unwrap(), &[(-2.0f64).exp_m1(), 3.0]);
    // ELU at huge inputs does not overflow
    let big = g.constant(Mat::from_shape_vec((1, 1), vec![1000.0]).unwrap());
    let el = g.elu(big, 1.0).unwrap();
    assert_eq!(g.value(el)[(0, 0)], 1000.0);
}

#[test]
fn batch_norm_in_training_mode_normalizes_each_channel_over_the_batch() {
    let input = Image::new(2, 1, 3);
    let x = Mat::from_shape_fn((4, 6), |(i, j)| ((i * 7 + j * 3) % 11) as f64 - 4.0);
    let mut g = Graph::<Mat>::new();
    let xv = g.constant(x.clone());
    let gamma = g.constant(Mat::from_shape_vec((1, 2), vec![2.0, -1.0]).unwrap());
    let beta = g.constant(Mat::from_shape_vec((1, 2), vec![0.5, 0.25]).unwrap());
    let y = g
        .batch_norm(
            xv,
            gamma,
            beta,
            input,
            &BatchNormMode::Training { batch_rows: 4 },
            1e-5,
        )
        .unwrap();
    for (c, (ga, be)) in [(2.0, 0.5), (-1.0, 0.25)].into_iter().enumerate() {
        let vals: Vec<f64> = (0..4)
            .flat_map(|i| (0..3).map(move |s| (i, c * 3 + s)))
            .map(|ix| x[ix])
            .collect();
        let mu = vals.iter().sum::<f64>() / 12.0;
        let var = vals.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / 12.0;
        for i in 0..4 {
            for s in 0..3 {
                let want = ga * (x[(i, c * 3 + s)] - mu) / (var + 1e-5).sqrt() + be;
                let got = g.value(y)[(i, c * 3 + s)];
                assert!((got - want).abs() < 1e-13, "{got} vs {want}");
            }
        }
    }
    // A chunk of the batch is refused: the statistics would be another function.
    let err = g
        .batch_norm(
            xv,
            gamma,
            beta,
            input,
            &BatchNormMode::Training { batch_rows: 8 },
            1e-5,
        )
        .unwrap_err();
    assert!(err.to_string().contains("whole batch of 8 rows"), "{err}");
}

#[test]
fn bad_shapes_and_geometries_are_typed_errors() {
    let mut g = Graph::<Mat>::new();
    let im = Image::new(2, 4, 4);
    let x = g.leaf(Mat::zeros((2, 32)));
    let w = g.leaf(Mat::zeros((3, 18)));
    let b = g.leaf(Mat::zeros((1, 3)));
    let geo = Conv2d::new(im, 3, (3, 3));
    assert!(g.conv2d(x, w, Some(b), &geo).is_ok());
    // wrong weight shape: names the op, the expected and the found shapes
    let w_bad = g.leaf(Mat::zeros((3, 17)));
    let err = g.conv2d(x, w_bad, Some(b), &geo).unwrap_err().to_string();
    assert!(
        err.contains("conv2d") && err.contains("3×18") && err.contains("3×17"),
        "{err}"
    );
    // wrong input width, wrong bias
    let x_bad = g.leaf(Mat::zeros((2, 31)));
    assert!(g.conv2d(x_bad, w, None, &geo).is_err());
    assert!(g.conv2d(x, w, Some(w), &geo).is_err());
    // geometries: kernel too large, zero stride, groups not dividing, overflow
    for bad in [
        Conv2d::new(im, 3, (5, 5)),
        Conv2d {
            stride: (0, 1),
            ..geo
        },
        Conv2d { groups: 3, ..geo },
        Conv2d {
            padding: (usize::MAX, 0),
            ..geo
        },
        Conv2d::new(Image::new(usize::MAX, 2, 2), 1, (1, 1)),
    ] {
        assert!(g.conv2d(x, w, None, &bad).is_err(), "{bad:?}");
    }
    let pool = Pool2d {
        padding: (2, 2),
        ..Pool2d::new(im, (3, 3))
    };
    assert!(g.max_pool2d(x, &pool).is_err());
    assert!(g.max_pool2d(x, &Pool2d::new(im, (5, 5))).is_err());
    assert!(g.avg_pool2d(x_bad, &Pool2d::new(im, (2, 2))).is_err());
    assert!(g.adaptive_avg_pool2d(x, im, (5, 1)).is_err());
    let y = g.leaf(Mat::zeros((3, 4)));
    assert!(g.concat(&[x, y]).is_err());
    assert!(g.concat(&[]).is_err());
    let gamma = g.leaf(Mat::zeros((1, 2)));
    assert!(g.layer_norm(x, gamma, gamma, 1e-5).is_err());
    assert!(g.layer_norm(x, b, b, 0.0).is_err());
    let eval = BatchNormMode::Eval {
        mean: vec![0.0; 3],
        var: vec![1.0; 2],
    };
    assert!(g.batch_norm(x, gamma, gamma, im, &eval, 1e-5).is_err());
    let eval = BatchNormMode::Eval {
        mean: vec![0.0; 2],
        var: vec![-1.0, 1.0],
    };
    assert!(g.batch_norm(x, gamma, gamma, im, &eval, 1e-5).is_err());
    assert!(g.leaky_relu(x, f64::NAN).is_err());
}

/// The windows of a pool, by the definition in `imreg_ad::pool`: rows `s_h u − p_h + a` and columns
/// `s_w v − p_w + b` clipped to the image, rows outer (the window order of the first maximum).
fn pool_window(pool: &Pool2d, c: usize, u: usize, v: usize) -> Vec<usize> {
    let im = pool.input;
    let clip = |start: usize, k: usize, p: usize, size: usize| {
        start.saturating_sub(p)..(start + k).saturating_sub(p).min(size)
    };
    let rows = clip(u * pool.stride.0, pool.kernel.0, pool.padding.0, im.height);
    let cols = clip(v * pool.stride.1, pool.kernel.1, pool.padding.1, im.width);
    rows.flat_map(|y| cols.clone().map(move |x| (c * im.height + y) * im.width + x))
        .collect()
}

#[test]
fn pools_of_many_channels_and_examples_equal_their_windows_computed_directly() {
    // Values on a coarse grid, so that windows hold ties (the first maximum in window order wins).
    let input = Image::new(3, 7, 6);
    let (n, feats) = (4, 3 * 7 * 6);
    let x = Mat::from_shape_fn((n, feats), |(i, k)| ((i * 131 + k * 37) % 11) as f64 - 5.0);
    let ybar_of = |len: usize| Mat::from_shape_fn((n, len), |(i, j)| 1.0 + (i * len + j) as f64 / 8.0);
    for pool in [
        Pool2d::new(input, (2, 2)),
        Pool2d::new(input, (3, 2)),
        Pool2d {
            stride: (1, 2),
            padding: (1, 1),
            ..Pool2d::new(input, (3, 3))
        },
        Pool2d {
            stride: (2, 1),
            ..Pool2d::new(input, (2, 3))
        },
    ] {
        let oh = (input.height + 2 * pool.padding.0 - pool.kernel.0) / pool.stride.0 + 1;
        let ow = (input.width + 2 * pool.padding.1 - pool.kernel.1) / pool.stride.1 + 1;
        let len = input.channels * oh * ow;
        let windows: Vec<Vec<usize>> = (0..input.channels)
            .flat_map(|c| (0..oh).flat_map(move |u| (0..ow).map(move |v| (c, u, v))))
            .map(|(c, u, v)| pool_window(&pool, c, u, v))
            .collect();
        let first_max = |i: usize, w: &[usize]| {
            w.iter()
                .copied()
                .fold(w[0], |b, k| if x[(i, k)] > x[(i, b)] { k } else { b })
        };
        let ybar = ybar_of(len);
        let k = (pool.kernel.0 * pool.kernel.1) as f64;
        let (want_avg, want_avg_bar) = averaged(&x, &ybar, &windows, &vec![1.0 / k; len]);
        let mut want_max = Mat::zeros((n, len));
        let mut want_max_bar = Mat::zeros((n, feats));
        for i in 0..n {
            for (j, w) in windows.iter().enumerate() {
                let m = first_max(i, w);
                want_max[(i, j)] = x[(i, m)];
                want_max_bar[(i, m)] += ybar[(i, j)];
            }
        }
        let max = |g: &mut Graph<Mat>, x| g.max_pool2d(x, &pool);
        assert_eq!(pooled(&x, &ybar, max), (want_max, want_max_bar), "{pool:?}");
        let avg = |g: &mut Graph<Mat>, x| g.avg_pool2d(x, &pool);
        assert_eq!(pooled(&x, &ybar, avg), (want_avg, want_avg_bar), "{pool:?}");
    }
    // The adaptive pool 7 × 6 → 4 × 4: windows ⌊uH/OH⌋ ≤ y < ⌈(u+1)H/OH⌉ (of 2 or 3 rows), each divided by
    // its size.
    let range = |u: usize, o: usize, size: usize| (u * size / o)..((u + 1) * size).div_ceil(o);
    let windows: Vec<Vec<usize>> = (0..3 * 4 * 4)
        .map(|j| {
            let (c, u, v) = (j / 16, j % 16 / 4, j % 4);
            range(u, 4, 7)
                .flat_map(|y| range(v, 4, 6).map(move |q| (c * 7 + y) * 6 + q))
                .collect()
        })
        .collect();
    let weights: Vec<f64> = windows.iter().map(|w| 1.0 / w.len() as f64).collect();
    let ybar = ybar_of(windows.len());
    let adaptive = |g: &mut Graph<Mat>, x| g.adaptive_avg_pool2d(x, input, (4, 4));
    assert_eq!(
        pooled(&x, &ybar, adaptive),
        averaged(&x, &ybar, &windows, &weights)
    );
}

/// The value of `pool(x)` and the gradient of `Σ ȳ ⊙ pool(x)` on the tape.
fn pooled(x: &Mat, ybar: &Mat, pool: impl Fn(&mut Graph<Mat>, Var) -> Result<Var>) -> (Mat, Mat) {
    let mut g = Graph::<Mat>::new();
    let xv = g.leaf(x.clone());
    let y = pool(&mut g, xv).unwrap();
    let c = g.constant(ybar.clone());
    let weighted = g.mul(y, c).unwrap();
    let out = g.sum(weighted);
    (g.value(y).clone(), g.backward(out).unwrap().remove(0))
}

/// `y_ij = w_j Σ_{k ∈ Ω_j} x_ik` and its adjoint applied to `ȳ`, directly.
fn averaged(x: &Mat, ybar: &Mat, windows: &[Vec<usize>], w: &[f64]) -> (Mat, Mat) {
    let (n, feats) = x.dim();
    let mut y = Mat::zeros((n, windows.len()));
    let mut xbar = Mat::zeros((n, feats));
    for i in 0..n {
        for (j, win) in windows.iter().enumerate() {
            y[(i, j)] = w[j] * win.iter().map(|&k| x[(i, k)]).sum::<f64>();
            for &k in win {
                xbar[(i, k)] += w[j] * ybar[(i, j)];
            }
        }
    }
    (y, xbar)
}
