//! The check registry of `imreg reproduce` / `imreg verify`: the built-in checks of `imreg-theorems` in a
//! fixed order, then a user crate's own checks ([`with_extra`]), run in parallel with results reported in
//! registry order.
use crate::error::{CliError, Result};
use imreg_check::{run_check, Check, CheckContext, Record};
use rayon::prelude::*;

/// The built-in checks, in registry order (by topic, then as each topic lists them).
pub fn all_checks() -> Vec<Check> {
    imreg_theorems::checks()
}

/// The built-in checks followed by `extra` (a user crate's checks, in the order given). Every id must be
/// unique and a plain name (`topic.claim`: ASCII letters, digits, `.`, `-`, `_`; it names the check's figure
/// folder); otherwise a [`CliError::CheckId`] names the offending id.
pub fn with_extra(extra: Vec<Check>) -> Result<Vec<Check>> {
    let mut checks = all_checks();
    checks.extend(extra);
    let mut seen = std::collections::HashSet::new();
    for c in &checks {
        let plain =
            c.id.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | '_'));
        let reason = if c.id.is_empty() || !plain || c.id.starts_with('.') {
            Some(
                "must be a non-empty name of ASCII letters, digits, '.', '-' and '_' (not starting with '.')",
            )
        } else if !seen.insert(c.id) {
            Some("registered twice (ids must be unique)")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(CliError::CheckId {
                id: c.id.to_string(),
                reason,
            });
        }
    }
    Ok(checks)
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
