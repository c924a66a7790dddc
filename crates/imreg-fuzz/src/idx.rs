//! IDX inputs (MNIST images and labels): a magic number, big-endian `u32` dimensions and a body, mutated in
//! the magic number, the number and size of the dimensions (zero, huge, overflowing products), label values
//! and the body length before byte-level edits.
use crate::mutate;
use crate::target::{array_contract, loaded, Target, TargetVerdict};
use imreg_objective::data::idx::{parse_images, parse_labels, IMAGES_MAGIC, LABELS_MAGIC};
use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The IDX targets: image files ([`parse_images`]) and label files ([`parse_labels`]).
pub enum Idx {
    Images,
    Labels,
}

/// The parts of an IDX file: magic number, dimensions, body.
struct Parts {
    magic: u32,
    dims: Vec<u32>,
    body: Vec<u8>,
}

impl Parts {
    fn mutate(&mut self, rng: &mut ChaCha8Rng) {
        match rng.random_range(0..8) {
            0 => {
                let magics = [
                    IMAGES_MAGIC,
                    LABELS_MAGIC,
                    0x0000_0903,
                    0x0000_0800,
                    0x0803_0000,
                    0,
                ];
                self.magic = *magics.choose(rng).unwrap_or(&0);
            }
            1..=3 if !self.dims.is_empty() => {
                let i = rng.random_range(0..self.dims.len());
                self.dims[i] = mutate::edge_int(rng) as u32;
            }
            4 => {
                self.dims.pop();
            }
            5 => self.dims.push(mutate::edge_int(rng) as u32),
            6 if !self.body.is_empty() => {
                let i = rng.random_range(0..self.body.len());
                self.body[i] = *[10u8, 0xff, 0x80].choose(rng).unwrap_or(&10);
            }
            _ => {
                let n = rng.random_range(0..=self.body.len());
                self.body.truncate(n);
            }
        }
    }

    fn render(&self) -> Vec<u8> {
        let mut out = self.magic.to_be_bytes().to_vec();
        for d in &self.dims {
            out.extend(d.to_be_bytes());
        }
        out.extend_from_slice(&self.body);
        out
    }
}

impl Idx {
    fn valid(&self, rng: &mut ChaCha8Rng) -> Parts {
        let (magic, dims): (u32, Vec<u32>) = match self {
            Idx::Images => (
                IMAGES_MAGIC,
                vec![
                    rng.random_range(1..=4),
                    rng.random_range(1..=6),
                    rng.random_range(1..=6),
                ],
            ),
            Idx::Labels => (LABELS_MAGIC, vec![rng.random_range(1..=8)]),
        };
        let n = dims.iter().map(|&d| d as usize).product::<usize>();
        let body = match self {
            Idx::Images => (0..n).map(|_| rng.random()).collect(),
            Idx::Labels => (0..n).map(|_| rng.random_range(0..10)).collect(),
        };
        Parts { magic, dims, body }
    }
}

impl Target for Idx {
    fn name(&self) -> &'static str {
        match self {
            Idx::Images => "idx-images",
            Idx::Labels => "idx-labels",
        }
    }

    fn generate(&self, rng: &mut ChaCha8Rng) -> Vec<u8> {
        mutate::structured(rng, |r| self.valid(r), Parts::mutate, Parts::render)
    }

    fn check(&self, input: &[u8]) -> TargetVerdict {
        match self {
            Idx::Images => match parse_images(input, "fuzz-images-idx3-ubyte") {
                Ok(x) => array_contract(&[x.nrows(), x.ncols()], x.len()),
                e => loaded(e),
            },
            Idx::Labels => match parse_labels(input, "fuzz-labels-idx1-ubyte") {
                Ok(l) if l.iter().any(|&v| v >= 10) => {
                    TargetVerdict::Contract(format!("accepted labels {l:?}"))
                }
                Ok(l) => array_contract(&[l.len()], l.len()),
                e => loaded(e),
            },
        }
    }
}
