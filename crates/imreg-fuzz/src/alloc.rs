//! A capped, counting global allocator: every request is recorded (the largest single request since the
//! last [`take_peak`]); a request above the cap is recorded, reported on standard error with the input being
//! run, and refused (null). Fallible allocations (`try_reserve`) then fail gracefully and the harness counts
//! the input as a large allocation; an infallible one aborts the process right after the report, so the
//! machine never swaps and the offending input can be replayed.
//!
//! A binary or test that wants this registers it with
//! `#[global_allocator] static ALLOC: imreg_fuzz::alloc::CappedAlloc = imreg_fuzz::alloc::CappedAlloc;`.
use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The default cap on a single allocation: 256 MiB.
pub const DEFAULT_CAP: usize = 256 << 20;

static CAP: AtomicUsize = AtomicUsize::new(DEFAULT_CAP);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static REFUSED: AtomicUsize = AtomicUsize::new(0);

/// The allocator (see the module documentation).
pub struct CappedAlloc;

/// Sets the cap on a single allocation, in bytes.
pub fn set_cap(bytes: usize) {
    CAP.store(bytes, Ordering::Relaxed);
}

/// The cap on a single allocation, in bytes.
pub fn cap() -> usize {
    CAP.load(Ordering::Relaxed)
}

/// The largest single request since the last call, and the largest refused one (0 if none); both reset.
pub fn take_peak() -> (usize, usize) {
    (
        PEAK.swap(0, Ordering::Relaxed),
        REFUSED.swap(0, Ordering::Relaxed),
    )
}

/// A fixed buffer for the report, so reporting allocates nothing.
struct Line {
    buf: [u8; 256],
    len: usize,
}

impl std::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = (self.len + s.len()).min(self.buf.len());
        self.buf[self.len..end].copy_from_slice(&s.as_bytes()[..end - self.len]);
        self.len = end;
        Ok(())
    }
}

fn refuse(size: usize) {
    REFUSED.fetch_max(size, Ordering::Relaxed);
    let mut line = Line {
        buf: [0; 256],
        len: 0,
    };
    let (target, seed, index) = crate::run::current_input();
    let _ = writeln!(
        line,
        "imreg-fuzz: LARGE ALLOCATION refused: {size} bytes > cap {} at --replay {target}:{seed}:{index}",
        cap()
    );
    // SAFETY: writes `line.len` initialized bytes of a live stack buffer to file descriptor 2.
    unsafe {
        libc::write(2, line.buf.as_ptr().cast(), line.len);
    }
}

/// Records `size`; `false` if it is above the cap (then reported).
fn admit(size: usize) -> bool {
    PEAK.fetch_max(size, Ordering::Relaxed);
    if size > cap() {
        refuse(size);
        return false;
    }
    true
}

// SAFETY: requests within the cap are forwarded unchanged to the system allocator; requests above it return
// null, which the `GlobalAlloc` contract allows. Recording uses atomics and a stack buffer only.
unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !admit(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !admit(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !admit(new_size) {
            return std::ptr::null_mut();
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}
