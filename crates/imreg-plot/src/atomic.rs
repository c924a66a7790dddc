//! Atomic file writes: a temporary file in the destination's folder, then a rename.
use crate::PlotError;
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically (temporary file in the same folder, flushed, then renamed over `path`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PlotError> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// Like [`write_atomic`], with the contents produced by `fill` writing into the temporary file.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<(), PlotError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| PlotError::io(dir, e))?;
    fill(tmp.as_file_mut()).map_err(|e| PlotError::io(path, e))?;
    tmp.as_file().sync_all().map_err(|e| PlotError::io(path, e))?;
    tmp.persist(path).map_err(|e| PlotError::io(path, e.error))?;
    Ok(())
}
