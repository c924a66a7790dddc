//! Batched per-example reverse mode (`per_example_grads_into`) against one tape per example: every
//! parameterized layer (linear with and without bias, matmul in both orientations, bias add, dense and grouped
//! convolutions with bias, layer norm, batch norm with running statistics), a user primitive without a
//! per-example rule (declined, so callers fall back), training-mode batch norm (declined: it couples the
//! examples) and bad buffers.
mod common;
use common::{max_rel_err, random_point};
use imreg_ad::{BatchNormMode, Conv2d, Graph, Image, Point, Primitive, Program, Result, Tensor, Var};
use ndarray::Array2;

const N: usize = 5;

/// `Σ_i ℓ_i` over the rows `rows` of the fixed inputs: conv (3×3, padding 1, bias) → tanh → grouped conv
/// (stride 2) → eval batch norm → layer norm → linear with bias → bias add → matmul with a `[k, m]` and an
/// `[m, k]` weight → softplus sum; `mode` is the batch norm's.
struct Net {
    x: Array2<f64>,
    rows: Vec<usize>,
    train_bn: bool,
    silu: bool,
}

const IMG: Image = Image {
    channels: 2,
    height: 5,
    width: 4,
};

fn conv1() -> Conv2d {
    Conv2d {
        padding: (1, 1),
        ..Conv2d::new(IMG, 4, (3, 3))
    }
}

fn conv2() -> Conv2d {
    Conv2d {
        stride: (2, 2),
        padding: (1, 0),
        groups: 2,
        ..Conv2d::new(Image::new(4, 5, 4), 4, (2, 2))
    }
}

impl Program for Net {
    fn leaf_shapes(&self) -> Vec<(usize, usize)> {
        let f2 = conv2().output().unwrap().features().unwrap();
        vec![
            conv1().weight_shape().unwrap(),
            (1, 4),
            conv2().weight_shape().unwrap(),
            (1, 4),
            (1, 4),
            (1, f2),
            (1, f2),
            (3, f2),
            (1, 3),
            (1, 3),
            (3, 2),
            (2, 2),
        ]
    }
    fn build<T: Tensor>(&self, g: &mut Graph<T>, p: &[Var]) -> Result<Var> {
        let x = Array2::from_shape_fn((self.rows.len(), self.x.ncols()), |(i, j)| {
            self.x[(self.rows[i], j)]
        });
        let x = g.constant(x);
        let h = g.conv2d(x, p[0], Some(p[1]), &conv1())?;
        let h = g.tanh(h);
        let h = g.conv2d(h, p[2], None, &conv2())?;
        let mode = if self.train_bn {
            BatchNormMode::Training {
                batch_rows: self.rows.len(),
            }
        } else {
            BatchNormMode::Eval {
                mean: vec![0.1, -0.2, 0.0, 0.3],
                var: vec![1.5, 0.5, 2.0, 1.0],
            }
        };
        let out = conv2().output()?;
        let h = g.batch_norm(h, p[3], p[4], out, &mode, 1e-5)?;
        let h = g.layer_norm(h, p[5], p[6], 1e-5)?;
        let h = if self.silu { g.apply(Silu, &[h])? } else { h };
        let h = g.linear(h, p[7], Some(p[8]))?;
        let h = g.add_row(h, p[9])?;
        let h = g.matmul(h, p[10])?; // [n, 3] · [3, 2]
        let h = g.matmul_t(h, false, p[11], true)?; // [n, 2] · [2, 2]ᵀ
        let h = g.softplus(h);
        Ok(g.sum(h))
    }
}

/// A user primitive without a per-example rule (it reads no parameter here, but it is given one below).
#[derive(Debug)]
struct Silu;

impl Primitive for Silu {
    fn name(&self) -> &'static str {
        "silu"
    }
    fn output_shape(&self, inputs: &[(usize, usize)]) -> Result<(usize, usize)> {
        Ok(inputs[0])
    }
    fn forward<T: Tensor>(&self, x: &[&T]) -> T {
        x[0].mul(&x[0].sigmoid())
    }
    fn jvp<T: Tensor>(&self, x: &[&T], _y: &T, dx: &[Option<&T>]) -> Option<T> {
        dx[0].map(|d| d.mul(&slope(x[0])))
    }
    fn vjp<T: Tensor>(&self, x: &[&T], _y: &T, g: &T, _wants: &[bool]) -> Vec<Option<T>> {
        vec![Some(g.mul(&slope(x[0])))]
    }
}

fn slope<T: Tensor>(x: &T) -> T {
    let s = x.sigmoid();
    s.mul(&x.mul(&s.affine(-1.0, 1.0)).affine(1.0, 1.0))
}

