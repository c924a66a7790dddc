//! Smoke test of the generalization study (tiny size), and the full default study as an ignored test that
//! prints its table.
use imreg_sgd::study::{run_study, Arm, StudyConfig};

#[test]
fn study_smoke() {
    let cfg = StudyConfig {
        steps: 10,
        seeds: vec![0, 1],
        fisher_examples: 20,
        ..StudyConfig::default()
    };
    let r = run_study(&cfg).unwrap();
    assert_eq!(r.runs.len(), 2 * Arm::ALL.len());
    assert!(r.summary.iter().all(|a| a.runs == 2));
    // Deterministic: the same config gives the same numbers.
    assert_eq!(run_study(&cfg).unwrap().runs, r.runs);
    assert!(r.to_markdown().contains("small-LR + GN"));
    assert!(run_study(&StudyConfig { micro: 7, ..cfg }).is_err());
}

#[test]
#[ignore = "the full default study (≈ 1 min on 2 cores): cargo test -p imreg-sgd --release --test study -- --ignored --nocapture"]
fn study_default() {
    let r = run_study(&StudyConfig::default()).unwrap();
    println!("{}", r.to_markdown());
}
