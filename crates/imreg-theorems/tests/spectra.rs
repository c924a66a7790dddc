//! Every registered check of this crate passes (quick mode), so each check is also a test.
#[test]
fn all_spectra_checks_pass() {
    let checks = imreg_theorems::spectra::checks();
    assert_eq!(checks.len(), 5);
    imreg_check::assert_all_pass(&checks, true);
}

#[test]
fn checks_write_figures_when_asked() {
    let dir = std::env::temp_dir().join(format!("imreg-spectra-checks-{}", std::process::id()));
    let ctx = imreg_check::CheckContext {
        out_dir: Some(dir.clone()),
        quick: true,
    };
    for c in imreg_theorems::spectra::checks()
        .iter()
        .filter(|c| c.id == "spectra.minibs-ge-sharpness")
    {
        let out = (c.run)(&ctx).unwrap();
        assert!(out.passed && !out.figures.is_empty(), "{out:?}");
        assert!(out.figures.iter().all(|f| f.exists()));
    }
    let _ = std::fs::remove_dir_all(dir);
}
