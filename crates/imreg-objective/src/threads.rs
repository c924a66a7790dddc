//! Running a computation on a pool of a fixed number of threads. Every parallel reduction of the workspace
//! adds fixed chunks in a fixed order, so results must not depend on the thread count; the tests check that
//! by running the same computation with `on_threads(1, …)` and `on_threads(2, …)` and comparing bits.
use crate::error::{ObjectiveError, Result};

/// Runs `f` inside a fresh rayon pool of `threads` threads (`0`: rayon's default count) and returns its
/// result; errors if the pool cannot be built.
pub fn on_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> Result<T> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| ObjectiveError::invalid("threads", format!("no pool of {threads} threads: {e}")))?;
    Ok(pool.install(f))
}
