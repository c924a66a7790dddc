//! The raw series of a figure as long-format CSV: a header `series,x,y`, then one row per point.
//! Numbers use Rust's shortest round-trip formatting, so reading the file back gives the same `f64` bits
//! (non-finite values are written as `NaN`, `inf`, `-inf`). Series names are quoted when they contain a comma,
//! a quote or a line break. The drawing style is not stored: series read back are [`Style::Line`].
use crate::{write_atomic, PlotError, Series, Style};
use std::path::Path;

/// The CSV text of `series` (header included).
pub(crate) fn to_csv(series: &[Series]) -> String {
    let mut out = String::from("series,x,y\n");
    for s in series {
        let name = quote(&s.name);
        for (x, y) in s.x.iter().zip(&s.y) {
            out.push_str(&format!("{name},{x},{y}\n"));
        }
    }
    out
}

/// Writes `series` to `path` atomically.
pub fn write_csv(path: &Path, series: &[Series]) -> Result<(), PlotError> {
    write_atomic(path, to_csv(series).as_bytes())
}

fn quote(name: &str) -> String {
    if name.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", name.replace('"', "\"\""))
    } else {
        name.to_string()
    }
}

/// Splits one line into its name field and the rest, undoing [`quote`].
fn split_name(line: &str) -> Option<(String, &str)> {
    if let Some(rest) = line.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = rest.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if let Some((_, '"')) = chars.peek() {
                    name.push('"');
                    chars.next();
                } else {
                    return rest[i + 1..].strip_prefix(',').map(|r| (name, r));
                }
            } else {
                name.push(c);
            }
        }
        None
    } else {
        let (name, rest) = line.split_once(',')?;
        Some((name.to_string(), rest))
    }
}

/// Reads a long-format CSV written by [`write_csv`] (or `Figure::save`) back into series, in order of first
/// appearance.
pub fn read_csv(path: &Path) -> Result<Vec<Series>, PlotError> {
    let text = std::fs::read_to_string(path).map_err(|e| PlotError::io(path, e))?;
    let err = |line: usize, reason: String| PlotError::Csv {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, "series,x,y")) => {}
        other => {
            return Err(err(
                1,
                format!("expected header `series,x,y`, found {:?}", other.map(|l| l.1)),
            ))
        }
    }
    let mut out: Vec<Series> = Vec::new();
    for (i, line) in lines {
        let lineno = i + 1;
        if line.is_empty() {
            continue;
        }
        let (name, rest) = split_name(line).ok_or_else(|| err(lineno, "malformed series name".into()))?;
        let (xs, ys) = rest
            .split_once(',')
            .ok_or_else(|| err(lineno, "expected 3 fields".into()))?;
        let x: f64 = xs
            .parse()
            .map_err(|_| err(lineno, format!("x is not a number: {xs:?}")))?;
        let y: f64 = ys
            .parse()
            .map_err(|_| err(lineno, format!("y is not a number: {ys:?}")))?;
        match out.iter_mut().find(|s| s.name == name) {
            Some(s) => {
                s.x.push(x);
                s.y.push(y);
            }
            None => out.push(Series::new(name, vec![x], vec![y], Style::Line)),
        }
    }
    Ok(out)
}
