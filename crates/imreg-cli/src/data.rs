//! Datasets of `imreg run` / `imreg analyze`: seeded generators, the embedded digits, MNIST and
//! Fashion-MNIST (checked against their SHA-256), and files (`.npy`,
//! MNIST IDX, CIFAR-10 binary) through `imreg_objective::data`, with errors naming the file and the field.
use crate::config::{DataConfig, PartConfig, ShippedConfig, SplitConfig, SupportTargetConfig};
use crate::error::{CliError, Result};
use imreg_objective::data::{
    self as od, synthetic, Classification, DataError, Part, Regression, ShippedDataset,
};
use imreg_objective::rng;
use ndarray::{Array2, Axis};
use std::path::Path;

/// Stream ids of the master seed (one per purpose, so changing one never shifts another).
pub const STREAM_DATA: u64 = 1;
pub const STREAM_INIT: u64 = 2;
pub const STREAM_BATCHES: u64 = 3;
pub const STREAM_SPECTRUM: u64 = 4;
pub const STREAM_SPLIT: u64 = 5;
/// Stream of the explicit regularizers' randomness (FT's sampled labels).
pub const STREAM_REGULARIZERS: u64 = 6;

/// `N` examples: inputs `x` (`N × d`) and targets `y` (`N × outputs`); for class labels (`classes` set) `y`
/// is one column holding the labels `0.0, 1.0, …`.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub x: Array2<f64>,
    pub y: Array2<f64>,
    /// Number of classes when `y` holds class labels.
    pub classes: Option<usize>,
}

impl Dataset {
    pub fn n(&self) -> usize {
        self.x.nrows()
    }
    pub fn dim(&self) -> usize {
        self.x.ncols()
    }
    /// The class labels (when `classes` is set).
    pub fn labels(&self) -> Option<Vec<usize>> {
        self.classes?;
        Some(self.y.column(0).iter().map(|&v| v as usize).collect())
    }
    pub fn from_classification(c: Classification) -> Dataset {
        let n = c.labels.len();
        let y = Array2::from_shape_fn((n, 1), |(i, _)| c.labels[i] as f64);
        Dataset {
            x: c.x,
            y,
            classes: Some(c.classes),
        }
    }
    pub fn from_regression(r: Regression) -> Dataset {
        Dataset {
            x: r.x,
            y: r.y,
            classes: None,
        }
    }
    /// The first `n` examples (all if `None` or `n ≥ N`).
    fn truncate(self, n: Option<usize>) -> Dataset {
        match n {
            Some(n) if n < self.n() => Dataset {
                x: self.x.slice(ndarray::s![..n, ..]).to_owned(),
                y: self.y.slice(ndarray::s![..n, ..]).to_owned(),
                classes: self.classes,
            },
            _ => self,
        }
    }
}

/// A data-loader error as bad input naming `field` of `file`; the loader's message names the data file.
fn data_err<'a>(file: &'a Path, field: &str) -> impl Fn(DataError) -> CliError + 'a {
    let field = field.to_string();
    move |e| CliError::input(file, field.clone(), e.to_string())
}

fn objective_err<'a>(
    file: &'a Path,
    field: &str,
) -> impl Fn(imreg_objective::ObjectiveError) -> CliError + 'a {
    let field = field.to_string();
    move |e| CliError::input(file, field.clone(), e.to_string())
}

fn must_exist(p: &Path, file: &Path, field: &str) -> Result<()> {
    if !p.exists() {
        return Err(CliError::input(
            file,
            field,
            format!("file {} does not exist", p.display()),
        ));
    }
    Ok(())
}

