//! Sweeps: sharding is exact (union of shards = unsharded run, byte for byte) and an interrupted sweep
//! redoes only its unfinished runs.
mod common;
use common::*;
use imreg_cli::experiment::FolderOptions;
use imreg_cli::sweep::{expand, is_complete, run_shard, Shard};
use std::path::Path;

fn sweep_config() -> String {
    format!(
        "{}\n[sweep]\nseeds = [1, 2]\n\n[sweep.grid]\n\"optimizer.lr\" = [0.02, 0.05]\n\"optimizer.batch_size\" = [4, 8]\n",
        SMALL.replace("steps = 40", "steps = 20")
    )
}

/// The sweep of [`sweep_config`] expanded, and its manifest written into `dir`.
fn sweep_manifest(dir: &Path) -> (Vec<imreg_cli::sweep::ManifestEntry>, std::path::PathBuf) {
    let cfg = write(dir, "sweep.toml", &sweep_config());
    let entries = expand(&cfg).unwrap();
    let manifest = write(
        dir,
        "manifest.jsonl",
        &imreg_cli::sweep::to_jsonl(&entries).unwrap(),
    );
    (entries, manifest)
}

fn without_figures() -> FolderOptions {
    FolderOptions {
        no_figures: true,
        ..Default::default()
    }
}

#[test]
fn shards_union_equals_unsharded_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (entries, manifest) = sweep_manifest(dir.path());
    assert_eq!(entries.len(), 8);
    // Keys in sorted order (batch_size, lr), the last key fastest, seeds fastest of all.
    assert_eq!(entries[3].params["optimizer.batch_size"], 4);
    assert_eq!(entries[3].params["optimizer.lr"], 0.05);
    assert_eq!(entries[3].params["seed"], 2);
    assert_eq!(entries[4].params["optimizer.batch_size"], 8);
    let m = manifest.to_str().unwrap();
    let full = dir.path().join("full");
    let sharded = dir.path().join("sharded");
    let run = |shard: &str, out: &Path| {
        cli(&[
            "sweep",
            "run",
            "--manifest",
            m,
            "--shard",
            shard,
            "--out",
            out.to_str().unwrap(),
        ])
    };
    assert_eq!(
        cli(&["sweep", "run", "--manifest", m, "--out", full.to_str().unwrap()]),
        0
    );
    for i in 0..3 {
        assert_eq!(run(&format!("{i}/3"), &sharded), 0);
    }
    let a = tree(&full);
    assert!(a.len() > 8 * 10);
    assert_eq!(a, tree(&sharded));
    // Thread count does not change a byte either.
    for threads in [1, 2] {
        let out = dir.path().join(format!("t{threads}"));
        imreg_objective::threads::on_threads(threads, || {
            run_shard(
                &entries,
                Shard::ALL,
                &out,
                &manifest,
                &FolderOptions::default(),
                &|| {},
            )
        })
        .unwrap()
        .unwrap();
        assert_eq!(tree(&out), a, "threads = {threads}");
    }
    assert_eq!(cli(&["sweep", "collect", "--out", full.to_str().unwrap()]), 0);
    let summary = std::fs::read_to_string(full.join("summary.csv")).unwrap();
    assert_eq!(summary.lines().count(), 9);
    assert!(
        summary.starts_with("id,optimizer.batch_size,optimizer.lr,seed,steps_run"),
        "{summary}"
    );
    assert_eq!(run("3/3", &full), 2);
}

#[test]
fn interrupted_sweep_redoes_only_unfinished_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (entries, manifest) = sweep_manifest(dir.path());
    let (out, opts) = (dir.path().join("out"), without_figures());
    let first = run_shard(&entries, Shard::ALL, &out, &manifest, &opts, &|| {}).unwrap();
    assert_eq!(first.ran.len(), 8);
    let reference = tree(&out);
    // Simulate a kill: run-0002 lost its marker (killed while finishing), run-0005 never got renamed into
    // place (only its temporary folder exists), and a half-written file sits in run-0002.
    std::fs::remove_file(out.join("run-0002").join("_COMPLETE")).unwrap();
    std::fs::write(out.join("run-0002").join("metrics.csv"), "step,lo").unwrap();
    std::fs::rename(out.join("run-0005"), out.join(".tmp-run-0005-abc123")).unwrap();
    assert!(!is_complete(&out, "run-0002") && !is_complete(&out, "run-0005"));
    assert_eq!(
        cli(&["sweep", "collect", "--out", out.to_str().unwrap()]),
        1,
        "incomplete sweep must not collect as complete"
    );
    let second = run_shard(&entries, Shard::ALL, &out, &manifest, &opts, &|| {}).unwrap();
    assert_eq!(second.ran, ["run-0002", "run-0005"]);
    assert_eq!(second.skipped.len(), 6);
    // Nothing lost, nothing left over: the tree is again exactly the uninterrupted one (minus the summaries).
    let after: Vec<_> = tree(&out)
        .into_iter()
        .filter(|(p, _)| !p.starts_with("summary"))
        .collect();
    assert_eq!(after, reference);
    let third = run_shard(&entries, Shard::ALL, &out, &manifest, &opts, &|| {}).unwrap();
    assert!(third.ran.is_empty());
}

#[test]
fn a_process_started_on_the_same_runs_takes_those_not_yet_begun() {
    let dir = tempfile::tempdir().unwrap();
    let (entries, manifest) = sweep_manifest(dir.path());
    let (out, opts) = (dir.path().join("out"), without_figures());
    // One worker thread, so the first process works on one run at a time; when its first run ends, a
    // second process starts on the same folder and the same (whole) manifest.
    let second = std::sync::Mutex::new(None);
    let first = imreg_objective::threads::on_threads(1, || {
        run_shard(&entries, Shard::ALL, &out, &manifest, &opts, &|| {
            let mut s = second.lock().unwrap();
            if s.is_none() {
                *s = Some(run_shard(&entries, Shard::ALL, &out, &manifest, &opts, &|| {}).unwrap());
            }
        })
    })
    .unwrap()
    .unwrap();
    let second = second.into_inner().unwrap().unwrap();
    // The second took every run the first had not begun; the first then found them finished.
    assert_eq!(first.ran.len(), 1, "{first:?}");
    assert_eq!(second.ran.len(), 7, "{second:?}");
    assert!(!second.ran.contains(&first.ran[0]));
    assert_eq!(first.skipped.len(), 7);
    assert!(first.busy.is_empty() && second.busy.is_empty());
    for e in &entries {
        assert!(is_complete(&out, &e.id), "{}", e.id);
        assert!(!imreg_cli::lock::lock_path(&out, &e.id).exists());
    }
}
