//! Structure-aware fuzzing of imreg's file loaders (`.npy`, MNIST IDX images and labels, CIFAR-10 binary
//! batches, safetensors weights) and of the experiment-config parser and validator, on the stable
//! toolchain. Each [`target`] generates small valid files from a seeded ChaCha stream and mutates them by
//! their structure (header fields, shape numbers, dtype strings, lengths) and then byte by byte; the
//! [`run`] driver feeds each input to the code under test under `catch_unwind` and counts typed errors,
//! accepts, panics, slow inputs and large allocations (measured by the [`alloc`] global allocator of the
//! binary). The `imreg-fuzz` binary runs it; `docs/fuzzing.md` explains the mutations, the limits checked
//! and the recorded counts.
pub mod alloc;
pub mod cifar;
pub mod config;
pub mod idx;
pub mod mutate;
pub mod npy;
pub mod run;
pub mod safetensors;
pub mod target;
