//! The check registry of `imreg reproduce` / `imreg verify`: every theory crate's `checks()`, in a fixed
//! order, run in parallel with results reported in registry order.
use crate::error::{CliError, Result};
use imreg_check::{run_check, Check, CheckContext, Record};
use rayon::prelude::*;

/// All registered checks, in registry order (by crate, then as each crate lists them).
pub fn all_checks() -> Vec<Check> {
    imreg_theorems::checks()
}

/// The checks selected by `--only`: each pattern is an exact id, or a prefix (`flow` or `flow.` selects
/// every `flow.*` check). An empty selection means all. A pattern matching nothing is a bad-input error.
pub fn select(checks: Vec<Check>, only: &[String]) -> Result<Vec<Check>> {
    if only.is_empty() {
        return Ok(checks);
    }
    let matches = |id: &str, pat: &str| {
        id == pat || id.starts_with(&format!("{}.", pat.trim_end_matches('.'))) && !pat.is_empty()
    };
    for pat in only {
        if !checks.iter().any(|c| matches(c.id, pat)) {
            let known: Vec<&str> = checks.iter().map(|c| c.id).collect();
            return Err(CliError::arg(
                "--only",
                format!(
                    "no check matches {pat:?} (known: {})",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
    }
    Ok(checks
        .into_iter()
        .filter(|c| only.iter().any(|p| matches(c.id, p)))
        .collect())
}

/// Runs `checks` in parallel (rayon) and returns the records in the order of `checks`. `done` is called as
/// each check finishes (from worker threads).
pub fn run_all(checks: &[Check], ctx: &CheckContext, done: &(dyn Fn(&Record) + Sync)) -> Vec<Record> {
    checks
        .par_iter()
        .map(|c| {
            let r = run_check(c, ctx);
            done(&r);
            r
        })
        .collect()
}