/// Builds the dataset of `cfg` with master seed `seed`; `file` is the config file (for error messages).
pub fn build(cfg: &DataConfig, seed: u64, file: &Path) -> Result<Dataset> {
    let obj = |field: &'static str| objective_err(file, field);
    Ok(match cfg {
        DataConfig::GaussianLinear { n, dim, noise } => gaussian(*n, *dim, *noise, seed, false),
        DataConfig::GaussianLogistic { n, dim, noise } => gaussian(*n, *dim, *noise, seed, true),
        DataConfig::Digits {} => Dataset::from_classification(od::digits()),
        DataConfig::Mnist(s) => shipped(ShippedDataset::Mnist, s, file)?,
        DataConfig::FashionMnist(s) => shipped(ShippedDataset::FashionMnist, s, file)?,
        DataConfig::TeacherStudent { n, widths, noise } => Dataset::from_regression(
            synthetic::teacher_student_mlp(*n, widths, *noise, seed).map_err(obj("data"))?,
        ),
        DataConfig::TeacherStudentClassification { n, dim, classes } => Dataset::from_classification(
            synthetic::teacher_student_classification(*n, *dim, *classes, seed).map_err(obj("data"))?,
        ),
        DataConfig::SparseSupport {
            n,
            d,
            r,
            target,
            noise,
        } => {
            let target = match target {
                SupportTargetConfig::Linear => synthetic::SupportTarget::Linear,
                SupportTargetConfig::Sin => synthetic::SupportTarget::Sin,
                SupportTargetConfig::Staircase => synthetic::SupportTarget::Staircase,
            };
            let p = synthetic::SupportParams {
                n: *n,
                d: *d,
                r: *r,
                target,
                noise: *noise,
                seed,
            };
            Dataset::from_regression(synthetic::sparse_support(&p).map_err(obj("data"))?)
        }
        DataConfig::ScalarNetData { n, noise } => {
            let (x, y) = synthetic::scalar_net_data(*n, *noise, seed).map_err(obj("data"))?;
            Dataset {
                x: Array2::from_shape_vec((x.len(), 1), x).map_err(|e| CliError::Failed(e.to_string()))?,
                y: Array2::from_shape_vec((y.len(), 1), y).map_err(|e| CliError::Failed(e.to_string()))?,
                classes: None,
            }
        }
        DataConfig::Npy { x, y, classes } => from_npy(x, y, *classes, file)?,
        DataConfig::MnistIdx { images, labels, n } => {
            must_exist(images, file, "data.images")?;
            must_exist(labels, file, "data.labels")?;
            let x = od::idx::load_images(images).map_err(data_err(file, "data.images"))?;
            let l = od::idx::load_labels(labels).map_err(data_err(file, "data.labels"))?;
            if l.len() != x.nrows() {
                return Err(CliError::input(
                    file,
                    "data.labels",
                    format!(
                        "{} has {} labels but {} has {} images",
                        labels.display(),
                        l.len(),
                        images.display(),
                        x.nrows()
                    ),
                ));
            }
            let c = Classification::new(x, l, 10).map_err(obj("data.labels"))?;
            Dataset::from_classification(c).truncate(*n)
        }
        DataConfig::Cifar10 { files, n } => {
            let mut xs = Vec::new();
            let mut labels = Vec::new();
            for (i, f) in files.iter().enumerate() {
                let field = format!("data.files[{i}]");
                must_exist(f, file, &field)?;
                let (x, l) = od::cifar::read_cifar10(f).map_err(data_err(file, &field))?;
                xs.push(x);
                labels.extend(l);
                let values = (labels.len() as u64).saturating_mul(od::cifar::CIFAR_PIXELS as u64);
                crate::limits::at_most(
                    file,
                    "data.files",
                    "pixel values of the batches",
                    values,
                    crate::limits::MAX_DATA_VALUES,
                )?;
            }
            let views: Vec<_> = xs.iter().map(|x| x.view()).collect();
            let x = ndarray::concatenate(Axis(0), &views).map_err(|e| CliError::Failed(e.to_string()))?;
            let c = Classification::new(x, labels, 10).map_err(obj("data.files"))?;
            Dataset::from_classification(c).truncate(*n)
        }
    })
}

/// The `part` of a shipped dataset, then the first `per_class` of each class, then the first `n`.
fn shipped(d: ShippedDataset, cfg: &ShippedConfig, file: &Path) -> Result<Dataset> {
    let part = match cfg.part {
        PartConfig::Train => Part::Train,
        PartConfig::Test => Part::Test,
        PartConfig::All => Part::All,
    };
    let mut c = d.load(part).map_err(data_err(file, "data.kind"))?;
    if let Some(k) = cfg.per_class {
        c = c
            .first_per_class(k)
            .map_err(objective_err(file, "data.per_class"))?;
    }
    Ok(Dataset::from_classification(c).truncate(cfg.n))
}

/// The seed of the `[split]` permutation: a draw from stream [`STREAM_SPLIT`] of the master seed, passed to
/// `Classification::split` / `Regression::split` (so `digits` with `[split]` is
/// `imreg_objective::data::digits_split(n_train, split_seed(seed))`).
pub fn split_seed(seed: u64) -> u64 {
    use rand::Rng;
    rng::stream(seed, STREAM_SPLIT).random::<u64>()
}

