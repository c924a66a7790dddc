//! The `smith` and `jastrzebski` studies: their runs are the configs their claims need (matched epochs,
//! λ = η − ε, the Fisher penalty's α, the break-even grid), and a smoke instance of each — runs, report,
//! figures — is bitwise identical on one and two threads.
use imreg_cli::config::{OptimizerConfig, RegularizerConfig};
use imreg_cli::experiment::FolderOptions;
use imreg_cli::study::{self, registry, StudyDataset, StudyOptions, StudyRun, StudyScale};
use imreg_cli::sweep::Shard;
use std::collections::BTreeMap;
use std::path::Path;

fn runs_of(name: &str, scale: StudyScale) -> Vec<StudyRun> {
    let studies = registry();
    let s = study::find(&studies, name).unwrap();
    s.runs(&StudyOptions {
        dataset: StudyDataset::Digits,
        scale,
        seeds: vec![0, 1, 2],
    })
    .unwrap()
}

fn lr_batch(run: &StudyRun) -> (f64, usize) {
    match run.config.optimizer {
        OptimizerConfig::Sgd { lr, batch_size, .. } => (lr, batch_size),
        ref o => panic!("not SGD: {o:?}"),
    }
}

/// Smith: every run trains the same number of steps at the same batch size; the with-term arm runs at ε
/// with λ = η − ε; the grid doubles from ε.
#[test]
fn smith_runs_match_epochs_and_stand_for_the_larger_rate() {
    let runs = runs_of("smith", StudyScale::Reduced);
    assert_eq!(runs.len(), 3 * 9);
    let steps = runs[0].config.steps;
    let mut etas = Vec::new();
    for r in &runs {
        assert_eq!(r.config.steps, steps);
        let (lr, b) = lr_batch(r);
        assert_eq!(b, 32);
        let eta: f64 = r.group.trim_start_matches("η = ").parse().unwrap();
        match r.config.regularizers.as_slice() {
            [] => {
                assert_eq!(lr, eta);
                etas.push(eta);
            }
            [RegularizerConfig::SmithStochastic { lambda }] => {
                let eps = study::smith::SMALL_LR;
                assert_eq!(lr, eps);
                assert!((lr + lambda - eta).abs() < 1e-15, "{lr} + {lambda} ≠ {eta}");
                assert!(*lambda > 0.0);
            }
            other => panic!("unexpected regularizers {other:?}"),
        }
    }
    etas.sort_by(f64::total_cmp);
    etas.dedup();
    assert_eq!(etas.len(), 5);
    assert!(etas.windows(2).all(|w| w[1] == 2.0 * w[0]), "{etas:?}");
}

/// Jastrzębski: the Fisher arms share batch size and steps, the penalty arm runs at η_s with α =
/// (η_l − η_s)/4; the break-even arms cover {η_s, η_l} × {b_s, b_l} at matched epochs.
#[test]
fn jastrzebski_runs_cover_the_claims() {
    use study::jastrzebski::{BATCHES, FISHER_ALPHA, GROUP_BREAK_EVEN, GROUP_FISHER, LARGE_LR, SMALL_LR};
    let runs = runs_of("jastrzebski", StudyScale::Reduced);
    assert_eq!(runs.len(), 3 * 7);
    let fisher: Vec<&StudyRun> = runs.iter().filter(|r| r.group == GROUP_FISHER).collect();
    assert_eq!(fisher.len(), 9);
    for r in &fisher {
        assert_eq!(r.config.steps, fisher[0].config.steps);
        let (lr, b) = lr_batch(r);
        assert_eq!(b, BATCHES[0]);
        match r.config.regularizers.as_slice() {
            [] => assert!(lr == SMALL_LR || lr == LARGE_LR),
            [RegularizerConfig::FisherPenalty { alpha, squared }] => {
                assert_eq!((lr, *alpha, *squared), (SMALL_LR, FISHER_ALPHA, true));
                assert_eq!(FISHER_ALPHA, (LARGE_LR - SMALL_LR) / 4.0);
            }
            other => panic!("unexpected regularizers {other:?}"),
        }
        assert!(r.config.track.trace_f.period(1).is_some());
    }
    let mut grid = BTreeMap::new();
    for r in runs.iter().filter(|r| r.group == GROUP_BREAK_EVEN) {
        let (lr, b) = lr_batch(r);
        // Matched epochs: steps × batch is the same number of examples for every arm.
        *grid.entry((lr.to_bits(), b)).or_insert(0) += 1;
        let examples = r.config.steps * b;
        let reference = runs
            .iter()
            .find(|q| q.group == GROUP_BREAK_EVEN)
            .map(|q| q.config.steps * lr_batch(q).1)
            .unwrap();
        assert_eq!(examples, reference);
        for e in [
            r.config.track.sharpness,
            r.config.track.lambda_k1,
            r.config.track.trace_k,
        ] {
            assert!(e.period(1).is_some());
        }
    }
    assert_eq!(grid.len(), 4);
    assert!(grid.values().all(|&n| n == 3));
}

/// Every file of a folder tree, by relative path (bytes).
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                // Lock and timing files are about the process, not the results.
                if !rel.ends_with(".lock") && !rel.ends_with(".png") {
                    out.insert(rel, std::fs::read(&p).unwrap());
                }
            }
        }
    }
    out
}

/// A smoke instance of each study on the digits, run and reported on one and on two threads, writes the
/// same bytes: every run's metrics and summary, the report (Markdown, JSON) and the figures' CSV and SVG.
#[test]
fn smoke_instances_are_bitwise_identical_on_one_and_two_threads() {
    let studies = registry();
    let dir = tempfile::tempdir().unwrap();
    for name in ["smith", "jastrzebski"] {
        let s = study::find(&studies, name).unwrap();
        let opts = StudyOptions::new(StudyDataset::Digits, StudyScale::Smoke);
        let mut trees = Vec::new();
        for threads in [1, 2] {
            let out = dir.path().join(format!("{name}-t{threads}"));
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                study::run(
                    s,
                    &opts,
                    &out,
                    Shard::ALL,
                    &FolderOptions {
                        force: true,
                        no_figures: true,
                    },
                    &|| {},
                )
                .unwrap();
                study::report(s, &out, &[StudyDataset::Digits]).unwrap()
            });
            trees.push(tree(&out));
        }
        assert!(trees[0].keys().any(|k| k.ends_with("metrics.csv")));
        assert!(trees[0].contains_key("digits/report.json"));
        assert!(trees[0].keys().any(|k| k.ends_with(".svg")));
        assert_eq!(trees[0], trees[1], "{name}: one vs two threads");
    }
}
