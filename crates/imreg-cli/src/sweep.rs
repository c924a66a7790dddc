//! `imreg sweep`: expand a config with a `[sweep]` table into a manifest of runs (JSON lines), run a shard
//! of it, collect the results. Each run is a pure function of its config (seed included) and is written
//! atomically to `OUT/<id>/` with a completion marker, so finished runs are skipped on rerun and an
//! interrupted run is redone from scratch.
use crate::config::{toml_error, ExperimentConfig};
use crate::error::{CliError, Result};
use crate::experiment::{prepare, run_to_folder, FolderOptions, Prepared, RunSummary, COMPLETE_MARKER};
use crate::{limits, lock, output};
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

/// The `[sweep]` table of a sweep config (the rest is the base experiment config).
#[derive(Deserialize)]
struct SweepTable {
    #[serde(default)]
    sweep: Option<SweepSpec>,
}

/// Expands the sweep config at `path` into manifest entries. Every run's config goes through the same
/// parsing and validation as `imreg run` ([`ExperimentConfig::from_toml_str`], `validate`), so a value
/// `run` rejects (a negative seed, say) is rejected here with the same field.
pub fn expand(path: &Path) -> Result<Vec<ManifestEntry>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::input(path, "<file>", format!("cannot read config: {e}")))?;
    let mut table: toml::Table = text.parse().map_err(|e| toml_error(&e, &text, path))?;
    let spec = toml::from_str::<SweepTable>(&text)
        .map_err(|e| toml_error(&e, &text, path))?
        .sweep
        .unwrap_or_default();
    table.remove("sweep");
    if spec.seeds.as_ref().is_some_and(Vec::is_empty) {
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
    let n_seeds = spec.seeds.as_ref().map_or(1, Vec::len);
    let runs = sizes
        .iter()
        .chain([&n_seeds])
        .try_fold(1usize, |acc, &k| acc.checked_mul(k))
        .and_then(|r| u64::try_from(r).ok())
        .unwrap_or(u64::MAX);
    limits::at_most(
        path,
        "sweep.grid",
        "runs (grid points × seeds)",
        runs,
        limits::MAX_SWEEP_RUNS,
    )?;
    let points: usize = sizes.iter().product();
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base_dir = std::fs::canonicalize(if base_dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        &base_dir
    })
    .unwrap_or(base_dir);
    // `None`: the base config's own seed (validated with the rest of the config).
    let seeds: Vec<Option<u64>> = match &spec.seeds {
        Some(s) => s.iter().copied().map(Some).collect(),
        None => vec![None],
    };
    let mut out = Vec::new();
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
            if let Some(seed) = seed {
                let seed = i64::try_from(seed).map_err(|_| {
                    CliError::input(path, "sweep.seeds", format!("seed {seed} exceeds 2^63 − 1"))
                })?;
                t.insert("seed".into(), toml::Value::Integer(seed));
            }
            let index = out.len();
            let in_run = |e: CliError| match e {
                CliError::Input { field, reason, .. } => {
                    // Line numbers would refer to the expanded run, not the file: name the run instead.
                    let reason = reason.rfind(" (line ").map_or(reason.as_str(), |i| &reason[..i]);
                    CliError::input(
                        path,
                        field,
                        format!("{reason} (run {index}: {})", describe(&params)),
                    )
                }
                other => other,
            };
            let expanded =
                toml::to_string(&t).map_err(|e| CliError::Failed(format!("expanding run {index}: {e}")))?;
            let mut config = ExperimentConfig::from_toml_str(&expanded, path).map_err(in_run)?;
            config.resolve_paths(&base_dir);
            config.validate(path).map_err(in_run)?;
            params.insert("seed".into(), serde_json::Value::from(config.seed));
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
    limits::at_most(
        path,
        "--manifest",
        "runs",
        u64::try_from(out.len()).unwrap_or(u64::MAX),
        limits::MAX_SWEEP_RUNS,
    )?;
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
    /// Runs locked by another live process (left alone, with their temporary folders).
    pub busy: Vec<(String, lock::Holder)>,
}

