//! A theorem check defined outside the workspace crates runs like the built-in ones, through the public API
//! only: it is listed in `verify --json` after the built-in checks, `reproduce` reports it with its figure,
//! and a duplicate id is rejected with an error naming it.
use imreg::check::{fit_order, Check, CheckContext, CheckError, Outcome, Record};
use imreg::cli::{registry, run_with_checks, EXIT_BAD_INPUT, EXIT_OK};
use std::path::Path;
use std::process::Command;

/// Explicit Euler on `y' = −y` to `T = 1` has global error `O(h)`: slope 1.
fn euler_global_order(ctx: &CheckContext) -> Result<Outcome, CheckError> {
    let steps = [0.1, 0.05, 0.025, 0.0125];
    let errors = steps
        .iter()
        .map(|h: &f64| (1.0 - h).powf(1.0 / h) - (-1.0f64).exp())
        .map(f64::abs)
        .collect();
    let study = fit_order(&steps, errors)?;
    let figures = ctx.save_order_figure("mine.euler-order", "euler", "Euler", "h", &[("Euler", &study)])?;
    Ok(study.outcome("|y_h(1) − e⁻¹|", 1.0, 0.15).with_figures(figures))
}

fn mine() -> Check {
    Check {
        id: "mine.euler-order",
        claim: "explicit Euler's global error on y' = −y is O(h)",
        run: euler_global_order,
    }
}

#[test]
fn a_user_check_is_listed_after_the_built_in_ones_in_the_verify_json() {
    let checks = registry::with_extra(vec![mine()]).unwrap();
    let built_in = registry::all_checks().len();
    assert_eq!(checks.len(), built_in + 1);
    assert_eq!(checks[built_in].id, "mine.euler-order");
    let only = ["mine".to_string()];
    let ctx = CheckContext {
        out_dir: None,
        quick: true,
    };
    let records = registry::run_all(&registry::select(checks, &only).unwrap(), &ctx, &|_| {});
    let json: serde_json::Value = serde_json::from_str(&imreg::cli::verify_json(&records).unwrap()).unwrap();
    assert_eq!(json[0]["id"], "mine.euler-order");
    assert_eq!(json[0]["passed"], true, "{json}");
    assert!(json[0]["measured"].as_str().unwrap().contains("slope"));
    assert_eq!(
        run_with_checks(["imreg", "-q", "verify", "--only", "mine"], vec![mine()]),
        EXIT_OK
    );
}

#[test]
fn reproduce_reports_a_user_check_with_its_figure() {
    let dir = tempfile_dir("reproduce");
    let out = dir.join("out");
    let args = [
        "imreg",
        "-q",
        "reproduce",
        "--quick",
        "--only",
        "mine",
        "--out",
        out.to_str().unwrap(),
    ];
    assert_eq!(run_with_checks(args, vec![mine()]), EXIT_OK);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let records: Vec<Record> = serde_json::from_value(report["checks"].clone()).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].id, "mine.euler-order");
    let svg = out.join("figures/mine_euler-order/euler.svg");
    assert!(records[0].figures.contains(&svg), "{:?}", records[0].figures);
    assert!(svg.exists() && out.join("figures/mine_euler-order/euler.csv").exists());
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("`mine.euler-order`") && md.contains("figures/mine_euler-order/euler.svg"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_duplicate_or_unusable_id_is_bad_input_naming_it() {
    let twice = vec![mine(), mine()];
    let err = registry::with_extra(twice.clone()).unwrap_err();
    assert!(
        err.to_string().contains("\"mine.euler-order\"") && err.to_string().contains("twice"),
        "{err}"
    );
    assert_eq!(
        run_with_checks(["imreg", "verify", "--only", "mine"], twice),
        EXIT_BAD_INPUT
    );
    let builtin = Check {
        id: "ad.hvp-vs-dense",
        ..mine()
    };
    assert!(registry::with_extra(vec![builtin])
        .unwrap_err()
        .to_string()
        .contains("ad.hvp-vs-dense"));
    for id in ["", "../escape", "a/b", ".hidden"] {
        let bad = Check { id, ..mine() };
        assert_eq!(
            registry::with_extra(vec![bad]).unwrap_err().exit_code(),
            EXIT_BAD_INPUT,
            "{id:?}"
        );
    }
}

/// The `register_check` example (built by `cargo test` next to this test) lists its check after the built-in
/// ones in `verify --json`.
#[test]
fn the_register_check_example_runs_its_check_through_main_with() {
    let deps = std::env::current_exe().unwrap();
    let example = deps
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples/register_check");
    assert!(example.exists(), "build the example first: {}", example.display());
    let out = Command::new(&example)
        .args(["verify", "--json", "--only", "flow.dop853-dense", "user"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["flow.dop853-dense", "user.gd-global-order"]);
}

fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("imreg-user-check-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
