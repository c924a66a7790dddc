//! A small CNN as a `Program`, end to end: conv → ReLU → max-pool → conv → ReLU → global average pool →
//! linear → cross-entropy, checked by `check_grads` (gradient, HVP, third order), the dense Hessian and the
//! prepared HVP, and bitwise deterministic at 1 and 2 rayon threads.
use imreg_ad::{Conv2d, Graph, Image, Mat, Pool2d, Program, Result, Tensor, Var};
mod common;
use common::{assert_passes_check_grads, bits, max_rel_err, on_threads, random_vec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Debug)]
struct SmallCnn {
    x: Mat,
    labels: Vec<usize>,
    conv1: Conv2d,
    pool: Pool2d,
    conv2: Conv2d,
    classes: usize,
}

impl SmallCnn {
    /// `n` images `1 × 6 × 6`, `c1` and `c2` channels, `classes` classes.
    fn new(n: usize, c1: usize, c2: usize, classes: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let input = Image::new(1, 6, 6);
        let conv1 = Conv2d {
            padding: (1, 1),
            ..Conv2d::new(input, c1, (3, 3))
        };
        let pool = Pool2d::new(conv1.output().unwrap(), (2, 2));
        let pooled = Image::new(c1, 3, 3);
        let conv2 = Conv2d::new(pooled, c2, (2, 2));
        SmallCnn {
            x: Mat::from_shape_fn((n, 36), |_| rng.random::<f64>() * 2.0 - 1.0),
            labels: (0..n).map(|i| (i * 7 + 1) % classes).collect(),
            conv1,
            pool,
            conv2,
            classes,
        }
    }
}

impl Program for SmallCnn {
    fn leaf_shapes(&self) -> Vec<(usize, usize)> {
        let c2 = self.conv2.out_channels;
        vec![
            self.conv1.weight_shape().unwrap(),
            (1, self.conv1.out_channels),
            self.conv2.weight_shape().unwrap(),
            (1, c2),
            (self.classes, c2),
            (1, self.classes),
        ]
    }
    fn build<T: Tensor>(&self, g: &mut Graph<T>, l: &[Var]) -> Result<Var> {
        let x = g.constant(self.x.clone());
        let h = g.conv2d(x, l[0], Some(l[1]), &self.conv1)?;
        let h = g.relu(h);
        let h = g.max_pool2d(h, &self.pool)?;
        let h = g.conv2d(h, l[2], Some(l[3]), &self.conv2)?;
        let h = g.relu(h);
        let h = g.global_avg_pool2d(h, self.conv2.output()?)?;
        let z = g.linear(h, l[4], Some(l[5]))?;
        g.softmax_cross_entropy(z, &self.labels)
    }
}

#[test]
fn small_cnn_passes_check_grads_and_equals_the_dense_hessian() {
    let cnn = SmallCnn::new(3, 2, 3, 3, 1);
    let n = cnn.n_inputs();
    let theta = random_vec(n, 2, 0.8);
    assert_passes_check_grads(&cnn, &theta, 5);
    let h = imreg_ad::dense_hessian_forward(&cnn, &theta).unwrap();
    let at = imreg_ad::Point::new(&cnn.leaf_shapes(), &theta).unwrap();
    let mut lin = imreg_ad::linearize(&cnn, &at).unwrap();
    for k in 0..2 {
        let v = random_vec(n, 10 + k, 1.0);
        let dense: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|j| h[i * n + j] * v[j]).sum())
            .collect();
        let hv = imreg_ad::hvp(&cnn, &theta, &v).unwrap();
        assert!(max_rel_err(&hv, &dense) < 1e-12, "{:e}", max_rel_err(&hv, &dense));
        let mut prepared = vec![0.0; n];
        lin.hvp_acc(&v, &mut prepared).unwrap();
        assert!(
            max_rel_err(&prepared, &hv) < 1e-13,
            "{:e}",
            max_rel_err(&prepared, &hv)
        );
    }
}

#[test]
fn small_cnn_gradient_and_hvp_are_bitwise_identical_at_one_and_two_threads() {
    let cnn = SmallCnn::new(8, 3, 4, 3, 3);
    let theta = random_vec(cnn.n_inputs(), 4, 0.8);
    let v = random_vec(cnn.n_inputs(), 5, 1.0);
    let run = || {
        let (f, g) = imreg_ad::grad(&cnn, &theta).unwrap();
        let hv = imreg_ad::hvp(&cnn, &theta, &v).unwrap();
        (f.to_bits(), bits(&g), bits(&hv))
    };
    assert_eq!(on_threads(1, run), on_threads(2, run));
}