/// Whether `OUT/<id>` holds a finished run.
pub fn is_complete(out: &Path, id: &str) -> bool {
    out.join(id).join(COMPLETE_MARKER).is_file()
}

/// The file binding an output folder to its manifest.
pub const MANIFEST_HASH: &str = "manifest.hash";

/// FNV-1a (64 bit) of the manifest's canonical JSON lines: the expanded configs, ids and parameters. It
/// detects a changed grid; it is not a cryptographic hash.
pub fn manifest_hash(entries: &[ManifestEntry]) -> Result<String> {
    let hash = to_jsonl(entries)?.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    Ok(format!("fnv1a64:{hash:016x}"))
}

/// The manifest hash stored in `out` (from [`MANIFEST_HASH`], or computed from a stored `manifest.jsonl`
/// of a folder written before hashes were stored), `None` for a folder without a manifest.
fn stored_hash(out: &Path) -> Result<Option<String>> {
    let hp = out.join(MANIFEST_HASH);
    if hp.is_file() {
        let text = std::fs::read_to_string(&hp).map_err(|e| CliError::io_while("reading", &hp, e))?;
        return Ok(Some(text.trim().to_string()));
    }
    let mp = out.join("manifest.jsonl");
    if mp.is_file() {
        return Ok(Some(manifest_hash(&read_manifest(&mp)?)?));
    }
    Ok(None)
}

/// Refuses `entries` for `out` when `out` already holds the runs of a different manifest (a changed grid
/// would otherwise be skipped as "done" and mislabelled by `collect`).
fn check_binding(out: &Path, entries: &[ManifestEntry], manifest_file: &Path) -> Result<String> {
    let hash = manifest_hash(entries)?;
    match stored_hash(out)? {
        Some(stored) if stored != hash => Err(CliError::input(
            manifest_file,
            "--manifest",
            format!(
                "{} holds the runs of a different manifest ({stored}; this one is {hash}): the grid or a \
                 config changed, so its runs would be mislabelled; use a new --out folder",
                out.display()
            ),
        )),
        _ => Ok(hash),
    }
}

/// Binds `out` to the manifest `entries` on first use, or checks that it is bound to them. The hash file
/// is published with a hard link, which fails if it exists: of two processes binding a fresh folder to
/// different manifests at once, exactly one wins and the other is refused.
fn bind(out: &Path, entries: &[ManifestEntry], manifest_file: &Path) -> Result<()> {
    let hash = check_binding(out, entries, manifest_file)?;
    let hp = out.join(MANIFEST_HASH);
    if !hp.is_file() {
        let side = out.join(format!(".tmp-hash-{}", std::process::id()));
        write_atomic(&side, format!("{hash}\n").as_bytes())?;
        let linked = std::fs::hard_link(&side, &hp);
        let _ = std::fs::remove_file(&side);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                check_binding(out, entries, manifest_file)?;
            }
            Err(e) => return Err(CliError::io(&hp, e)),
        }
    }
    write_atomic(&out.join("manifest.jsonl"), to_jsonl(entries)?.as_bytes())?;
    Ok(())
}

/// Makes `out` the output folder of the manifest `entries` (read from `manifest_file`): creates and marks
/// it (`output::claim`) and binds it to the manifest, or checks that it is bound to this one.
pub fn prepare_out(out: &Path, entries: &[ManifestEntry], manifest_file: &Path) -> Result<()> {
    output::claim(out, "sweep")?;
    bind(out, entries, manifest_file)
}

/// The error marker of run `id`: written (with the error) when the run fails, removed when it completes.
pub fn error_marker(out: &Path, id: &str) -> PathBuf {
    out.join(format!(".error-{id}"))
}

