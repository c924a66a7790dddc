//! Process-wide allocator tuning for the tape's large, short-lived buffers.
//!
//! Every op of a tape allocates its output, and at the sizes imreg benchmarks those outputs range from a few
//! KiB (the tiny MLP) to 75 MB (a convolution's patch matrix on a chunk of 128 CIFAR images). Two things keep
//! them cheap, both changing only when memory is returned to the OS, never a result:
//!
//! * [`reuse_large_buffers`] raises glibc's mmap and trim thresholds and its top pad, so freed buffers up to
//!   256 MiB stay in the heap and are reused instead of being `mmap`ed afresh and page-faulted in on every call (measured on
//!   the small MLP, 64-128-128-10, n = 512: 600 HVP, gradient and forward calls took 370 000 page faults and an
//!   HVP 2.6 ms instead of 1.3 ms). Every thread keeps its own malloc arena, so rayon's workers do not wait on
//!   one another's allocations.
//! * [`LargeBlockCache`], a global allocator, keeps freed blocks of at least [`LARGE_BLOCK_BYTES`] for reuse.
//!   glibc cannot: a worker thread's arena is made of heaps of at most 64 MiB, and a block that does not fit
//!   one is `mmap`ed and unmapped on every call whatever the thresholds (a CIFAR CNN's gradient took 145 000
//!   page faults and ≈ 2.3× the time). Install it with one line in every binary, bench or extension module:
//!
//! ```
//! #[global_allocator]
//! static ALLOC: imreg_ad::alloc::LargeBlockCache = imreg_ad::alloc::LargeBlockCache::new();
//!
//! fn main() {
//!     imreg_ad::alloc::reuse_large_buffers();
//!     let v = vec![0.0_f64; 1 << 20];
//!     assert_eq!(v.len(), 1 << 20);
//! }
//! ```
//!
//! The `imreg` binary, the benches, the CNN anchor example and the Python extension do both.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::{Mutex, MutexGuard};

/// Blocks of at least this many bytes (16 MiB) are cached by [`LargeBlockCache`] when freed. Smaller blocks
/// are left to the system allocator, whose per-thread arenas serve them from their heaps; the threshold is a
/// quarter of a worker's 64 MiB heap, so every block that cannot share a heap with a few others is kept.
/// (A threshold of 1 MiB was measured too: it takes the cache's lock for many more blocks, and made
/// `resnet-small`'s forward pass and gradient 1.35–1.47× slower.)
pub const LARGE_BLOCK_BYTES: usize = 16 << 20;

/// At most this many bytes (1 GiB) of freed blocks are kept by [`LargeBlockCache`]; beyond it the blocks freed
/// longest ago go back to the system allocator.
pub const MAX_CACHED_BYTES: usize = 1 << 30;

/// At most this many freed blocks are kept (1 GiB in 16 MiB blocks), so the cache is a fixed array that never
/// allocates. A lookup scans the blocks held, never the empty slots.
pub const MAX_CACHED_BLOCKS: usize = MAX_CACHED_BYTES / LARGE_BLOCK_BYTES;

/// Block sizes are rounded up to a multiple of 1/16 of their power of two (at most 6.25% more memory), so
/// buffers whose sizes differ a little (a batch's last, shorter chunk) share blocks.
const CLASSES_PER_OCTAVE_LOG2: u32 = 4;

/// A global allocator: the system allocator, except that freed blocks of at least [`LARGE_BLOCK_BYTES`] are
/// kept (up to [`MAX_CACHED_BYTES`] and [`MAX_CACHED_BLOCKS`] in all, the oldest returned first) and handed
/// out again to the next request of the same size class and alignment. A cached block keeps its pages mapped, so a tape's large
/// buffers are page-faulted in once per process instead of once per call. It never changes a value the program
/// computes; memory the program has freed stays with the process until evicted.
///
/// Sizes from [`LARGE_BLOCK_BYTES`] up are rounded up to one of 16 size classes per power of two, a pure
/// function of the requested size, so `dealloc` (which receives the requested layout) frees the block the
/// allocation made. Requests below the threshold, and every `realloc` between two small sizes, go straight to
/// [`System`] without taking the cache's lock.
pub struct LargeBlockCache {
    min_block: usize,
    max_cached: usize,
    cache: Mutex<Blocks>,
}

/// The freed blocks: `slots[..held]`, in no order; `stamp` orders them by the time they were freed.
struct Blocks {
    slots: [Block; MAX_CACHED_BLOCKS],
    held: usize,
    cached_bytes: usize,
    clock: u64,
}

