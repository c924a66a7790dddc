//! `imreg sweep`: expand a config with a `[sweep]` table into a manifest of runs (JSON lines), run a shard
//! of it, collect the results. Each run is a pure function of its config (seed included) and is written
//! atomically to `OUT/<id>/` with a completion marker, so finished runs are skipped on rerun and an
//! interrupted run is redone from scratch.
use crate::config::{toml_error, ExperimentConfig};
use crate::error::{CliError, Result};
use crate::experiment::{prepare, run_to_folder, RunOptions, RunSummary, COMPLETE_MARKER};
use imreg_plot::write_atomic;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The `[sweep]` table: a grid over dotted config keys and a list of seeds.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// Seeds of every grid point (default: the config's `seed`).
    #[serde(default)]
    pub seeds: Option<Vec<u64>>,
    /// `"optimizer.lr" = [0.01, 0.1]`: the values of each swept key (cartesian product, keys in sorted order,
    /// the last key varying fastest).
    #[serde(default)]
    pub grid: BTreeMap<String, Vec<toml::Value>>,
}

/// One line of the manifest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ManifestEntry {
    /// Folder name of the run (`run-0000`, …).
    pub id: String,
    /// Position in the manifest (shards take `index % N == I`).
    pub index: usize,
    /// The swept values of this run (dotted key → value), `seed` included.
    pub params: BTreeMap<String, serde_json::Value>,
    /// The complete, resolved experiment config.
    pub config: ExperimentConfig,
}

/// Expands the sweep config at `path` into manifest entries.
pub fn expand(path: &Path) -> Result<Vec<ManifestEntry>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::input(path, "<file>", format!("cannot read config: {e}")))?;
    let mut table: toml::Table = text.parse().map_err(|e| toml_error(&e, &text, path))?;
    let spec: SweepSpec = match table.remove("sweep") {
        Some(v) => v
            .try_into()
            .map_err(|e: toml::de::Error| CliError::input(path, "sweep", e.message().trim().to_string()))?,
        None => SweepSpec::default(),
    };
    let base_seed = table.get("seed").and_then(|v| v.as_integer()).unwrap_or(0);
    let seeds = spec
        .seeds
        .clone()
        .unwrap_or_else(|| vec![base_seed.max(0) as u64]);
    if seeds.is_empty() {
        return Err(CliError::input(path, "sweep.seeds", "is empty"));
    }
    for (key, values) in &spec.grid {
        if values.is_empty() {
            return Err(CliError::input(
                path,
                format!("sweep.grid.{key}"),
                "has no values",
            ));
        }
    }
    let keys: Vec<&String> = spec.grid.keys().collect();
    let sizes: Vec<usize> = spec.grid.values().map(Vec::len).collect();
    let points: usize = sizes.iter().product();
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base_dir = std::fs::canonicalize(if base_dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        &base_dir
    })
    .unwrap_or(base_dir);
    let mut out = Vec::with_capacity(points * seeds.len());
    for point in 0..points {
        // Odometer decoding, last key fastest.
        let mut rem = point;
        let mut choice = vec![0; keys.len()];
        for j in (0..keys.len()).rev() {
            choice[j] = rem % sizes[j];
            rem /= sizes[j];
        }
        for &seed in &seeds {
            let mut t = table.clone();
            let mut params = BTreeMap::new();
            for (j, key) in keys.iter().enumerate() {
                let value = spec.grid[*key][choice[j]].clone();
                set_dotted(&mut t, key, value.clone())
                    .map_err(|reason| CliError::input(path, format!("sweep.grid.{key}"), reason))?;
                params.insert((*key).clone(), serde_json::to_value(&value).unwrap_or_default());
            }
            t.insert("seed".into(), toml::Value::Integer(seed as i64));
            params.insert("seed".into(), serde_json::Value::from(seed));
            let index = out.len();
            let mut config: ExperimentConfig =
                toml::Value::Table(t).try_into().map_err(|e: toml::de::Error| {
                    CliError::input(
                        path,
                        format!("run {index} ({})", describe(&params)),
                        e.message().trim().to_string(),
                    )
                })?;
            config.resolve_paths(&base_dir);
            config.validate(path)?;
            out.push(ManifestEntry {
                id: format!("run-{index:04}"),
                index,
                params,
                config,
            });
        }
    }
    Ok(out)
}

