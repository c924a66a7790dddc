//! The `reproduce` / `verify` reports: a terminal table, `report.md` and `report.json`.
use imreg_check::Record;
use std::path::Path;

/// Shortens `s` to at most `width` characters (with an ellipsis).
fn clip(s: &str, width: usize) -> String {
    let s = s.replace('\n', " ");
    if s.chars().count() <= width {
        s
    } else {
        let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The summary table printed on the terminal.
pub fn terminal_table(records: &[Record]) -> String {
    let mut out = String::new();
    let idw = records
        .iter()
        .map(|r| r.id.chars().count())
        .max()
        .unwrap_or(2)
        .clamp(2, 40);
    out.push_str(&format!(
        "{:<4} {:<idw$} {:<44} {:<30} {:<24}\n",
        "pass", "id", "claim", "expected", "measured"
    ));
    for r in records {
        out.push_str(&format!(
            "{:<4} {:<idw$} {:<44} {:<30} {:<24}\n",
            if r.passed { "ok" } else { "FAIL" },
            clip(&r.id, idw),
            clip(&r.claim, 44),
            clip(&r.expected, 30),
            clip(&r.measured, 24),
        ));
    }
    let failed = records.iter().filter(|r| !r.passed).count();
    out.push_str(&format!(
        "{} checks, {} passed, {} failed\n",
        records.len(),
        records.len() - failed,
        failed
    ));
    out
}

/// Escapes a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// `report.md`: a table of every check and a section per check with links to its figures (relative to
/// `out_dir` when they lie inside it).
pub fn markdown(records: &[Record], out_dir: &Path, quick: bool) -> String {
    let failed = records.iter().filter(|r| !r.passed).count();
    let mut s = String::from("# imreg reproduce report\n\n");
    s.push_str(&format!(
        "Mode: {}. {} checks, {} passed, {} failed.\n\n",
        if quick { "quick" } else { "full" },
        records.len(),
        records.len() - failed,
        failed
    ));
    s.push_str("| id | claim | expected | measured | passed | seconds |\n|---|---|---|---|---|---|\n");
    for r in records {
        s.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {:.2} |\n",
            r.id,
            cell(&r.claim),
            cell(&r.expected),
            cell(&r.measured),
            if r.passed { "yes" } else { "**no**" },
            r.seconds
        ));
    }
    let with_figs: Vec<&Record> = records.iter().filter(|r| !r.figures.is_empty()).collect();
    if !with_figs.is_empty() {
        s.push_str("\n## Figures\n");
        for r in with_figs {
            s.push_str(&format!("\n### `{}`\n\n{}\n\n", r.id, r.claim));
            for f in &r.figures {
                let rel = f
                    .strip_prefix(out_dir)
                    .unwrap_or(f)
                    .to_string_lossy()
                    .replace('\\', "/");
                let name = f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if rel.ends_with(".png") || rel.ends_with(".svg") {
                    s.push_str(&format!("- [{name}]({rel})\n"));
                } else {
                    s.push_str(&format!("- data: [{name}]({rel})\n"));
                }
            }
        }
    }
    s
}

/// `report.json`: `{ "quick": bool, "passed": n, "failed": n, "checks": [Record…] }`.
pub fn json(records: &[Record], quick: bool) -> serde_json::Value {
    let failed = records.iter().filter(|r| !r.passed).count();
    serde_json::json!({
        "quick": quick,
        "total": records.len(),
        "passed": records.len() - failed,
        "failed": failed,
        "checks": records,
    })
}