#[derive(Clone, Copy)]
struct Block {
    ptr: *mut u8,
    /// The block's layout as allocated from [`System`] (its size a size class).
    layout: Layout,
    stamp: u64,
}

impl Block {
    /// The filler of the slots beyond `held`; never handed out.
    const EMPTY: Block = Block {
        ptr: std::ptr::null_mut(),
        layout: Layout::new::<u8>(),
        stamp: 0,
    };
}

// SAFETY: a cached `Block` is memory owned by the cache alone (freed by the program, not yet handed out or
// returned to the system allocator); the pointer is only moved between threads under the mutex.
unsafe impl Send for Blocks {}

impl LargeBlockCache {
    /// The cache with the documented limits: blocks of at least [`LARGE_BLOCK_BYTES`], at most
    /// [`MAX_CACHED_BYTES`] kept.
    pub const fn new() -> Self {
        Self::with_limits(LARGE_BLOCK_BYTES, MAX_CACHED_BYTES)
    }

    /// A cache of freed blocks of at least `min_block` bytes, keeping at most `max_cached` bytes and at most
    /// [`MAX_CACHED_BLOCKS`] blocks.
    pub const fn with_limits(min_block: usize, max_cached: usize) -> Self {
        Self {
            min_block,
            max_cached,
            cache: Mutex::new(Blocks {
                slots: [Block::EMPTY; MAX_CACHED_BLOCKS],
                held: 0,
                cached_bytes: 0,
                clock: 0,
            }),
        }
    }

    /// The number of bytes of freed blocks held now.
    pub fn cached_bytes(&self) -> usize {
        self.lock().cached_bytes
    }

    /// Returns every cached block to the system allocator.
    pub fn release(&self) {
        while let Some(block) = self.lock().take_oldest() {
            // SAFETY: the block was allocated from `System` with `block.layout` and is owned by the cache.
            unsafe { System.dealloc(block.ptr, block.layout) };
        }
    }

    fn lock(&self) -> MutexGuard<'_, Blocks> {
        // The cache's state is consistent between statements, so a panic elsewhere cannot leave it broken.
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The layout this allocator requests from [`System`] for `layout`: `None` for a small block (passed through
    /// unchanged), else the size rounded up to its size class.
    fn class_of(&self, layout: Layout) -> Option<Layout> {
        if layout.size() < self.min_block {
            return None;
        }
        let size = layout.size();
        let step = 1usize << (usize::BITS - 1 - size.leading_zeros()).saturating_sub(CLASSES_PER_OCTAVE_LOG2);
        let rounded = size.checked_add(step - 1)? & !(step - 1);
        Layout::from_size_align(rounded, layout.align()).ok()
    }
}

impl Default for LargeBlockCache {
    fn default() -> Self {
        Self::new()
    }
}

impl Blocks {
    /// Removes and returns the most recently freed block with exactly `layout`.
    fn take(&mut self, layout: Layout) -> Option<Block> {
        self.take_by(|b| b.layout == layout, |b| b.stamp)
    }

    /// Removes and returns the block freed longest ago.
    fn take_oldest(&mut self) -> Option<Block> {
        self.take_by(|_| true, |b| std::cmp::Reverse(b.stamp))
    }

    /// Removes and returns the cached block that passes `keep` with the largest `rank`.
    fn take_by<K: Ord>(
        &mut self,
        keep: impl Fn(&Block) -> bool,
        rank: impl Fn(&Block) -> K,
    ) -> Option<Block> {
        let index = (0..self.held)
            .filter(|&i| keep(&self.slots[i]))
            .max_by_key(|&i| rank(&self.slots[i]))?;
        let block = self.slots[index];
        self.held -= 1;
        self.slots[index] = self.slots[self.held];
        self.cached_bytes -= block.layout.size();
        Some(block)
    }