fn describe(params: &BTreeMap<String, serde_json::Value>) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Sets `a.b.c = value` in a TOML table; the tables on the way must exist. An array of tables is entered
/// by index: `regularizer.0.lambda` is `lambda` of the first `[[regularizer]]`.
fn set_dotted(table: &mut toml::Table, key: &str, value: toml::Value) -> std::result::Result<(), String> {
    let parts: Vec<&str> = key.split('.').collect();
    let (leaf, path) = parts.split_last().ok_or("empty key")?;
    let mut t = table;
    let mut rest = path.iter();
    while let Some(part) = rest.next() {
        let missing = || format!("the config has no table [{part}] for key {key:?}");
        let v = t.get_mut(*part).ok_or_else(missing)?;
        let v = match v {
            toml::Value::Array(items) => {
                let idx = rest.next().and_then(|s| s.parse::<usize>().ok()).ok_or_else(|| {
                    format!("[[{part}]] is an array of tables: address one by index, {part}.0.… in {key:?}")
                })?;
                let len = items.len();
                items
                    .get_mut(idx)
                    .ok_or_else(|| format!("[[{part}]] has {len} entries, no index {idx} in {key:?}"))?
            }
            v => v,
        };
        t = v.as_table_mut().ok_or_else(missing)?;
    }
    t.insert((*leaf).to_string(), value);
    Ok(())
}

/// The manifest as JSON lines.
pub fn to_jsonl(entries: &[ManifestEntry]) -> Result<String> {
    let mut s = String::new();
    for e in entries {
        s.push_str(&serde_json::to_string(e).map_err(|e| CliError::Failed(e.to_string()))?);
        s.push('\n');
    }
    Ok(s)
}

/// Reads a manifest (JSON lines; blank lines ignored).
pub fn read_manifest(path: &Path) -> Result<Vec<ManifestEntry>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::input(path, "--manifest", format!("cannot read: {e}")))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let e: ManifestEntry = serde_json::from_str(line)
            .map_err(|e| CliError::input(path, format!("line {}", i + 1), e.to_string()))?;
        out.push(e);
    }
    Ok(out)
}

/// A shard `I/N`: runs with `index % N == I`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Parses `I/N` with `0 ≤ I < N`.
    pub fn parse(s: &str) -> Result<Shard> {
        let bad = |why: &str| CliError::arg("--shard", format!("{s:?}: {why} (expected I/N with 0 ≤ I < N)"));
        let (i, n) = s.split_once('/').ok_or_else(|| bad("missing '/'"))?;
        let index: usize = i.trim().parse().map_err(|_| bad("I is not a number"))?;
        let count: usize = n.trim().parse().map_err(|_| bad("N is not a number"))?;
        if count == 0 || index >= count {
            return Err(bad("out of range"));
        }
        Ok(Shard { index, count })
    }

    pub fn contains(&self, index: usize) -> bool {
        index % self.count == self.index
    }
}

/// What `sweep run` did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShardReport {
    /// Runs executed now.
    pub ran: Vec<String>,
    /// Runs already complete (skipped).
    pub skipped: Vec<String>,
}

/// Whether `OUT/<id>` holds a finished run.
pub fn is_complete(out: &Path, id: &str) -> bool {
    out.join(id).join(COMPLETE_MARKER).is_file()
}

/// Runs this shard's unfinished entries into `out/<id>/` (in parallel over runs, each run single-threaded)
/// and copies the manifest to `out/manifest.jsonl`. Leftovers of an interrupted run of this shard (a folder
/// without marker, temporary folders) are removed first.
pub fn run_shard(
    entries: &[ManifestEntry],
    shard: Shard,
    out: &Path,
    manifest_file: &Path,
    opts: &RunOptions,
    tick: &(dyn Fn() + Sync),
) -> Result<ShardReport> {
    std::fs::create_dir_all(out).map_err(|e| CliError::io(out, e))?;
    write_atomic(&out.join("manifest.jsonl"), to_jsonl(entries)?.as_bytes())?;
    let mine: Vec<&ManifestEntry> = entries.iter().filter(|e| shard.contains(e.index)).collect();
    let mut report = ShardReport::default();
    let mut todo = Vec::new();
    for e in mine {
        if is_complete(out, &e.id) {
            report.skipped.push(e.id.clone());
        } else {
            clean_leftovers(out, &e.id)?;
            todo.push(e);
        }
    }
    // Validate every run before starting any (bad input → exit 2 with nothing half-done).
    let prepared = todo
        .iter()
        .map(|e| prepare(e.config.clone(), manifest_file).map(|p| (e, p)))
        .collect::<Result<Vec<_>>>()?;
    let results: Vec<Result<RunSummary>> = prepared
        .par_iter()
        .map(|(e, p)| {
            let r = run_to_folder(
                p,
                &out.join(&e.id),
                &RunOptions {
                    force: true,
                    ..opts.clone()
                },
                &|| {},
            );
            tick();
            r
        })
        .collect();
    for ((e, _), r) in prepared.iter().zip(results) {
        r.map_err(|err| CliError::Failed(format!("{}: {err}", e.id)))?;
        report.ran.push(e.id.clone());
    }
    Ok(report)
}