/// `Σ_i silu(w) · x_i`: the user primitive reads the parameter `w` directly.
struct UserOnLeaf(Array2<f64>);

impl Program for UserOnLeaf {
    fn leaf_shapes(&self) -> Vec<(usize, usize)> {
        vec![(1, 3)]
    }
    fn build<T: Tensor>(&self, g: &mut Graph<T>, p: &[Var]) -> Result<Var> {
        let w = g.apply(Silu, &[p[0]])?;
        let x = g.constant(self.0.clone());
        let h = g.matmul_t(x, false, w, true)?;
        Ok(g.sum(h))
    }
}

fn net(rows: Vec<usize>, train_bn: bool, silu: bool) -> Net {
    let x = Array2::from_shape_vec((N, IMG.features().unwrap()), random_point(N * 40, 3)).unwrap();
    Net {
        x,
        rows,
        train_bn,
        silu,
    }
}

#[test]
fn batched_per_example_gradients_equal_one_tape_per_example() {
    for silu in [false, true] {
        let all = net((0..N).collect(), false, silu);
        let p = all.n_inputs();
        let theta = random_point(p, 7);
        let at = Point::new(&all.leaf_shapes(), &theta).unwrap();
        let mut rows = Array2::from_elem((N, p), f64::NAN);
        let f = imreg_ad::per_example_grads_into(&all, &at, rows.view_mut()).unwrap();
        let f = f.expect("every parameterized layer has a per-example rule");
        let mut total = 0.0;
        for i in 0..N {
            let (fi, gi) = imreg_ad::grad(&net(vec![i], false, silu), &theta).unwrap();
            total += fi;
            let row = rows.row(i).to_vec();
            assert!(
                max_rel_err(&row, &gi) <= 1e-13,
                "silu {silu}, example {i}: {:e}",
                max_rel_err(&row, &gi)
            );
        }
        assert!((f - total).abs() <= 1e-13 * total.abs());
        // The accumulating form adds the same rows to what is there (the written rows are added to zero).
        let mut acc = Array2::from_shape_fn((N, p), |(i, j)| (i * p + j) as f64);
        let g = imreg_ad::per_example_grads_acc(&all, &at, acc.view_mut()).unwrap();
        assert_eq!(g, Some(f));
        let start = Array2::from_shape_fn((N, p), |(i, j)| (i * p + j) as f64);
        let mut zero = Array2::zeros((N, p));
        imreg_ad::per_example_grads_acc(&all, &at, zero.view_mut()).unwrap();
        assert_eq!(
            zero, rows,
            "into zero rows, the accumulating form writes the same bits"
        );
        let added = &acc - &start;
        assert!(max_rel_err(added.as_slice().unwrap(), rows.as_slice().unwrap()) <= 1e-12);
    }
}

#[test]
fn a_primitive_without_a_rule_on_a_parameter_and_coupled_examples_are_declined() {
    let x = Array2::from_shape_vec((4, 3), random_point(12, 1)).unwrap();
    let prog = UserOnLeaf(x);
    let theta = random_point(3, 2);
    let at = Point::new(&prog.leaf_shapes(), &theta).unwrap();
    let mut rows = Array2::from_elem((4, 3), 7.0);
    assert!(!imreg_ad::per_example_supported(&prog, &at, 4).unwrap());
    assert_eq!(
        imreg_ad::per_example_grads_into(&prog, &at, rows.view_mut()).unwrap(),
        None
    );
    assert!(rows.iter().all(|&v| v == 7.0), "nothing is written when declined");
    assert_eq!(
        imreg_ad::per_example_grads_acc(&prog, &at, rows.view_mut()).unwrap(),
        None
    );
    assert!(rows.iter().all(|&v| v == 7.0), "nothing is added when declined");

    let coupled = net((0..N).collect(), true, false);
    let theta = random_point(coupled.n_inputs(), 7);
    let at = Point::new(&coupled.leaf_shapes(), &theta).unwrap();
    let mut rows = Array2::zeros((N, theta.len()));
    assert_eq!(
        imreg_ad::per_example_grads_into(&coupled, &at, rows.view_mut()).unwrap(),
        None
    );
}

#[test]
fn bad_buffers_are_typed_errors() {
    let all = net((0..N).collect(), false, false);
    let theta = random_point(all.n_inputs(), 7);
    let at = Point::new(&all.leaf_shapes(), &theta).unwrap();
    let mut short = Array2::zeros((N, theta.len() - 1));
    assert!(imreg_ad::per_example_grads_into(&all, &at, short.view_mut()).is_err());
    let mut wide = Array2::zeros((N, 2 * theta.len()));
    let strided = wide.slice_mut(ndarray::s![.., ..;2]);
    assert!(imreg_ad::per_example_grads_into(&all, &at, strided).is_err());
}