    /// Stores `block` if a slot is free and it fits in `max_cached`; otherwise hands it back.
    fn put(&mut self, ptr: *mut u8, layout: Layout, max_cached: usize) -> Result<(), ()> {
        if self.cached_bytes + layout.size() > max_cached || self.held == MAX_CACHED_BLOCKS {
            return Err(());
        }
        self.clock += 1;
        self.slots[self.held] = Block {
            ptr,
            layout,
            stamp: self.clock,
        };
        self.held += 1;
        self.cached_bytes += layout.size();
        Ok(())
    }
}

// SAFETY: every block handed out is either fresh from `System` with the class layout or a cached block of
// exactly that layout (so at least `layout.size()` bytes, aligned to `layout.align()`), owned by no one else;
// `dealloc` recomputes the same class layout from the caller's layout, so every block goes back to `System`
// with the layout it was allocated with.
unsafe impl GlobalAlloc for LargeBlockCache {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = self.class_of(layout) else {
            // SAFETY: the caller's contract (non-zero size) is passed on unchanged.
            return unsafe { System.alloc(layout) };
        };
        let cached = self.lock().take(class);
        if let Some(block) = cached {
            return block.ptr;
        }
        // SAFETY: `class` has a non-zero size (at least `layout.size()`).
        unsafe { System.alloc(class) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let Some(class) = self.class_of(layout) else {
            // SAFETY: as in `alloc`.
            return unsafe { System.alloc_zeroed(layout) };
        };
        let cached = self.lock().take(class);
        if let Some(block) = cached {
            // SAFETY: the cached block holds at least `layout.size()` writable bytes and is ours alone.
            unsafe { block.ptr.write_bytes(0, layout.size()) };
            return block.ptr;
        }
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(class) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(class) = self.class_of(layout) else {
            // SAFETY: small blocks came from `System` with this very layout.
            return unsafe { System.dealloc(ptr, layout) };
        };
        let stored = {
            let mut cache = self.lock();
            let mut stored = cache.put(ptr, class, self.max_cached);
            // Make room by returning the oldest blocks, one at a time (freed outside the lock below).
            while stored.is_err() && class.size() <= self.max_cached {
                let Some(oldest) = cache.take_oldest() else { break };
                drop(cache);
                // SAFETY: the evicted block came from `System` with `oldest.layout` and is owned by the cache.
                unsafe { System.dealloc(oldest.ptr, oldest.layout) };
                cache = self.lock();
                stored = cache.put(ptr, class, self.max_cached);
            }
            stored
        };
        if stored.is_err() {
            // SAFETY: the block came from `System` with the class layout (see `alloc`).
            unsafe { System.dealloc(ptr, class) };
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY (both branches): the caller guarantees `new_size` > 0 and, rounded to `layout.align()`, not
        // overflowing `isize`, so the new layout is valid.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if self.class_of(layout).is_none() && self.class_of(new_layout).is_none() {
            // SAFETY: the block came from `System` with `layout`; the caller's contract is passed on.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: `new_layout` is valid (above).
        let new_ptr = unsafe { self.alloc(new_layout) };
        if !new_ptr.is_null() {
            // SAFETY: both blocks hold at least the smaller size, are distinct, and `ptr` is live until the
            // `dealloc` below, which receives the layout it was allocated with.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new_ptr
    }
}

/// Keeps large freed blocks in the process heap for reuse (glibc: `M_MMAP_THRESHOLD` = 256 MiB,
/// `M_TRIM_THRESHOLD` = 1 GiB, `M_TOP_PAD` = 64 MiB); a no-op on other allocators and platforms. Idempotent;
/// call it once at start.
///
/// Returns whether the tuning was applied.
///
/// The top pad keeps a worker thread's extra heaps. A worker's arena grows by heaps of at most 64 MiB, and
/// glibc deletes an extra heap as soon as it is empty, unless the heap before it has less than `M_TOP_PAD`
/// bytes of room to spare; with the pad at a whole heap that is always so, and no heap is deleted. Without it
/// the MNIST CNN's forward pass mapped and deleted a 64 MiB heap on every call in some builds (315 maps of
/// 128 MiB in one bench run, 1.5–1.7× the time), depending on whether a call's frees emptied the heap. The pad
/// also makes the main heap grow in steps of 64 MiB of address space; pages are faulted in only when used.
///
/// Every thread keeps its own malloc arena. A single arena (`M_ARENA_MAX` = 1) would also let rayon's workers
/// reuse blocks above a secondary arena's 64 MiB heaps, but at the price of one lock for every thread's
/// allocations above glibc's per-thread cache (1 KiB): two workers building small tapes at once wait on it and
/// sleep, which cost the tiny and small MLPs up to 1.7× (docs/performance.md). [`LargeBlockCache`] keeps those
/// large blocks instead, with a lock taken only for them.
pub fn reuse_large_buffers() -> bool {
    /// glibc's largest heap of a secondary arena (`HEAP_MAX_SIZE` on 64-bit targets).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    const WORKER_HEAP_BYTES: libc::c_int = 64 << 20;
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *ONCE.get_or_init(|| {
            // SAFETY: `mallopt` only changes glibc's allocator parameters; the values are in range.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20) == 1
                    && libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30) == 1
                    && libc::mallopt(libc::M_TOP_PAD, WORKER_HEAP_BYTES) == 1
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
    use super::{LargeBlockCache, LARGE_BLOCK_BYTES, MAX_CACHED_BLOCKS, MAX_CACHED_BYTES};
    use std::alloc::{GlobalAlloc, Layout};

    const MIB: usize = 1 << 20;

    /// Runs `test` on a cache of the blocks from 1 MiB, keeping at most 8 MiB, then empties the cache.
    fn on_small_cache(test: impl FnOnce(&LargeBlockCache)) {
        let cache = LargeBlockCache::with_limits(MIB, 8 * MIB);
        test(&cache);
        cache.release();
        assert_eq!(cache.cached_bytes(), 0);
    }

    /// Allocates a block for `freed`, fills its first `filled` bytes, frees it, then returns it with the block
    /// `again` allocates next.
    unsafe fn free_then(
        cache: &LargeBlockCache,
        freed: Layout,
        filled: usize,
        again: impl FnOnce() -> *mut u8,
    ) -> (*mut u8, *mut u8) {
        unsafe {
            let p = cache.alloc(freed);
            assert!(!p.is_null());
            p.write_bytes(0xAB, filled);
            cache.dealloc(p, freed);
            (p, again())
        }
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn tuning_applies_on_glibc_and_is_idempotent() {
        let first = super::reuse_large_buffers();
        assert_eq!(first, super::reuse_large_buffers());
        assert_eq!(first, cfg!(all(target_os = "linux", target_env = "gnu")));
    }

    #[test]
    fn documented_limits() {
        assert_eq!(LARGE_BLOCK_BYTES, 16 * MIB);
        assert_eq!(MAX_CACHED_BYTES, 1024 * MIB);
        assert_eq!(MAX_CACHED_BLOCKS, 64);
        let cache = LargeBlockCache::new();
        assert_eq!(cache.class_of(layout(LARGE_BLOCK_BYTES - 1, 8)), None);
        assert_eq!(
            cache.class_of(layout(LARGE_BLOCK_BYTES, 8)),
            Some(layout(LARGE_BLOCK_BYTES, 8))
        );
    }

    #[test]
    fn a_freed_large_block_is_handed_out_again_for_the_same_size() {
        on_small_cache(|cache| {
            let l = layout(2 * MIB, 8);
            unsafe {
                let (p, q) = free_then(cache, l, l.size(), || {
                    assert_eq!(cache.cached_bytes(), 2 * MIB);
                    cache.alloc(l)
                });
                assert_eq!(q, p);
                assert_eq!(cache.cached_bytes(), 0);
                cache.dealloc(q, l);
            }
        });
    }

    #[test]
    fn sizes_in_one_class_share_blocks_and_round_up_at_most_one_sixteenth() {
        on_small_cache(|cache| {
            for size in [MIB, MIB + 1, 3 * MIB - 5, 5 * MIB + 12_345, usize::MAX / 4] {
                let class = cache.class_of(layout(size, 8)).unwrap();
                assert!(
                    class.size() >= size && class.size() - size <= size / 16,
                    "{size} -> {}",
                    class.size()
                );
            }
            let (a, b) = (layout(2 * MIB + 1, 8), layout(2 * MIB + 100, 8));
            assert_eq!(cache.class_of(a), cache.class_of(b));
            unsafe {
                // The block holds the whole class, so the larger request in the class may use all of it.
                let (p, q) = free_then(cache, a, b.size(), || cache.alloc(b));
                assert_eq!(q, p);
                q.write_bytes(2, b.size());
                cache.dealloc(q, b);
            }
        });
    }

    #[test]
    fn a_zeroed_allocation_from_the_cache_is_zero() {
        on_small_cache(|cache| {
            let l = layout(3 * MIB, 8);
            unsafe {
                let (p, q) = free_then(cache, l, l.size(), || cache.alloc_zeroed(l));
                assert_eq!(q, p);
                assert!(std::slice::from_raw_parts(q, l.size()).iter().all(|&b| b == 0));
                cache.dealloc(q, l);
                let fresh = cache.alloc_zeroed(layout(4 * MIB, 8));
                assert!(std::slice::from_raw_parts(fresh, 4 * MIB).iter().all(|&b| b == 0));
                cache.dealloc(fresh, layout(4 * MIB, 8));
            }
        });
    }

    #[test]
    fn the_cache_holds_at_most_its_bound_and_evicts_the_oldest() {
        on_small_cache(|cache| {
            let l = layout(2 * MIB, 8);
            unsafe {
                let blocks: Vec<*mut u8> = (0..5).map(|_| cache.alloc(l)).collect();
                for &p in &blocks {
                    cache.dealloc(p, l);
                    assert!(cache.cached_bytes() <= 8 * MIB);
                }
                assert_eq!(cache.cached_bytes(), 8 * MIB);
                // The first block freed went back to the system; the four later ones come back, newest first.
                let again: Vec<*mut u8> = (0..4).map(|_| cache.alloc(l)).collect();
                assert_eq!(again, blocks[1..].iter().rev().copied().collect::<Vec<_>>());
                assert_eq!(cache.cached_bytes(), 0);
                for p in again {
                    cache.dealloc(p, l);
                }
                // A block larger than the bound is never kept.
                let huge = layout(9 * MIB, 8);
                let p = cache.alloc(huge);
                cache.dealloc(p, huge);
                assert_eq!(cache.cached_bytes(), 8 * MIB);
            }
        });
    }

    #[test]
    fn the_cache_holds_at_most_its_number_of_blocks() {
        // Blocks are allocated and freed untouched, so no page of them is ever faulted in.
        let cache = LargeBlockCache::with_limits(MIB, MAX_CACHED_BYTES);
        let l = layout(MIB, 8);
        unsafe {
            let blocks: Vec<*mut u8> = (0..MAX_CACHED_BLOCKS + 3).map(|_| cache.alloc(l)).collect();
            for p in blocks {
                cache.dealloc(p, l);
            }
        }
        assert_eq!(cache.cached_bytes(), MAX_CACHED_BLOCKS * MIB);
        cache.release();
        assert_eq!(cache.cached_bytes(), 0);
    }

    #[test]
    fn small_blocks_pass_through_and_alignment_is_part_of_the_match() {
        on_small_cache(|cache| unsafe {
            let small = layout(MIB - 1, 8);
            let p = cache.alloc(small);
            cache.dealloc(p, small);
            assert_eq!(cache.cached_bytes(), 0);

            let aligned = layout(2 * MIB, 1 << 16);
            let p = cache.alloc(aligned);
            assert_eq!(p as usize % (1 << 16), 0);
            cache.dealloc(p, aligned);
            let other = layout(2 * MIB, 8);
            let q = cache.alloc(other);
            assert_eq!(
                cache.cached_bytes(),
                2 * MIB,
                "a block of another alignment was taken"
            );
            let r = cache.alloc(aligned);
            assert_eq!(r, p);
            assert_eq!(r as usize % (1 << 16), 0);
            cache.dealloc(q, other);
            cache.dealloc(r, aligned);
        });
    }

    #[test]
    fn realloc_across_the_threshold_keeps_the_contents() {
        on_small_cache(|cache| unsafe {
            let small = layout(1000, 8);
            let p = cache.alloc(small);
            for i in 0..1000 {
                *p.add(i) = i as u8;
            }
            let big = cache.realloc(p, small, 3 * MIB);
            let grown = layout(3 * MIB, 8);
            assert!((0..1000).all(|i| *big.add(i) == i as u8));
            big.add(3 * MIB - 1).write(9);
            let back = cache.realloc(big, grown, 500);
            assert!((0..500).all(|i| *back.add(i) == i as u8));
            assert_eq!(cache.cached_bytes(), cache.class_of(grown).unwrap().size());
            cache.dealloc(back, layout(500, 8));
        });
    }

    #[test]
    fn two_threads_never_share_a_block() {
        static CACHE: LargeBlockCache = LargeBlockCache::with_limits(MIB, 6 * MIB);
        let work = |seed: u8| {
            move || unsafe {
                for round in 0..200usize {
                    let l = layout((1 + (round + seed as usize) % 3) * MIB, 8);
                    let p = CACHE.alloc(l);
                    let value = seed.wrapping_add(round as u8);
                    p.write_bytes(value, l.size());
                    std::thread::yield_now();
                    let block = std::slice::from_raw_parts(p, l.size());
                    assert!(
                        block.iter().all(|&b| b == value),
                        "block overwritten by the other thread"
                    );
                    CACHE.dealloc(p, l);
                }
            }
        };
        let (a, b) = (std::thread::spawn(work(1)), std::thread::spawn(work(100)));
        a.join().unwrap();
        b.join().unwrap();
        assert!(CACHE.cached_bytes() <= 6 * MIB);
        CACHE.release();
        assert_eq!(CACHE.cached_bytes(), 0);
    }
}
