//! Every registered check is also a test (quick mode), and its records are printed for the report.
use imreg_check::{assert_all_pass, run_check, CheckContext};

/// Full-mode runs take an hour or more; the CNN EoSS run without imreg's allocator settings spent a quarter of its
/// CPU time in the kernel (524 million page faults).
#[global_allocator]
static ALLOC: imreg_ad::alloc::LargeBlockCache = imreg_ad::alloc::LargeBlockCache::new();

#[test]
fn all_checks_pass_in_quick_mode() {
    assert_all_pass(&imreg_theorems::eos::checks(), true);
}

#[test]
fn check_ids_are_the_registered_ones() {
    let ids: Vec<&str> = imreg_theorems::eos::checks().iter().map(|c| c.id).collect();
    assert_eq!(
        ids,
        [
            "eos.scalar-gd-identities",
            "eos.scalar-gf-closed-form",
            "eos.scalar-gd-limit",
            "eos.scalar-rate",
            "eos.scalar-width-reduction",
            "eos.quadratic-threshold",
            "eos.momentum-thresholds",
            "eos.mlp-edge-of-stability",
        ]
    );
}

/// `cargo test -p imreg-theorems --release --test eos -- --ignored --nocapture` prints the quick-mode records
/// of the edge-of-stability checks: the registered ones (`eos.*`), the unregistered MLP one of
/// `imreg_theorems::eos_mlp` and the two unregistered CNN checks of `imreg_theorems::eos_cnn` (`EOS_FULL=1`: full mode; `EOS_FIGURE_DIR=dir`: figures and their series;
/// `EOS_CHECK=<substring>`: only the matching check ids).
#[test]
#[ignore]
fn print_check_records() {
    imreg_ad::alloc::reuse_large_buffers();
    let ctx = CheckContext {
        out_dir: std::env::var("EOS_FIGURE_DIR").ok().map(Into::into),
        quick: std::env::var("EOS_FULL").is_err(),
    };
    let only = std::env::var("EOS_CHECK").unwrap_or_default();
    let checks = imreg_theorems::eos::checks()
        .into_iter()
        .chain(imreg_theorems::eos_mlp::unregistered_checks())
        .chain(imreg_theorems::eos_cnn::unregistered_checks());
    for c in checks.filter(|c| c.id.contains(only.as_str())) {
        let r = run_check(&c, &ctx);
        println!(
            "{} [{}] {:.2}s\n  expected: {}\n  measured: {}\n  figures: {:?}\n",
            r.id, r.passed, r.seconds, r.expected, r.measured, r.figures
        );
    }
}
