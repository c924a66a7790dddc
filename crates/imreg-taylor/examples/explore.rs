fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let out = std::env::args().find(|a| a.starts_with("out=")).map(|a| std::path::PathBuf::from(&a[4..]));
    let ctx = imreg_check::CheckContext { out_dir: out, quick };
    for c in imreg_taylor::checks() {
        let r = imreg_check::run_check(&c, &ctx);
        println!("{} [{}] {:.2}s\n  expected: {}\n  measured: {}\n  figs: {:?}", r.id, r.passed, r.seconds, r.expected, r.measured, r.figures);
    }
}
