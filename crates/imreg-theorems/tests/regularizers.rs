//! Every registered check of SGD without replacement, support learning and the explicit regularizers as a
//! test (quick mode), one test per check so failures are named.
use imreg_check::{run_check, CheckContext};
use imreg_theorems::regularizers::regularization_checks;

fn run(id: &str) {
    let ctx = CheckContext {
        out_dir: None,
        quick: true,
    };
    let c = regularization_checks()
        .into_iter()
        .find(|c| c.id == id)
        .expect("registered");
    let r = run_check(&c, &ctx);
    println!(
        "{id}: expected {} | measured {} ({:.2} s)",
        r.expected, r.measured, r.seconds
    );
    assert!(
        r.passed,
        "{id}: expected {} | measured {}",
        r.expected, r.measured
    );
}

#[test]
fn wor_drift_vs_enumeration() {
    run("wor.drift-vs-enumeration");
}
#[test]
fn wor_flat_k2_growth() {
    run("wor.flat-k2-growth");
}
#[test]
fn wor_sharp_saturation() {
    run("wor.sharp-saturation");
}
#[test]
fn wor_epoch_end_variance() {
    run("wor.epoch-end-variance");
}
#[test]
fn support_gd_flat() {
    run("support.gd-flat");
}
#[test]
fn support_decay_rate() {
    run("support.decay-rate");
}
#[test]
fn reg_gradients_vs_fd() {
    run("reg.gradients-vs-fd");
}
#[test]
fn reg_explicit_matches_implicit() {
    run("reg.explicit-matches-implicit");
}
#[test]
fn reg_fisher_trace_expectation() {
    run("reg.fisher-trace-expectation");
}
