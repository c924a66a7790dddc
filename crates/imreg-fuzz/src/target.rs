//! A fuzz target: a generator of valid inputs with structure-aware mutations, and a check that runs one
//! input through the code under test and classifies the result.
use rand_chacha::ChaCha8Rng;

/// What the code under test made of an input (a panic is caught by the driver, not returned).
#[derive(Clone, Debug, PartialEq)]
pub enum TargetVerdict {
    /// The input was accepted.
    Accepted,
    /// A typed error (for configs: exit code 2), with its message.
    Rejected(String),
    /// An error that is not the typed bad-input error the contract asks for (configs with an exit code other
    /// than 2), with its message. Counted as a failure.
    Untyped(String),
    /// An accepted input whose result breaks the loader's contract (values not matching the shape, a
    /// zero-length axis, more values than the limit), with what is wrong. Counted as a failure.
    Contract(String),
}

/// One fuzz target.
pub trait Target: Sync {
    /// The target's name, as used by `--formats` and `--replay`.
    fn name(&self) -> &'static str;
    /// A mutated input: a small valid file generated from `rng`, then mutated (rarely left valid).
    fn generate(&self, rng: &mut ChaCha8Rng) -> Vec<u8>;
    /// Runs the input through the code under test.
    fn check(&self, input: &[u8]) -> TargetVerdict;
    /// `true` for targets whose code lives in another crate than the loaders (reported separately).
    fn is_config(&self) -> bool {
        false
    }
}

/// The names of [`all`]'s targets, in order.
pub const TARGET_NAMES: [&str; 6] = [
    "npy",
    "idx-images",
    "idx-labels",
    "cifar10",
    "safetensors",
    "config",
];

/// Every target, in the order of [`TARGET_NAMES`].
pub fn all() -> [&'static dyn Target; 6] {
    [
        &crate::npy::Npy,
        &crate::idx::Idx::Images,
        &crate::idx::Idx::Labels,
        &crate::cifar::Cifar10,
        &crate::safetensors::Safetensors,
        &crate::config::Config,
    ]
}

/// The target called `name`.
pub fn by_name(name: &str) -> Option<&'static dyn Target> {
    all().into_iter().find(|t| t.name() == name)
}

/// The contract of an accepted array of `len` values with `shape`: `len = ∏ shape`, every axis ≥ 1, at most
/// [`MAX_VALUES`](imreg_objective::data::limits::MAX_VALUES) values.
pub fn array_contract(shape: &[usize], len: usize) -> TargetVerdict {
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if count != Some(len) || shape.contains(&0) || len > imreg_objective::data::limits::MAX_VALUES {
        TargetVerdict::Contract(format!("accepted shape {shape:?} with {len} values"))
    } else {
        TargetVerdict::Accepted
    }
}

/// A loader's result as a verdict: `Ok` accepted, `Err` a typed [`imreg_objective::data::DataError`].
pub fn loaded<T>(r: imreg_objective::data::DataResult<T>) -> TargetVerdict {
    match r {
        Ok(_) => TargetVerdict::Accepted,
        Err(e) => TargetVerdict::Rejected(e.to_string()),
    }
}
