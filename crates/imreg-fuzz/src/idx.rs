//! IDX inputs (MNIST images and labels): a magic number, big-endian `u32` dimensions and a body, mutated in
//! the magic number, the number and size of the dimensions (zero, huge, overflowing products), label values
//! and the body length before byte-level edits.
use crate::mutate;
use crate::target::{array_contract, loaded, Target, Verdict};
use imreg_objective::data::idx::{parse_images, parse_labels, IMAGES_MAGIC, LABELS_MAGIC};
use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The IDX targets: image files ([`parse_images`]) and label files ([`parse_labels`]).
pub enum Idx {
    Images,
    Labels,
}

impl Idx {
    fn magic(&self) -> u32 {
        match self {
            Idx::Images => IMAGES_MAGIC,
            Idx::Labels => LABELS_MAGIC,
        }
    }

    fn valid(&self, rng: &mut ChaCha8Rng) -> (u32, Vec<u32>, Vec<u8>) {
        let dims: Vec<u32> = match self {
            Idx::Images => vec![
                rng.random_range(1..=4),
                rng.random_range(1..=6),
                rng.random_range(1..=6),
            ],
            Idx::Labels => vec![rng.random_range(1..=8)],
        };
        let n = dims.iter().map(|&d| d as usize).product::<usize>();
        let body = match self {
            Idx::Images => (0..n).map(|_| rng.random()).collect(),
            Idx::Labels => (0..n).map(|_| rng.random_range(0..10)).collect(),
        };
        (self.magic(), dims, body)
    }

    fn render(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
        let mut out = magic.to_be_bytes().to_vec();
        for d in dims {
            out.extend(d.to_be_bytes());
        }
        out.extend_from_slice(body);
        out
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
        let (mut magic, mut dims, mut body) = self.valid(rng);
        for _ in 0..rng.random_range(0..=3) {
            match rng.random_range(0..8) {
                0 => {
                    magic = *[
                        IMAGES_MAGIC,
                        LABELS_MAGIC,
                        0x0000_0903,
                        0x0000_0800,
                        0x0803_0000,
                        0,
                    ]
                    .choose(rng)
                    .unwrap_or(&0)
                }
                1..=3 if !dims.is_empty() => {
                    let i = rng.random_range(0..dims.len());
                    dims[i] = mutate::edge_int(rng) as u32;
                }
                4 => {
                    dims.pop();
                }
                5 => dims.push(mutate::edge_int(rng) as u32),
                6 if !body.is_empty() => {
                    let i = rng.random_range(0..body.len());
                    body[i] = *[10u8, 0xff, 0x80].choose(rng).unwrap_or(&10);
                }
                _ => {
                    let n = rng.random_range(0..=body.len());
                    body.truncate(n);
                }
            }
        }
        let mut bytes = Self::render(magic, &dims, &body);
        if rng.random_bool(0.3) {
            let (m, d, b) = self.valid(rng);
            mutate::bytes(rng, &mut bytes, &Self::render(m, &d, &b));
        }
        bytes
    }

    fn check(&self, input: &[u8]) -> Verdict {
        match self {
            Idx::Images => match parse_images(input, "fuzz-images-idx3-ubyte") {
                Ok(x) => array_contract(&[x.nrows(), x.ncols()], x.len()),
                e => loaded(e),
            },
            Idx::Labels => match parse_labels(input, "fuzz-labels-idx1-ubyte") {
                Ok(l) if l.iter().any(|&v| v >= 10) => Verdict::Contract(format!("accepted labels {l:?}")),
                Ok(l) => array_contract(&[l.len()], l.len()),
                e => loaded(e),
            },
        }
    }
}
