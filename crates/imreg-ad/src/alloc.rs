//! Process-wide allocator tuning for the tape's large, short-lived buffers.
//!
//! Every op of a tape allocates its output, and at the MLP sizes imreg benchmarks those outputs are 100 KiB to
//! a few MiB. glibc's `malloc` serves blocks above its mmap threshold (128 KiB at start, then adapted) with
//! fresh `mmap`s and trims freed heap tops back to the OS, so once the adaptive threshold settles low, every
//! call page-faults its buffers in again: measured on the small MLP (64-128-128-10, n = 512), 600 HVP, gradient
//! and forward calls took 370 000 page faults and an HVP 2.6 ms instead of 1.3 ms. [`reuse_large_buffers`]
//! raises both thresholds so freed buffers stay in the heap and are reused. The `imreg` binary and the
//! benchmarks call it at start; a program using the library can do the same (it only changes when memory is
//! returned to the OS, never a result).

/// Keeps large freed blocks in the process heap for reuse (glibc: `M_MMAP_THRESHOLD` = 256 MiB,
/// `M_TRIM_THRESHOLD` = 1 GiB, `M_ARENA_MAX` = 1); a no-op on other allocators and platforms. Idempotent; call
/// it once at start, before other threads allocate. Returns whether the tuning was applied.
///
/// One arena: glibc gives each further thread (rayon's workers) a secondary arena made of 64 MiB heaps, and a
/// block that does not fit one (a convolution's patch matrix on a chunk of 128 CIFAR images is 75 MB) is
/// `mmap`ed and unmapped on every call whatever the thresholds, so each call faulted its pages in again. With
/// the main arena only, those blocks are reused too (a CIFAR CNN's gradient ran ≈ 2.3× faster).
///
/// The price is one lock for every thread's allocations above glibc's per-thread cache (1 KiB): two workers
/// building small tapes at once wait on it and sleep, with the same instructions executed. It costs the small
/// and tiny MLPs up to 1.4× on a forward pass and 1.7× on per-example gradients, and nothing measurable on the
/// medium MLP (docs/performance.md). glibc offers no setting with both: a secondary arena's heap is at most
/// 64 MiB, and its per-thread cache takes no block above 1 KiB.
pub fn reuse_large_buffers() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *ONCE.get_or_init(|| {
            // SAFETY: `mallopt` only changes glibc's allocator parameters; the values are in range.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20) == 1
                    && libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30) == 1
                    && libc::mallopt(libc::M_ARENA_MAX, 1) == 1
            }
        })
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tuning_applies_on_glibc_and_is_idempotent() {
        let first = super::reuse_large_buffers();
        assert_eq!(first, super::reuse_large_buffers());
        assert_eq!(first, cfg!(all(target_os = "linux", target_env = "gnu")));
    }
}
