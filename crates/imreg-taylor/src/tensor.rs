//! A dense symmetric-or-not third-order tensor `T_{ijk}` over parameter space (the `J` and `S` of Tenka).
use nalgebra::{DMatrix, DVector};

/// A dense `p × p × p` tensor, stored row-major (`k` fastest).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor3 {
    p: usize,
    data: Vec<f64>,
}

impl Tensor3 {
    /// The zero tensor of side `p`.
    pub fn zeros(p: usize) -> Self {
        Tensor3 {
            p,
            data: vec![0.0; p * p * p],
        }
    }

    /// The outer cube `g ⊗ g ⊗ g`.
    pub fn outer3(g: &DVector<f64>) -> Self {
        let p = g.len();
        let mut t = Tensor3::zeros(p);
        for i in 0..p {
            for j in 0..p {
                for k in 0..p {
                    t.data[(i * p + j) * p + k] = g[i] * g[j] * g[k];
                }
            }
        }
        t
    }

    /// Side length `p`.
    pub fn dim(&self) -> usize {
        self.p
    }

    /// `T_{ijk}`; `None` out of range.
    pub fn get(&self, i: usize, j: usize, k: usize) -> Option<f64> {
        if i < self.p && j < self.p && k < self.p {
            self.data.get((i * self.p + j) * self.p + k).copied()
        } else {
            None
        }
    }

    /// Sets `T_{ijk}` (ignored out of range).
    pub fn set(&mut self, i: usize, j: usize, k: usize, value: f64) {
        if i < self.p && j < self.p && k < self.p {
            self.data[(i * self.p + j) * self.p + k] = value;
        }
    }

    /// Sets all six permutations of `(i, j, k)` to `value` (for hand-written symmetric derivatives).
    pub fn set_sym(&mut self, i: usize, j: usize, k: usize, value: f64) {
        for (a, b, c) in [(i, j, k), (i, k, j), (j, i, k), (j, k, i), (k, i, j), (k, j, i)] {
            self.set(a, b, c, value);
        }
    }

    /// `self += w · other` (sides must agree; otherwise nothing happens).
    pub fn axpy(&mut self, w: f64, other: &Tensor3) {
        if other.p == self.p {
            for (a, b) in self.data.iter_mut().zip(&other.data) {
                *a += w * b;
            }
        }
    }

    /// The full contraction `Σ_{ijk} T_{ijk} U_{ijk}` (e.g. `S·J`); 0 if the sides differ.
    pub fn contract(&self, other: &Tensor3) -> f64 {
        if other.p != self.p {
            return 0.0;
        }
        self.data.iter().zip(&other.data).map(|(a, b)| a * b).sum()
    }

    /// The matrix `Σ_k T_{ijk} v_k`.
    pub fn apply_last(&self, v: &DVector<f64>) -> DMatrix<f64> {
        let p = self.p;
        DMatrix::from_fn(p, p, |i, j| {
            (0..p.min(v.len()))
                .map(|k| self.data[(i * p + j) * p + k] * v[k])
                .sum()
        })
    }

    /// The vector `Σ_{ij} T_{ijλ} M_{ij}` (contraction of the first two indices with a matrix).
    pub fn contract_first_two(&self, m: &DMatrix<f64>) -> DVector<f64> {
        let p = self.p;
        DVector::from_fn(p, |l, _| {
            let mut s = 0.0;
            for i in 0..p.min(m.nrows()) {
                for j in 0..p.min(m.ncols()) {
                    s += self.data[(i * p + j) * p + l] * m[(i, j)];
                }
            }
            s
        })
    }

    /// The tensor in a new basis: `T'_{abc} = Σ_{ijk} T_{ijk} Q_{ia} Q_{jb} Q_{kc}` (columns of `Q` are the
    /// new basis vectors, e.g. the eigenvectors of `H`).
    pub fn rotate(&self, q: &DMatrix<f64>) -> Tensor3 {
        let p = self.p;
        if q.nrows() != p || q.ncols() != p {
            return self.clone();
        }
        // Three successive mode products, O(p⁴).
        let mode = |t: &Vec<f64>, axis: usize| -> Vec<f64> {
            let mut out = vec![0.0; p * p * p];
            for i in 0..p {
                for j in 0..p {
                    for k in 0..p {
                        let mut s = 0.0;
                        for r in 0..p {
                            let idx = match axis {
                                0 => (r * p + j) * p + k,
                                1 => (i * p + r) * p + k,
                                _ => (i * p + j) * p + r,
                            };
                            let qi = match axis {
                                0 => q[(r, i)],
                                1 => q[(r, j)],
                                _ => q[(r, k)],
                            };
                            s += t[idx] * qi;
                        }
                        out[(i * p + j) * p + k] = s;
                    }
                }
            }
            out
        };
        let d = mode(&mode(&mode(&self.data, 0), 1), 2);
        Tensor3 { p, data: d }
    }

    /// Largest absolute entry.
    pub fn max_abs(&self) -> f64 {
        self.data.iter().fold(0.0, |m, x| m.max(x.abs()))
    }

    /// Raw data, row-major with `k` fastest.
    pub fn as_slice(&self) -> &[f64] {
        &self.data
    }
}
