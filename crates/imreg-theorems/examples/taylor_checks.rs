//! Runs every `taylor.*` check and prints its outcome; with `--out DIR` writes the figures and CSV series.
//!
//! `cargo run -p imreg-theorems --release --example taylor_checks -- [--quick] [--out DIR]`
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let out_dir = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from);
    let ctx = imreg_check::CheckContext { out_dir, quick };
    let mut failed = 0;
    for check in imreg_theorems::taylor::checks() {
        let r = imreg_check::run_check(&check, &ctx);
        failed += usize::from(!r.passed);
        println!(
            "{} [{}] {:.2}s\n  expected: {}\n  measured: {}",
            r.id,
            if r.passed { "pass" } else { "FAIL" },
            r.seconds,
            r.expected,
            r.measured
        );
        for f in &r.figures {
            println!("  figure: {}", f.display());
        }
    }
    std::process::exit(i32::from(failed > 0));
}
