//! `.npy` inputs: a header dict (`descr`, `fortran_order`, `shape`) and a body, mutated field by field
//! (shape numbers, dtype strings, order flag, version, header length, missing keys) before byte-level edits.
use crate::mutate;
use crate::target::{array_contract, loaded, Target, TargetVerdict};
use imreg_objective::data::npy::parse_npy;
use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The `.npy` target: [`parse_npy`], then the matrix and label views of an accepted array.
pub struct Npy;

const DTYPES: &[(&str, usize)] = &[("<f8", 8), ("<f4", 4), ("<i8", 8), ("<i4", 4), ("|u1", 1)];
const BAD_DTYPES: &[&str] = &[
    ">f8", "<f2", "<c16", "|b1", "<U8", "O", "", "f8", "<u8", "<i2", "|u1 ", "<f8'",
];

/// The parts of a `.npy` file, rendered by [`Parts::render`].
struct Parts {
    version: [u8; 2],
    descr: String,
    fortran: String,
    shape: Vec<String>,
    /// Which of the keys `descr`, `fortran_order`, `shape` are written.
    keys: [bool; 3],
    /// Overrides the header length field.
    header_len: Option<u32>,
    body: Vec<u8>,
}

impl Parts {
    fn valid(rng: &mut ChaCha8Rng) -> Self {
        let (descr, size) = *DTYPES.choose(rng).unwrap_or(&DTYPES[0]);
        let shape: Vec<usize> = (0..rng.random_range(0..=3))
            .map(|_| rng.random_range(1..=4))
            .collect();
        let n = shape.iter().product::<usize>() * size;
        Parts {
            version: [rng.random_range(1..=3), 0],
            descr: descr.into(),
            fortran: "False".into(),
            shape: shape.iter().map(usize::to_string).collect(),
            keys: [true; 3],
            header_len: None,
            body: (0..n).map(|_| rng.random()).collect(),
        }
    }

    fn mutate(&mut self, rng: &mut ChaCha8Rng) {
        match rng.random_range(0..10) {
            0 | 1 if !self.shape.is_empty() => {
                let i = rng.random_range(0..self.shape.len());
                self.shape[i] = mutate::edge_text(rng);
            }
            2 => self.shape.push(mutate::edge_text(rng)),
            3 => {
                self.shape.pop();
            }
            4 => self.descr = (*BAD_DTYPES.choose(rng).unwrap_or(&"")).into(),
            5 => {
                self.fortran = (*["True", "true", "1", "", "None"].choose(rng).unwrap_or(&"")).into();
            }
            6 => {
                self.version = [
                    *[0u8, 1, 2, 3, 4, 0xff].choose(rng).unwrap_or(&1),
                    rng.random_range(0..2),
                ]
            }
            7 => self.header_len = Some(mutate::edge_int(rng) as u32),
            8 => {
                let k = rng.random_range(0..3);
                self.keys[k] = false;
            }
            _ => {
                let n = rng.random_range(0..=self.body.len());
                self.body.truncate(n);
            }
        }
    }

    fn render(&self) -> Vec<u8> {
        let shape = match &self.shape[..] {
            [one] => format!("{one},"),
            many => many.join(", "),
        };
        let mut dict = String::from("{");
        if self.keys[0] {
            dict += &format!("'descr': '{}', ", self.descr);
        }
        if self.keys[1] {
            dict += &format!("'fortran_order': {}, ", self.fortran);
        }
        if self.keys[2] {
            dict += &format!("'shape': ({shape}), ");
        }
        dict.push('}');
        let pre = if self.version[0] == 1 { 10 } else { 12 };
        let total = (pre + dict.len() + 1).div_ceil(64) * 64;
        let mut header = dict.into_bytes();
        header.resize(total - pre - 1, b' ');
        header.push(b'\n');
        let len = self.header_len.unwrap_or(header.len() as u32);
        let mut out = b"\x93NUMPY".to_vec();
        out.extend_from_slice(&self.version);
        if self.version[0] == 1 {
            out.extend_from_slice(&(len as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&len.to_le_bytes());
        }
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.body);
        out
    }
}

impl Target for Npy {
    fn name(&self) -> &'static str {
        "npy"
    }

    fn generate(&self, rng: &mut ChaCha8Rng) -> Vec<u8> {
        mutate::structured(rng, Parts::valid, Parts::mutate, Parts::render)
    }

    fn check(&self, input: &[u8]) -> TargetVerdict {
        match parse_npy(input, "fuzz.npy") {
            Ok(a) => {
                let verdict = array_contract(&a.shape, a.data.len());
                // the views of an accepted array must not panic either; their errors are typed by construction
                let _ = a.clone().into_array2();
                let _ = a.into_labels();
                verdict
            }
            e => loaded(e),
        }
    }
}