/// Removes `out/<id>` (an unfinished folder) and `out/.tmp-<id>-*` temporary folders.
fn clean_leftovers(out: &Path, id: &str) -> Result<()> {
    let dir = out.join(id);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| CliError::io(&dir, e))?;
    }
    let prefix = format!(".tmp-{id}-");
    let entries = std::fs::read_dir(out).map_err(|e| CliError::io(out, e))?;
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let p = entry.path();
            std::fs::remove_dir_all(&p).map_err(|e| CliError::io(&p, e))?;
        }
    }
    Ok(())
}

/// What `sweep collect` found.
#[derive(Clone, Debug, PartialEq)]
pub struct Collected {
    pub complete: usize,
    pub missing: Vec<String>,
    pub summary_csv: PathBuf,
}

/// Merges the finished runs of `out` (per `out/manifest.jsonl`, or `manifest`) into `out/summary.csv` and
/// `out/summary.jsonl`, one row per finished run in manifest order.
pub fn collect(out: &Path, manifest: Option<&Path>) -> Result<Collected> {
    let mpath = manifest
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out.join("manifest.jsonl"));
    if !mpath.exists() {
        return Err(CliError::input(
            &mpath,
            "--manifest",
            "no manifest (run `imreg sweep run` first or pass --manifest)",
        ));
    }
    let entries = read_manifest(&mpath)?;
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for e in &entries {
        if !is_complete(out, &e.id) {
            missing.push(e.id.clone());
            continue;
        }
        let sp = out.join(&e.id).join("summary.json");
        let text = std::fs::read_to_string(&sp).map_err(|err| CliError::io(&sp, err))?;
        let s: RunSummary =
            serde_json::from_str(&text).map_err(|err| CliError::input(&sp, "<file>", err.to_string()))?;
        rows.push((e, s));
    }
    let param_keys: Vec<String> = entries
        .first()
        .map(|e| e.params.keys().cloned().collect())
        .unwrap_or_default();
    let metric_keys: Vec<String> = rows
        .first()
        .map(|(_, s)| s.final_metrics.iter().map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    let mut csv = String::from("id");
    for k in &param_keys {
        csv.push_str(&format!(",{k}"));
    }
    csv.push_str(",steps_run,diverged_at");
    for k in &metric_keys {
        csv.push_str(&format!(",final_{k}"));
    }
    csv.push('\n');
    let mut jsonl = String::new();
    for (e, s) in &rows {
        csv.push_str(&e.id);
        for k in &param_keys {
            csv.push_str(&format!(
                ",{}",
                e.params.get(k).map(|v| v.to_string()).unwrap_or_default()
            ));
        }
        csv.push_str(&format!(
            ",{},{}",
            s.steps_run,
            s.diverged_at.map(|d| d.to_string()).unwrap_or_default()
        ));
        for k in &metric_keys {
            let v = s
                .final_metrics
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default();
            csv.push_str(&format!(",{v}"));
        }
        csv.push('\n');
        let line = serde_json::json!({ "id": e.id, "params": e.params, "summary": s });
        jsonl.push_str(&line.to_string());
        jsonl.push('\n');
    }
    let summary_csv = out.join("summary.csv");
    write_atomic(&summary_csv, csv.as_bytes())?;
    write_atomic(&out.join("summary.jsonl"), jsonl.as_bytes())?;
    Ok(Collected {
        complete: rows.len(),
        missing,
        summary_csv,
    })
}
