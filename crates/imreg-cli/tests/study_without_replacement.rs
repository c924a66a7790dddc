//! The `without-replacement` study at smoke scale, run and reported in a pool of one thread and of two:
//! every run's metrics and final parameters and the report (endpoint Lanczos pairs, noise traces, verdicts)
//! are bitwise identical.
mod common;
use common::cli;
use std::path::Path;

fn run_in_pool(threads: usize, out: &Path) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let out = out.to_str().unwrap();
    pool.install(|| {
        assert_eq!(
            cli(&[
                "study",
                "run",
                "without-replacement",
                "--scale",
                "smoke",
                "--out",
                out
            ]),
            0
        );
        assert_eq!(cli(&["study", "report", "without-replacement", "--out", out]), 0);
    });
}

#[test]
fn smoke_study_is_identical_at_one_and_two_threads() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("t1"), dir.path().join("t2"));
    run_in_pool(1, &one);
    run_in_pool(2, &two);
    let read = |root: &Path, rel: &str| std::fs::read(root.join("mnist").join(rel)).unwrap();
    let report = String::from_utf8(read(&one, "report.json")).unwrap();
    assert!(report.contains("weighted_trace"), "{report}");
    assert_eq!(read(&one, "report.json"), read(&two, "report.json"));
    for i in 0..8 {
        for file in ["metrics.csv", "theta_final.npy"] {
            let rel = format!("run-{i:04}/{file}");
            assert_eq!(read(&one, &rel), read(&two, &rel), "{rel}");
        }
    }
}
