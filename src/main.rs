/// Freed tape buffers of 16 MiB and more are kept for the next call (see `imreg_ad::alloc`).
#[global_allocator]
static ALLOC: imreg_ad::alloc::LargeBlockCache = imreg_ad::alloc::LargeBlockCache::new();

fn main() {
    std::process::exit(imreg_cli::main());
}
