//! Every registered check of this crate passes in quick mode.
#[test]
fn all_checks_pass() {
    imreg_check::assert_all_pass(&imreg_theorems::objective::checks(), true);
}

#[test]
fn full_mode_scalar_net_check_passes() {
    let ctx = imreg_check::CheckContext {
        out_dir: None,
        quick: false,
    };
    for c in imreg_theorems::objective::checks() {
        let out = (c.run)(&ctx).unwrap();
        assert!(out.passed, "{}: {} | {}", c.id, out.expected, out.measured);
    }
}
