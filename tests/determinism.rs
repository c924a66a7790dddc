//! End to end: the `imreg` binary gives bitwise-identical check results with one and with two rayon threads.
use std::process::Command;

fn verify(threads: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_imreg"))
        .args([
            "verify",
            "--json",
            "--only",
            "ad",
            "objective",
            "spectra",
            "smith",
            "wor",
        ])
        .env("RAYON_NUM_THREADS", threads)
        .output()
        .expect("the imreg binary runs");
    assert!(
        out.status.success(),
        "imreg verify failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn verify_is_bitwise_identical_at_one_and_two_threads() {
    let one = verify("1");
    let two = verify("2");
    let parsed: serde_json::Value = serde_json::from_str(&one).expect("verify --json prints JSON");
    let checks = parsed.as_array().expect("a JSON array");
    assert!(
        checks.len() >= 8,
        "expected the selected checks, got {}",
        checks.len()
    );
    for c in checks {
        for field in ["id", "claim", "expected", "measured", "passed"] {
            assert!(c.get(field).is_some(), "missing field {field} in {c}");
        }
    }
    // The report text is the user-visible result. (Bitwise equality of the underlying f64 values is tested
    // per crate, with 1- and 2-thread rayon pools.)
    assert_eq!(one, two);
}
