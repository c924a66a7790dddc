//! Mutations shared by the targets: interesting numbers (as integers and as text) and byte-level edits of a
//! rendered file (bit flips, special bytes, truncation, extension, chunk deletion, duplication and splices).
use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Integers at the edges of the widths a file format uses.
pub const EDGE_INTS: &[u64] = &[
    0,
    1,
    2,
    3,
    7,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    1 << 28,
    (1 << 28) + 1,
    1 << 31,
    1 << 53,
    (1 << 53) + 1,
    1 << 61,
    1 << 62,
    1 << 63,
    u64::MAX - 7,
    u64::MAX,
];

/// Number texts for formats that write sizes as text: negative, overflowing, fractional, exponent, NaN,
/// infinite, empty and suffixed.
pub const EDGE_TEXTS: &[&str] = &[
    "-1",
    "-0",
    "-9223372036854775808",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
    "1e3",
    "1.5",
    "1e308",
    "1e400",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "0x10",
    "3L",
    "",
    " 7 ",
    "null",
    "true",
    "\"4\"",
    "[2]",
];

/// An interesting integer: an edge value, a small number, a random `u32`, or a random `u64`.
pub fn edge_int(rng: &mut ChaCha8Rng) -> u64 {
    match rng.random_range(0..4) {
        0 | 1 => *EDGE_INTS.choose(rng).unwrap_or(&0),
        2 => rng.random_range(0..10),
        _ if rng.random_bool(0.5) => u64::from(rng.random::<u32>()),
        _ => rng.random(),
    }
}

/// An interesting number as text: an edge integer or an edge text.
pub fn edge_text(rng: &mut ChaCha8Rng) -> String {
    if rng.random_bool(0.7) {
        edge_int(rng).to_string()
    } else {
        (*EDGE_TEXTS.choose(rng).unwrap_or(&"")).to_string()
    }
}

/// A random position in `0..=len`.
fn pos(rng: &mut ChaCha8Rng, len: usize) -> usize {
    rng.random_range(0..=len)
}

/// Applies one byte-level edit to `bytes`; `other` is another input of the same target for splices.
pub fn bytes(rng: &mut ChaCha8Rng, bytes: &mut Vec<u8>, other: &[u8]) {
    let len = bytes.len();
    match rng.random_range(0..9) {
        0 if len > 0 => {
            let i = rng.random_range(0..len);
            bytes[i] ^= 1 << rng.random_range(0..8);
        }
        1 if len > 0 => {
            let i = rng.random_range(0..len);
            bytes[i] = *[0u8, 0xff, 0x7f, 0x80, b'0', b'9', b',', b')', b'\'', b'"', b'\n']
                .choose(rng)
                .unwrap_or(&0);
        }
        2 => bytes.truncate(pos(rng, len)),
        3 => {
            let n = rng.random_range(1..64);
            let fill: u8 = if rng.random_bool(0.5) { 0 } else { rng.random() };
            bytes.extend(std::iter::repeat_n(fill, n));
        }
        4 => {
            let (a, b) = (pos(rng, len), pos(rng, len));
            bytes.drain(a.min(b)..a.max(b));
        }
        5 => {
            let (a, b) = (pos(rng, len), pos(rng, len));
            let chunk = bytes[a.min(b)..a.max(b)].to_vec();
            let at = pos(rng, len);
            bytes.splice(at..at, chunk);
        }
        6 => {
            // splice: a prefix of this input and a suffix of the other
            let cut = pos(rng, len);
            let from = pos(rng, other.len());
            bytes.truncate(cut);
            bytes.extend_from_slice(&other[from..]);
        }
        7 if len >= 4 => {
            let i = rng.random_range(0..=len - 4);
            let v = edge_int(rng) as u32;
            let word = if rng.random_bool(0.5) {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            };
            bytes[i..i + 4].copy_from_slice(&word);
        }
        _ => bytes.clear(),
    }
}

/// The recipe every file target follows: a valid file's parts from `valid`, up to three structure-aware
/// `mutate` steps, the rendered bytes, and in about a third of the inputs one byte-level edit ([`bytes`])
/// that may splice in another valid file.
pub fn structured<P>(
    rng: &mut ChaCha8Rng,
    valid: impl Fn(&mut ChaCha8Rng) -> P,
    mutate: impl Fn(&mut P, &mut ChaCha8Rng),
    render: impl Fn(&P) -> Vec<u8>,
) -> Vec<u8> {
    let mut parts = valid(rng);
    for _ in 0..rng.random_range(0..=3) {
        mutate(&mut parts, rng);
    }
    let mut out = render(&parts);
    if rng.random_bool(0.3) {
        let other = render(&valid(rng));
        bytes(rng, &mut out, &other);
    }
    out
}
