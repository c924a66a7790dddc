//! Every registered check is also a test (quick mode), and its records are printed for the report.
use imreg_check::{assert_all_pass, run_check, CheckContext};

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
            "eos.edge-of-stochastic-stability",
        ]
    );
}

/// `cargo test -p imreg-eos --release --test checks -- --ignored --nocapture` prints every record in full
/// mode with figures under `target/eos-figures`.
#[test]
#[ignore]
fn print_full_records_with_figures() {
    let out = std::env::var("EOS_FIGURE_DIR").unwrap_or_else(|_| "/tmp/eos-figures".into());
    let ctx = CheckContext {
        out_dir: Some(out.into()),
        quick: false,
    };
    for c in imreg_theorems::eos::checks() {
        let r = run_check(&c, &ctx);
        println!(
            "{} [{}] {:.2}s\n  expected: {}\n  measured: {}\n  figures: {:?}\n",
            r.id, r.passed, r.seconds, r.expected, r.measured, r.figures
        );
    }
}
/// `cargo test -p imreg-theorems --release --test eos -- --ignored --nocapture` prints the two MLP checks'
/// quick-mode records (`EOS_FULL=1`: full mode; `EOS_CHECK=<substring>`: only the matching check ids).
#[test]
#[ignore]
fn print_mlp_check_records() {
    let quick = std::env::var("EOS_FULL").is_err();
    let out = std::env::var("EOS_FIGURE_DIR").ok().map(Into::into);
    let only = std::env::var("EOS_CHECK").unwrap_or_default();
    for c in imreg_theorems::eos::checks()
        .into_iter()
        .filter(|c| c.id.contains("stability") && c.id.contains(only.as_str()))
    {
        let r = run_check(
            &c,
            &CheckContext {
                out_dir: out.clone(),
                quick,
            },
        );
        println!(
            "{} [{}] {:.2}s\n  expected: {}\n  measured: {}\n",
            r.id, r.passed, r.seconds, r.expected, r.measured
        );
    }
}
