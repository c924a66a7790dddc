//! Atomic file writes: a temporary file in the destination's folder, then a rename. The file gets the
//! usual mode of a new file, `0o666 & !umask` (as `std::fs::write` would), not the temporary file's
//! private `0o600`.
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
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tmp-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Passed to open(2), which applies the umask.
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(|e| PlotError::io(dir, e))?;
    fill(tmp.as_file_mut()).map_err(|e| PlotError::io(path, e))?;
    tmp.as_file().sync_all().map_err(|e| PlotError::io(path, e))?;
    tmp.persist(path).map_err(|e| PlotError::io(path, e.error))?;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn written_files_get_the_umask_mode_not_0600() {
        let dir = tempfile::tempdir().unwrap();
        let probe = dir.path().join("probe");
        // What a plain create gets under this process's umask.
        std::fs::write(&probe, b"x").unwrap();
        let usual = std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
        let out = dir.path().join("out.txt");
        write_atomic(&out, b"hello").unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"hello");
        assert_eq!(
            std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            usual
        );
        // Replacing keeps the same rule.
        write_atomic(&out, b"again").unwrap();
        assert_eq!(
            std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            usual
        );
    }
}