/// Runs this shard's unfinished entries into `out/<id>/` (in parallel over runs, each run single-threaded).
/// The folder is bound to the manifest on first use (`manifest.jsonl` and its hash in [`MANIFEST_HASH`]); a
/// different manifest is refused. Each run is locked (`lock`) from the moment this process starts it until
/// it ends; a run locked by another live process is left alone (reported in [`ShardReport::busy`]) and one
/// another process finished meanwhile is skipped, so processes started on the same runs share them.
/// Leftovers of an interrupted run (imreg's temporary folders of that run) are removed once its lock is held.
pub fn run_shard(
    entries: &[ManifestEntry],
    shard: Shard,
    out: &Path,
    manifest_file: &Path,
    opts: &FolderOptions,
    tick: &(dyn Fn() + Sync),
) -> Result<ShardReport> {
    prepare_out(out, entries, manifest_file)?;
    let mut report = ShardReport::default();
    let mut todo = Vec::new();
    for e in entries.iter().filter(|e| shard.contains(e.index)) {
        if is_complete(out, &e.id) {
            // A process killed after finishing this run but before its other runs left the lock behind:
            // take the stale lock over and drop it (a live holder's lock is left alone).
            if lock::inspect(out, &e.id).is_some_and(|l| l.stale) {
                drop(lock::acquire(out, &e.id)?);
            }
            report.skipped.push(e.id.clone());
        } else {
            todo.push(e);
        }
    }
    // Validate every run before starting any (bad input → exit 2 with nothing half-done).
    let prepared = todo
        .iter()
        .map(|e| prepare(e.config.clone(), manifest_file).map(|p| (e, p)))
        .collect::<Result<Vec<_>>>()?;
    let held = lock::Held::default();
    let outcomes: Vec<Result<Outcome>> = lock::with_heartbeat(&held, || {
        prepared
            .par_iter()
            .map(|(e, p)| {
                let o = claim_and_run(e, p, out, opts, &held);
                tick();
                o
            })
            .collect()
    });
    let mut failures = Vec::new();
    for ((e, _), o) in prepared.iter().zip(outcomes) {
        match o? {
            Outcome::Ran => report.ran.push(e.id.clone()),
            Outcome::FinishedElsewhere => report.skipped.push(e.id.clone()),
            Outcome::Busy(holder) => report.busy.push((e.id.clone(), holder)),
            Outcome::Failed(message) => failures.push(message),
        }
    }
    match failures.len() {
        0 => Ok(report),
        1 => Err(CliError::Failed(failures.remove(0))),
        k => Err(CliError::Failed(format!(
            "{k} runs failed; the first: {}",
            failures.remove(0)
        ))),
    }
}

/// What became of one unfinished run of [`run_shard`].
enum Outcome {
    Ran,
    /// Another process finished it after this one found it unfinished.
    FinishedElsewhere,
    Busy(lock::Holder),
    /// It failed; its error marker is written.
    Failed(String),
}

/// Locks run `e`, runs it unless another process finished it meanwhile, writes or clears its error marker
/// (still under the lock), and releases the lock.
fn claim_and_run(
    e: &ManifestEntry,
    prepared: &Prepared,
    out: &Path,
    opts: &FolderOptions,
    held: &lock::Held,
) -> Result<Outcome> {
    let _lock = match held.acquire(out, &e.id)? {
        Ok(l) => l,
        Err(holder) => return Ok(Outcome::Busy(holder)),
    };
    if is_complete(out, &e.id) {
        return Ok(Outcome::FinishedElsewhere);
    }
    output::remove_stale_temps(out, &e.id)?;
    let run = run_to_folder(
        prepared,
        &out.join(&e.id),
        &FolderOptions {
            force: true,
            ..opts.clone()
        },
        &|| {},
    );
    let marker = error_marker(out, &e.id);
    match run {
        Ok(_) => {
            if marker.is_file() {
                std::fs::remove_file(&marker).map_err(|err| CliError::io_while("removing", &marker, err))?;
            }
            Ok(Outcome::Ran)
        }
        Err(err) => {
            write_atomic(&marker, format!("{err}\n").as_bytes())?;
            Ok(Outcome::Failed(format!("{}: {err}", e.id)))
        }
    }
}