/// Splits `data` by `split` with the library's seeded split: `(train, test)`.
pub fn split(data: &Dataset, split: &SplitConfig, seed: u64, file: &Path) -> Result<(Dataset, Dataset)> {
    let n = data.n();
    if split.n_train >= n {
        return Err(CliError::input(
            file,
            "split.n_train",
            format!("must be less than the N = {n} examples (the rest is the test set)"),
        ));
    }
    let s = split_seed(seed);
    let err = objective_err(file, "split.n_train");
    Ok(match (data.labels(), data.classes) {
        (Some(labels), Some(classes)) => {
            let c = Classification::new(data.x.clone(), labels, classes).map_err(&err)?;
            let (tr, te) = c.split(split.n_train, s).map_err(&err)?;
            (Dataset::from_classification(tr), Dataset::from_classification(te))
        }
        _ => {
            let r = Regression::new(data.x.clone(), data.y.clone()).map_err(&err)?;
            let (tr, te) = r.split(split.n_train, s).map_err(&err)?;
            (Dataset::from_regression(tr), Dataset::from_regression(te))
        }
    })
}

/// `x_i ~ N(0, I)`, `w* ~ N(0, I/d)`, `s_i = x_iᵀw* + noise ε_i`; `y_i = s_i` or `1[s_i > 0]`.
fn gaussian(n: usize, d: usize, noise: f64, seed: u64, labels: bool) -> Dataset {
    let mut r = rng::stream(seed, STREAM_DATA);
    let x = rng::normal_vec(&mut r, n * d);
    let w: Vec<f64> = rng::normal_vec(&mut r, d)
        .iter()
        .map(|v| v / (d as f64).sqrt())
        .collect();
    let eps = rng::normal_vec(&mut r, n);
    let y: Vec<f64> = (0..n)
        .map(|i| {
            let s = x[i * d..(i + 1) * d]
                .iter()
                .zip(&w)
                .map(|(a, b)| a * b)
                .sum::<f64>()
                + noise * eps[i];
            if labels {
                f64::from(u8::from(s > 0.0))
            } else {
                s
            }
        })
        .collect();
    Dataset {
        x: Array2::from_shape_vec((n, d), x).unwrap_or_default(),
        y: Array2::from_shape_vec((n, 1), y).unwrap_or_default(),
        classes: labels.then_some(2),
    }
}

fn from_npy(xp: &Path, yp: &Path, classes: Option<usize>, file: &Path) -> Result<Dataset> {
    must_exist(xp, file, "data.x")?;
    must_exist(yp, file, "data.y")?;
    let x = od::npy::read_npy(xp).map_err(data_err(file, "data.x"))?;
    let y = od::npy::read_npy(yp).map_err(data_err(file, "data.y"))?;
    for (field, path, shape) in [("data.x", xp, &x.shape), ("data.y", yp, &y.shape)] {
        if shape.contains(&0) {
            return Err(CliError::input(
                file,
                field,
                format!("{} has a zero-length axis (shape {shape:?})", path.display()),
            ));
        }
    }
    if let Some(i) = x.data.iter().position(|v| !v.is_finite()) {
        return Err(CliError::input(
            file,
            "data.x",
            format!("{}: non-finite value at flat position {i}", xp.display()),
        ));
    }
    let n = *x.shape.first().ok_or_else(|| {
        CliError::input(
            file,
            "data.x",
            format!("{} is a scalar; expected N × d", xp.display()),
        )
    })?;
    let d = x.data.len() / n;
    let yn = y.shape.first().copied().unwrap_or(1);
    if yn != n {
        return Err(CliError::input(
            file,
            "data.y",
            format!(
                "{} has {yn} rows but data.x has {n} (shapes {:?} vs {:?})",
                yp.display(),
                y.shape,
                x.shape
            ),
        ));
    }
    let c = y.data.len() / n;
    let x = Array2::from_shape_vec((n, d), x.data)
        .map_err(|_| CliError::input(file, "data.x", "inconsistent shape"))?;
    match classes {
        Some(k) => {
            if c != 1 {
                return Err(CliError::input(
                    file,
                    "data.y",
                    format!(
                        "labels (data.classes set) must be one per example, got shape {:?}",
                        y.shape
                    ),
                ));
            }
            let labels = y.into_labels().map_err(data_err(file, "data.y"))?;
            let cl = Classification::new(x, labels, k).map_err(objective_err(file, "data.y"))?;
            Ok(Dataset::from_classification(cl))
        }
        None => {
            let y = Array2::from_shape_vec((n, c), y.data)
                .map_err(|_| CliError::input(file, "data.y", "inconsistent shape"))?;
            if let Some(i) = y.iter().position(|v| !v.is_finite()) {
                return Err(CliError::input(
                    file,
                    "data.y",
                    format!("{}: non-finite value at flat position {i}", yp.display()),
                ));
            }
            Ok(Dataset { x, y, classes: None })
        }
    }
}
