//! The shipped MNIST and Fashion-MNIST datasets through the CLI: configs name them (`kind = "mnist"`,
//! `"fashion_mnist"`), the example config runs on a tiny subset, the part / per-class / first-n options
//! select what the library loads, and bad names or sizes are input errors naming the field.
mod common;
use common::*;
use imreg_cli::config::{DataConfig, ExperimentConfig, PartConfig, ShippedConfig};
use imreg_cli::data::build;
use imreg_cli::CliError;
use imreg_objective::data::{Part, ShippedDataset};
use std::path::{Path, PathBuf};

fn example() -> (PathBuf, String) {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/configs/cnn_relu_mnist.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    (p, text)
}

/// `text` with the first line starting `key =` (for `kind`, the `[data]` one) replaced by `key = value`.
fn set(text: &str, key: &str, value: &str) -> String {
    let prefix = format!("{key} ");
    let i = text
        .lines()
        .position(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {key} in the config"));
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[i] = format!("{key} = {value}");
    lines.join("\n")
}

fn input_error(r: imreg_cli::Result<impl std::fmt::Debug>) -> (String, String) {
    match r {
        Err(CliError::Input { field, reason, .. }) => (field, reason),
        other => panic!("expected an input error, got {other:?}"),
    }
}

/// The example config, on 2 images of each class (20, split 16 / 4) and 6 steps of batch 4, runs through
/// `imreg run` on both datasets and records train and test accuracy.
#[test]
fn the_mnist_example_runs_on_a_tiny_subset() {
    let (_, text) = example();
    let dir = tempfile::tempdir().unwrap();
    for kind in ["\"mnist\"", "\"fashion_mnist\""] {
        let tiny = [
            ("kind", kind),
            ("per_class", "2"),
            ("n_train", "16"),
            ("steps", "6"),
            ("batch_size", "4"),
            ("every", "3"),
            ("accuracy", "3"),
        ]
        .iter()
        .fold(text.clone(), |t, (k, v)| set(&t, k, v));
        let cfg = write(dir.path(), "tiny.toml", &tiny);
        let out = dir.path().join(kind.trim_matches('"'));
        assert_eq!(run_cli(&cfg, &out, &["--no-figures"]), 0, "{kind}");
        let (header, rows) = read_csv(&out.join("metrics.csv"));
        assert_eq!(rows.last().unwrap()[0], 6.0);
        for metric in ["loss", "accuracy", "test_accuracy"] {
            let j = header.iter().position(|h| h == metric).unwrap();
            assert!(rows.last().unwrap()[j].is_finite(), "{kind} {metric}");
        }
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
        assert_eq!(summary["n"], 16, "{summary}");
    }
}

/// The example parses to the dataset it describes: the first 150 of each class of the shipped MNIST
/// training part.
#[test]
fn the_example_config_selects_what_it_says() {
    let (p, _) = example();
    let cfg = ExperimentConfig::load(&p).unwrap();
    let shipped = ShippedConfig {
        part: PartConfig::Train,
        per_class: Some(150),
        n: None,
    };
    assert_eq!(cfg.data, Some(DataConfig::Mnist(shipped.clone())));
    let ds = build(cfg.data.as_ref().unwrap(), 0, &p).unwrap();
    let lib = ShippedDataset::Mnist
        .load(Part::Train)
        .unwrap()
        .first_per_class(150)
        .unwrap();
    assert_eq!(ds.x, lib.x);
    assert_eq!(ds.labels().unwrap(), lib.labels);
    assert_eq!(ds.classes, Some(10));
}

#[test]
fn parts_per_class_and_first_n_select_from_the_library_load() {
    let f = Path::new("c.toml");
    let cases = [
        (PartConfig::Train, ShippedDataset::Mnist, 8000),
        (PartConfig::Test, ShippedDataset::Mnist, 2000),
        (PartConfig::All, ShippedDataset::Mnist, 10_000),
        (PartConfig::Train, ShippedDataset::FashionMnist, 10_000),
        (PartConfig::Test, ShippedDataset::FashionMnist, 2000),
        (PartConfig::All, ShippedDataset::FashionMnist, 12_000),
    ];
    for (part, d, n) in cases {
        let shipped = ShippedConfig {
            part,
            per_class: None,
            n: None,
        };
        let cfg = match d {
            ShippedDataset::Mnist => DataConfig::Mnist(shipped),
            ShippedDataset::FashionMnist => DataConfig::FashionMnist(shipped),
        };
        let ds = build(&cfg, 0, f).unwrap();
        assert_eq!(ds.x.dim(), (n, 784), "{} {part:?}", d.name());
        assert!(ds.x.iter().all(|v| (0.0..=1.0).contains(v)));
    }
    // per_class, then the first n of that
    let cfg = DataConfig::FashionMnist(ShippedConfig {
        part: PartConfig::Test,
        per_class: Some(5),
        n: Some(7),
    });
    let ds = build(&cfg, 0, f).unwrap();
    let lib = ShippedDataset::FashionMnist
        .load(Part::Test)
        .unwrap()
        .first_per_class(5)
        .unwrap();
    assert_eq!(ds.x, lib.x.slice(ndarray::s![..7, ..]));
    assert_eq!(ds.labels().unwrap(), lib.labels[..7]);
}

#[test]
fn bad_names_and_sizes_are_input_errors_naming_the_field() {
    let (_, text) = example();
    let dir = tempfile::tempdir().unwrap();
    // An unknown dataset name lists the valid kinds.
    let cfg = write(dir.path(), "bad.toml", &set(&text, "kind", "\"mnsit\""));
    let (field, reason) = input_error(ExperimentConfig::load(&cfg));
    assert!(field.starts_with("data"), "{field}: {reason}");
    for valid in ["`digits`", "`mnist`", "`fashion_mnist`"] {
        assert!(reason.contains(valid), "{reason}");
    }
    assert_eq!(run_cli(&cfg, &dir.path().join("o1"), &[]), 2);
    // The documented hyphenated name is accepted too.
    let cfg = write(dir.path(), "alias.toml", &set(&text, "kind", "\"fashion-mnist\""));
    assert!(matches!(
        ExperimentConfig::load(&cfg).unwrap().data,
        Some(DataConfig::FashionMnist(_))
    ));
    // A bad part, an unknown key, zero sizes.
    let cfg = write(dir.path(), "part.toml", &set(&text, "part", "\"validation\""));
    let (_, reason) = input_error(ExperimentConfig::load(&cfg));
    assert!(reason.contains("train") && reason.contains("test"), "{reason}");
    let cfg = write(
        dir.path(),
        "key.toml",
        &set(&text, "part", "\"train\"\nclasses = 3"),
    );
    let (_, reason) = input_error(ExperimentConfig::load(&cfg));
    assert!(reason.contains("classes"), "{reason}");
    for (key, field) in [("per_class", "data.per_class"), ("n_train", "split.n_train")] {
        let cfg = write(dir.path(), "zero.toml", &set(&text, key, "0"));
        let (f, reason) = input_error(ExperimentConfig::load(&cfg).and_then(|c| c.validate(&cfg)));
        assert_eq!(f, field, "{reason}");
    }
    // More per class than the smallest class holds (class 5 has 173 test digits).
    let cfg = DataConfig::Mnist(ShippedConfig {
        part: PartConfig::Test,
        per_class: Some(174),
        n: None,
    });
    let (field, reason) = input_error(build(&cfg, 0, Path::new("c.toml")));
    assert_eq!(field, "data.per_class");
    assert!(reason.contains("174") && reason.contains("class 5"), "{reason}");
    assert!(build(
        &DataConfig::Mnist(ShippedConfig {
            part: PartConfig::Test,
            per_class: Some(173),
            n: None,
        }),
        0,
        Path::new("c.toml")
    )
    .is_ok());
}