/// What `sweep collect` found.
#[derive(Clone, Debug, PartialEq)]
pub struct Collected {
    pub complete: usize,
    /// The runs without a completion marker (empty unless collected with `allow_incomplete`).
    pub missing: Vec<String>,
    pub summary_csv: PathBuf,
}

/// The manifest of the sweep folder `out`: `manifest` if given (which must be the one `out` is bound to),
/// else `out/manifest.jsonl`. `out` must be a sweep folder imreg wrote.
fn sweep_manifest(out: &Path, manifest: Option<&Path>) -> Result<Vec<ManifestEntry>> {
    let mpath = manifest
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out.join("manifest.jsonl"));
    if !mpath.exists() {
        return Err(CliError::input(
            &mpath,
            "--manifest",
            "no manifest (run `imreg sweep run` or `imreg sweep submit` first, or pass --manifest)",
        ));
    }
    if !output::is_owned(out) {
        return Err(CliError::input(
            out,
            "--out",
            format!(
                "is not a sweep folder imreg wrote (no {} marker)",
                output::OWNER_MARKER
            ),
        ));
    }
    let entries = read_manifest(&mpath)?;
    if manifest.is_some() {
        check_binding(out, &entries, &mpath)?;
    }
    Ok(entries)
}

/// A finished run of a sweep: its manifest entry and its `summary.json`.
pub type CompletedRun = (ManifestEntry, RunSummary);

/// The finished runs of the sweep folder `out` (per `out/manifest.jsonl`, or `manifest`) in manifest order,
/// each with its `summary.json`, after checking that its folder was written by its manifest entry's config.
/// An incomplete sweep is refused unless `allow_incomplete`; the unfinished runs are returned second.
pub fn finished_runs(
    out: &Path,
    manifest: Option<&Path>,
    allow_incomplete: bool,
) -> Result<(Vec<CompletedRun>, Vec<String>)> {
    let entries = sweep_manifest(out, manifest)?;
    let complete: Vec<bool> = entries.iter().map(|e| is_complete(out, &e.id)).collect();
    let missing: Vec<String> = entries
        .iter()
        .zip(&complete)
        .filter(|(_, &done)| !done)
        .map(|(e, _)| e.id.clone())
        .collect();
    if !missing.is_empty() && !allow_incomplete {
        return Err(CliError::Failed(format!(
            "{} of {} runs are not complete ({}): nothing collected; see `imreg sweep status --out {}`, \
             rerun or resubmit the sweep (finished runs are skipped), or pass --allow-incomplete",
            missing.len(),
            entries.len(),
            list_ids(&missing),
            out.display()
        )));
    }
    let mut rows = Vec::new();
    for (e, _) in entries.into_iter().zip(&complete).filter(|(_, &done)| done) {
        stored_config(out, &e)?;
        let s = read_summary(&out.join(&e.id).join("summary.json"))?;
        rows.push((e, s));
    }
    Ok((rows, missing))
}

/// Reads a run's `summary.json`. JSON has no NaN, so a final metric that is NaN (not recorded at the last
/// row, or a diverged run) was written as `null`; it is read back as NaN.
fn read_summary(sp: &Path) -> Result<RunSummary> {
    let bad = |err: serde_json::Error| CliError::input(sp, "<file>", err.to_string());
    let text = std::fs::read_to_string(sp).map_err(|err| CliError::io_while("reading", sp, err))?;
    let mut value: serde_json::Value = serde_json::from_str(&text).map_err(bad)?;
    let mut nan = Vec::new();
    if let Some(metrics) = value.get_mut("final_metrics").and_then(|m| m.as_array_mut()) {
        for (i, pair) in metrics.iter_mut().enumerate() {
            if let Some(v) = pair.get_mut(1).filter(|v| v.is_null()) {
                *v = serde_json::Value::from(0.0);
                nan.push(i);
            }
        }
    }
    let mut summary: RunSummary = serde_json::from_value(value).map_err(bad)?;
    for i in nan {
        summary.final_metrics[i].1 = f64::NAN;
    }
    Ok(summary)
}

