//! safetensors inputs: the 8-byte header length, a JSON header of tensors (`dtype`, `shape`,
//! `data_offsets`) and the data, generated as the state dict of a small MLP and mutated in the dtype strings,
//! shape numbers (zero, negative, huge, overflowing, fractional), offsets, tensor names (missing, duplicated),
//! the metadata, the header length and the data length, before byte-level edits. An accepted file is mapped
//! onto a fixed architecture with [`flatten_params`], so weights that do not fit it are exercised too.
use crate::mutate;
use crate::target::{array_contract, loaded, Target, TargetVerdict};
use imreg_objective::data::weights::{flatten_params, parse_safetensors};
use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The safetensors target: [`parse_safetensors`], then [`flatten_params`] onto the MLP 2 → 3 → 1.
pub struct Safetensors;

const DTYPES: &[&str] = &[
    "F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "U16", "U32", "U64", "BOOL", "F8_E5M2",
    "F8_E4M3", "F65", "", "f64",
];

/// One tensor entry of the header, its numbers kept as text so they can be made invalid.
struct Entry {
    name: String,
    dtype: String,
    shape: Vec<String>,
    offsets: Vec<String>,
}

/// The parts of a safetensors file, rendered by [`Parts::render`].
struct Parts {
    entries: Vec<Entry>,
    metadata: Option<String>,
    /// Overrides the header length field.
    header_len: Option<u64>,
    data: Vec<u8>,
}

/// The architecture accepted files are mapped onto: `nn.Sequential(Linear(2, 3), act, Linear(3, 1))`.
fn architecture() -> (Vec<String>, Vec<Vec<usize>>) {
    let names = ["0.weight", "0.bias", "2.weight", "2.bias"]
        .map(String::from)
        .to_vec();
    (names, vec![vec![3, 2], vec![3], vec![1, 3], vec![1]])
}

impl Parts {
    /// The state dict of an MLP `d → h → o` (mostly `2 → 3 → 1`, the fixed architecture), `F64` or `F32`.
    fn valid(rng: &mut ChaCha8Rng) -> Self {
        let (d, h, o) = if rng.random_bool(0.5) {
            (2, 3, 1)
        } else {
            (
                rng.random_range(1..=3),
                rng.random_range(1..=3),
                rng.random_range(1..=2),
            )
        };
        let mut entries = Vec::new();
        let mut at = 0usize;
        for (name, shape) in [
            ("0.weight", vec![h, d]),
            ("0.bias", vec![h]),
            ("2.weight", vec![o, h]),
            ("2.bias", vec![o]),
        ] {
            let (dtype, size) = if rng.random_bool(0.7) {
                ("F64", 8)
            } else {
                ("F32", 4)
            };
            let len = shape.iter().product::<usize>() * size;
            entries.push(Entry {
                name: name.into(),
                dtype: dtype.into(),
                shape: shape.iter().map(usize::to_string).collect(),
                offsets: vec![at.to_string(), (at + len).to_string()],
            });
            at += len;
        }
        Parts {
            entries,
            metadata: rng.random_bool(0.5).then(|| r#"{"format":"pt"}"#.into()),
            header_len: None,
            data: (0..at).map(|_| rng.random()).collect(),
        }
    }

    fn mutate(&mut self, rng: &mut ChaCha8Rng) {
        if self.entries.is_empty() {
            return;
        }
        let i = rng.random_range(0..self.entries.len());
        let e = &mut self.entries[i];
        match rng.random_range(0..12) {
            0 => e.dtype = (*DTYPES.choose(rng).unwrap_or(&"")).into(),
            1 | 2 if !e.shape.is_empty() => {
                let k = rng.random_range(0..e.shape.len());
                e.shape[k] = mutate::edge_text(rng);
            }
            3 => e.shape.push(mutate::edge_text(rng)),
            4 => {
                e.shape.pop();
            }
            5 | 6 => {
                let k = rng.random_range(0..e.offsets.len().max(1));
                if let Some(o) = e.offsets.get_mut(k) {
                    *o = mutate::edge_text(rng);
                }
            }
            7 => {
                e.offsets.pop();
            }
            8 => {
                let name = e.name.clone();
                if rng.random_bool(0.5) {
                    self.entries.remove(i);
                } else {
                    let j = (i + 1) % self.entries.len();
                    self.entries[j].name = name;
                }
            }
            9 => {
                self.metadata = Some(
                    (*[r#"{"a":1}"#, "[]", "null", r#"{"format":{}}"#, "7"]
                        .choose(rng)
                        .unwrap_or(&""))
                    .into(),
                )
            }
            10 => self.header_len = Some(mutate::edge_int(rng)),
            _ => {
                let n = rng.random_range(0..=self.data.len());
                self.data.truncate(n);
            }
        }
    }

    fn render(&self) -> Vec<u8> {
        let mut fields: Vec<String> = self
            .entries
            .iter()
            .map(|e| {
                format!(
                    r#""{}":{{"dtype":"{}","shape":[{}],"data_offsets":[{}]}}"#,
                    e.name,
                    e.dtype,
                    e.shape.join(","),
                    e.offsets.join(",")
                )
            })
            .collect();
        if let Some(m) = &self.metadata {
            fields.insert(0, format!(r#""__metadata__":{m}"#));
        }
        let mut header = format!("{{{}}}", fields.join(",")).into_bytes();
        header.resize(header.len().div_ceil(8) * 8, b' ');
        let len = self.header_len.unwrap_or(header.len() as u64);
        let mut out = len.to_le_bytes().to_vec();
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.data);
        out
    }
}

impl Target for Safetensors {
    fn name(&self) -> &'static str {
        "safetensors"
    }

    fn generate(&self, rng: &mut ChaCha8Rng) -> Vec<u8> {
        mutate::structured(rng, Parts::valid, Parts::mutate, Parts::render)
    }

    fn check(&self, input: &[u8]) -> TargetVerdict {
        match parse_safetensors(input, "fuzz.safetensors") {
            Ok(tensors) => {
                if let Some((name, shape, data)) = tensors
                    .iter()
                    .find(|(_, s, d)| array_contract(s, d.len()) != TargetVerdict::Accepted)
                {
                    return TargetVerdict::Contract(format!(
                        "tensor {name}: shape {shape:?} with {} values",
                        data.len()
                    ));
                }
                let (names, shapes) = architecture();
                loaded(flatten_params(&tensors, &names, &shapes))
            }
            e => loaded(e),
        }
    }
}
