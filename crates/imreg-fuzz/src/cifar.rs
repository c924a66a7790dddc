//! CIFAR-10 binary inputs: records of a label byte and 3072 pixel bytes, mutated in the labels, the record
//! count (none, several) and the length (ragged, truncated) before byte-level edits.
use crate::mutate;
use crate::target::{loaded, Target, TargetVerdict};
use imreg_objective::data::cifar::{parse_cifar10, CIFAR_RECORD};
use imreg_objective::data::Classification;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The CIFAR-10 target: [`parse_cifar10`], then the 10-class [`Classification`] of an accepted batch.
pub struct Cifar10;

fn valid(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let records = rng.random_range(1..=3);
    let mut out = Vec::with_capacity(records * CIFAR_RECORD);
    for _ in 0..records {
        out.push(rng.random_range(0..10));
        out.extend((0..CIFAR_RECORD - 1).map(|_| rng.random::<u8>()));
    }
    out
}

/// One structure-aware edit of a batch: a label byte set to any value, all records dropped, the first
/// record duplicated, the last record cut (ragged), or a few bytes appended.
fn mutate_records(bytes: &mut Vec<u8>, rng: &mut ChaCha8Rng) {
    let records = bytes.len() / CIFAR_RECORD;
    match rng.random_range(0..5) {
        0 if records > 0 => {
            let r = rng.random_range(0..records);
            bytes[r * CIFAR_RECORD] = rng.random_range(0..=255);
        }
        1 => bytes.clear(),
        2 => {
            let chunk = bytes[..CIFAR_RECORD.min(bytes.len())].to_vec();
            bytes.extend(chunk);
        }
        3 => {
            let cut = rng.random_range(1..=CIFAR_RECORD);
            bytes.truncate(bytes.len().saturating_sub(cut));
        }
        _ => bytes.extend(std::iter::repeat_n(0, rng.random_range(1..=8))),
    }
}

impl Target for Cifar10 {
    fn name(&self) -> &'static str {
        "cifar10"
    }

    fn generate(&self, rng: &mut ChaCha8Rng) -> Vec<u8> {
        mutate::structured(rng, valid, mutate_records, |bytes| bytes.clone())
    }

    fn check(&self, input: &[u8]) -> TargetVerdict {
        match parse_cifar10(input, "fuzz_batch.bin") {
            Ok((x, labels)) => match Classification::new(x, labels, 10) {
                Ok(_) => TargetVerdict::Accepted,
                Err(e) => TargetVerdict::Rejected(e.to_string()),
            },
            e => loaded(e),
        }
    }
}