/// Merges the finished runs of `out` (per `out/manifest.jsonl`, or `manifest`) into `out/summary.csv` and
/// `out/summary.jsonl`, one row per finished run in manifest order. An incomplete sweep is refused
/// (nothing is written) unless `allow_incomplete`; then the unfinished runs are listed in
/// [`Collected::missing`].
pub fn collect(out: &Path, manifest: Option<&Path>, allow_incomplete: bool) -> Result<Collected> {
    let (finished, missing) = finished_runs(out, manifest, allow_incomplete)?;
    let mut rows = Vec::new();
    for (e, s) in finished {
        rows.push((run_params(out, &e)?, s));
    }
    let entries = sweep_manifest(out, manifest)?;
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
    for ((id, params), s) in &rows {
        csv.push_str(id);
        for k in &param_keys {
            csv.push_str(&format!(
                ",{}",
                params.get(k).map(|v| v.to_string()).unwrap_or_default()
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
        let line = serde_json::json!({ "id": id, "params": params, "summary": s });
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

/// Up to 20 run ids, comma separated, then how many more.
pub fn list_ids<S: AsRef<str>>(ids: &[S]) -> String {
    const SHOWN: usize = 20;
    let mut s = ids
        .iter()
        .take(SHOWN)
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > SHOWN {
        s.push_str(&format!(" and {} more", ids.len() - SHOWN));
    }
    s
}

/// The state of one run of a sweep folder, as `sweep status` reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum RunState {
    /// Complete: its completion marker exists.
    Done,
    /// A live process holds its lock.
    Running(lock::LockState),
    /// Not complete, and either its process recorded an error ([`error_marker`]) or its lock was left by a
    /// process that is gone (killed, cancelled, preempted). Rerunning the shard redoes it.
    Failed { reason: String },
    /// Not complete and never begun (no folder, no temporary folder): not started yet, or queued by a
    /// process that is gone.
    Missing,
}

impl RunState {
    /// `done`, `running`, `failed` or `missing`.
    pub fn label(&self) -> &'static str {
        match self {
            RunState::Done => "done",
            RunState::Running(_) => "running",
            RunState::Failed { .. } => "failed",
            RunState::Missing => "missing",
        }
    }
}

/// The state of every run of a sweep folder, in manifest order.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepStatus {
    pub runs: Vec<(String, RunState)>,
}

impl SweepStatus {
    /// How many runs have the [`RunState::label`] `label`.
    pub fn count(&self, label: &str) -> usize {
        self.runs.iter().filter(|(_, s)| s.label() == label).count()
    }

    /// Every run is done.
    pub fn is_complete(&self) -> bool {
        self.runs.iter().all(|(_, s)| *s == RunState::Done)
    }
}

impl std::fmt::Display for SweepStatus {
    /// The counts, then one line per run that is not done.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} runs: {} done, {} running, {} failed, {} missing",
            self.runs.len(),
            self.count("done"),
            self.count("running"),
            self.count("failed"),
            self.count("missing")
        )?;
        for (id, state) in &self.runs {
            match state {
                RunState::Done => {}
                RunState::Running(l) => {
                    let since = l
                        .running_for
                        .map(|d| format!(" for {}", span(d)))
                        .unwrap_or_default();
                    let beat = l
                        .heartbeat_age
                        .map(|a| format!(", heartbeat {} s ago", a.as_secs()))
                        .unwrap_or_default();
                    writeln!(
                        f,
                        "running  {id}  pid {} on {}{since}{beat}",
                        l.holder.pid, l.holder.host
                    )?;
                }
                RunState::Failed { reason } => writeln!(f, "failed   {id}  {reason}")?,
                RunState::Missing => writeln!(f, "missing  {id}")?,
            }
        }
        Ok(())
    }
}

/// A duration in whole seconds, minutes or hours: `42 s`, `17 min 05 s`, `2 h 03 min`.
fn span(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
    }
}

