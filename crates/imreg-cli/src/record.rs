//! Streamed metric records of a run: each row goes to `metrics.csv` and to one raw column file per metric
//! in the run's temporary folder as soon as it is computed, so the rows of a long run are never all held
//! in memory. At the end each column becomes `<column>.npy` (the header, then the raw file's bytes copied
//! through a fixed buffer) and the raw files are removed. The figures keep at most [`FIGURE_POINTS`] points per metric: every `k`-th recorded
//! point (`k` a power of two, doubled whenever the limit is reached) plus the last one.
use crate::error::{CliError, Result};
use imreg_objective::data::npy::npy_header;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Most points per figure series (the CSV and `.npy` columns keep every row).
pub const FIGURE_POINTS: usize = 100_000;

/// The recorded `(step, value)` points of one metric, thinned to at most [`FIGURE_POINTS`].
#[derive(Clone, Debug, Default)]
pub struct Thinned {
    pub xs: Vec<f64>,
    pub ys: Vec<f64>,
    /// Keep every `stride`-th point offered.
    stride: u64,
    offered: u64,
    /// The latest point offered but not kept (appended at the end so a series always ends at its last point).
    pending: Option<(f64, f64)>,
}

impl Thinned {
    fn new() -> Self {
        Thinned {
            stride: 1,
            ..Default::default()
        }
    }

    fn push(&mut self, x: f64, y: f64) {
        if self.offered.is_multiple_of(self.stride) {
            if self.xs.len() == FIGURE_POINTS {
                // Keep every other point and halve the rate from now on.
                self.xs = self.xs.iter().step_by(2).copied().collect();
                self.ys = self.ys.iter().step_by(2).copied().collect();
                self.stride *= 2;
            }
            if self.offered.is_multiple_of(self.stride) {
                self.xs.push(x);
                self.ys.push(y);
                self.pending = None;
                self.offered += 1;
                return;
            }
        }
        self.pending = Some((x, y));
        self.offered += 1;
    }

    fn finish(&mut self) {
        if let Some((x, y)) = self.pending.take() {
            self.xs.push(x);
            self.ys.push(y);
        }
    }
}

/// Writes the rows of a run as they come.
pub struct Recorder {
    dir: PathBuf,
    columns: Vec<&'static str>,
    csv: BufWriter<File>,
    raw: Vec<BufWriter<File>>,
    rows: usize,
    last: Vec<f64>,
    /// The figure series of every column after `step` (recorded points only: rows where the metric was
    /// not due hold NaN and are skipped).
    series: Vec<Thinned>,
}

fn raw_path(dir: &Path, col: &str) -> PathBuf {
    dir.join(format!(".column-{col}.f64"))
}

fn create(path: &Path) -> Result<BufWriter<File>> {
    File::create(path)
        .map(BufWriter::new)
        .map_err(|e| CliError::io(path, e))
}

impl Recorder {
    /// Starts `metrics.csv` (with its header) and the raw columns in `dir`.
    pub fn new(dir: &Path, columns: Vec<&'static str>) -> Result<Self> {
        let csv_path = dir.join("metrics.csv");
        let mut csv = create(&csv_path)?;
        writeln!(csv, "{}", columns.join(",")).map_err(|e| CliError::io(&csv_path, e))?;
        let raw = columns
            .iter()
            .map(|c| create(&raw_path(dir, c)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Recorder {
            dir: dir.to_path_buf(),
            series: vec![Thinned::new(); columns.len().saturating_sub(1)],
            last: vec![f64::NAN; columns.len()],
            columns,
            csv,
            raw,
            rows: 0,
        })
    }

    /// Appends one row (`row[0]` is the step).
    pub fn push(&mut self, row: &[f64]) -> Result<()> {
        let line = row.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",");
        let csv_path = self.dir.join("metrics.csv");
        writeln!(self.csv, "{line}").map_err(|e| CliError::io(&csv_path, e))?;
        for ((w, c), v) in self.raw.iter_mut().zip(&self.columns).zip(row) {
            w.write_all(&v.to_le_bytes())
                .map_err(|e| CliError::io(raw_path(&self.dir, c), e))?;
        }
        for (s, &y) in self.series.iter_mut().zip(&row[1..]) {
            if !y.is_nan() {
                s.push(row[0], y);
            }
        }
        self.last = row.to_vec();
        self.rows += 1;
        Ok(())
    }

    /// The column names.
    pub fn columns(&self) -> &[&'static str] {
        &self.columns
    }

    /// Flushes `metrics.csv`, writes `<column>.npy` for every column (removing the raw files) and returns
    /// the finished record.
    pub fn finish(self) -> Result<Recorded> {
        let Recorder {
            dir,
            columns,
            mut csv,
            raw,
            rows,
            last,
            mut series,
        } = self;
        csv.flush()
            .map_err(|e| CliError::io(dir.join("metrics.csv"), e))?;
        for (w, col) in raw.into_iter().zip(&columns) {
            let path = raw_path(&dir, col);
            w.into_inner()
                .map_err(|e| CliError::io(&path, e.into_error()))?
                .sync_all()
                .map_err(|e| CliError::io(&path, e))?;
            let npy_path = dir.join(format!("{col}.npy"));
            let header = npy_header(&[rows]).map_err(|e| CliError::Failed(e.to_string()))?;
            File::open(&path)
                .map_err(|e| CliError::io_while("reading", &path, e))
                .and_then(|mut raw| {
                    let mut npy = create(&npy_path)?;
                    npy.write_all(&header)
                        .and_then(|()| std::io::copy(&mut raw, &mut npy).map(drop))
                        .and_then(|()| npy.flush())
                        .map_err(|e| CliError::io(&npy_path, e))
                })?;
            std::fs::remove_file(&path).map_err(|e| CliError::io_while("removing", &path, e))?;
        }
        series.iter_mut().for_each(Thinned::finish);
        Ok(Recorded {
            columns,
            last,
            series,
        })
    }
}

/// What a finished [`Recorder`] leaves besides its files.
pub struct Recorded {
    pub columns: Vec<&'static str>,
    /// The last row (the final value of each column; NaN where absent).
    pub last: Vec<f64>,
    /// The figure series of each column after `step`.
    pub series: Vec<Thinned>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_a_regular_subset_ending_at_the_last_point() {
        let mut t = Thinned::new();
        let n = 5 * FIGURE_POINTS as u64 + 3;
        for i in 0..n {
            t.push(i as f64, -(i as f64));
        }
        t.finish();
        assert!(t.xs.len() <= FIGURE_POINTS + 1, "{}", t.xs.len());
        assert!(t.xs.len() > FIGURE_POINTS / 2);
        assert_eq!(*t.xs.last().unwrap(), (n - 1) as f64);
        // Every kept point but the last is a multiple of the final stride, in order.
        let stride = t.stride as f64;
        for w in t.xs[..t.xs.len() - 1].windows(2) {
            assert_eq!(w[1] - w[0], stride);
        }
        assert!(t.xs.iter().zip(&t.ys).all(|(x, y)| *y == -*x));
        // Short series are kept whole.
        let mut s = Thinned::new();
        (0..10).for_each(|i| s.push(i as f64, 1.0));
        s.finish();
        assert_eq!(s.xs, (0..10).map(f64::from).collect::<Vec<_>>());
    }
}