/// Whether run `id` of `out` was begun: its folder or one of its temporary folders exists.
fn started(out: &Path, id: &str) -> bool {
    let prefix = format!(".tmp-{id}-");
    out.join(id).exists()
        || std::fs::read_dir(out).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        })
}

/// Reads the state of every run of the sweep folder `out` (per `out/manifest.jsonl`, or `manifest`) from
/// its completion markers, run locks and error markers; it changes nothing and needs no scheduler.
pub fn status(out: &Path, manifest: Option<&Path>) -> Result<SweepStatus> {
    let entries = sweep_manifest(out, manifest)?;
    let runs = entries
        .into_iter()
        .map(|e| {
            let state = if is_complete(out, &e.id) {
                RunState::Done
            } else {
                let held = lock::inspect(out, &e.id);
                let error = std::fs::read_to_string(error_marker(out, &e.id)).ok();
                match (held, error) {
                    (Some(l), _) if !l.stale => RunState::Running(l),
                    (_, Some(error)) => RunState::Failed {
                        reason: format!("error: {}", error.trim()),
                    },
                    (Some(l), None) if started(out, &e.id) => RunState::Failed {
                        reason: format!(
                            "interrupted: its lock was left by pid {} on {}, which is gone",
                            l.holder.pid, l.holder.host
                        ),
                    },
                    // Locked by a process that is gone before it began this run, or never attempted.
                    (_, None) => RunState::Missing,
                }
            };
            (e.id, state)
        })
        .collect();
    Ok(SweepStatus { runs })
}

/// The text of run `e`'s own `config.toml`, which must be the manifest entry's config (a folder written by
/// another grid is refused).
fn stored_config(out: &Path, e: &ManifestEntry) -> Result<String> {
    let cp = out.join(&e.id).join("config.toml");
    let text = std::fs::read_to_string(&cp).map_err(|err| CliError::io_while("reading", &cp, err))?;
    let stored = ExperimentConfig::from_toml_str(&text, &cp)?;
    if stored != e.config {
        return Err(CliError::input(
            &cp,
            "<file>",
            format!(
                "run {} was written by a different config than the manifest's (a changed grid?); \
                 collect it with the manifest that wrote it",
                e.id
            ),
        ));
    }
    Ok(text)
}

/// The swept values of run `e` as its folder records them: each swept key read from the run's own
/// `config.toml` ([`stored_config`]).
fn run_params(out: &Path, e: &ManifestEntry) -> Result<(String, BTreeMap<String, serde_json::Value>)> {
    let cp = out.join(&e.id).join("config.toml");
    let text = stored_config(out, e)?;
    let table: toml::Table = text.parse().map_err(|err| toml_error(&err, &text, &cp))?;
    let mut params = BTreeMap::new();
    for key in e.params.keys() {
        let value = get_dotted(&table, key)
            .ok_or_else(|| CliError::input(&cp, key.clone(), "swept key missing from the run's config"))?;
        params.insert(key.clone(), serde_json::to_value(value).unwrap_or_default());
    }
    Ok((e.id.clone(), params))
}

/// The value at a dotted key (`optimizer.lr`, `regularizer.0.lambda`) of a TOML table.
fn get_dotted<'t>(table: &'t toml::Table, key: &str) -> Option<&'t toml::Value> {
    let mut parts = key.split('.');
    let mut v = table.get(parts.next()?)?;
    for part in parts {
        v = match v {
            toml::Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            toml::Value::Table(t) => t.get(part)?,
            _ => return None,
        };
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::span;
    use std::time::Duration;

    #[test]
    fn spans_are_seconds_then_minutes_then_hours() {
        let shown = |s| span(Duration::from_secs(s));
        assert_eq!(shown(0), "0 s");
        assert_eq!(shown(59), "59 s");
        assert_eq!(shown(60), "1 min 00 s");
        assert_eq!(shown(3599), "59 min 59 s");
        assert_eq!(shown(3600), "1 h 00 min");
        assert_eq!(shown(90_061), "25 h 01 min");
    }
}
