//! Output folders imreg owns. Every folder imreg creates for results (run folders, `reproduce` and sweep
//! folders, and the temporary folders they are written in) carries the marker file [`OWNER_MARKER`];
//! imreg replaces or deletes a folder only if it carries the marker, and never the filesystem root, the
//! home folder, the current folder or one of its ancestors, or an ancestor of the config file — whatever
//! `--force` says. A refusal is bad input (exit 2) naming the folder and the reason.
use crate::error::{CliError, Result};
use std::path::{Path, PathBuf};

/// The marker file of a folder imreg wrote.
pub const OWNER_MARKER: &str = ".imreg-output";

/// Writes the marker into `dir` (`what`: the kind of folder, e.g. `run`, `sweep`, `reproduce`). What
/// counts is the marker's name ([`is_owned`]), so it is created exclusively (`O_EXCL`) rather than through a
/// temporary file: it appears at once, and no other entry is ever visible in a folder being claimed. A
/// marker already there — another imreg process claiming the same folder at the same moment, as the shards
/// of a study started together on a cluster do — is kept.
pub fn mark(dir: &Path, what: &str) -> Result<()> {
    use std::io::Write;
    let path = dir.join(OWNER_MARKER);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(mut file) => file
            .write_all(format!("imreg {what} folder: imreg may replace it\n").as_bytes())
            .map_err(|e| CliError::io(&path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(CliError::io(&path, e)),
    }
}

/// Whether `dir` is a folder carrying imreg's marker.
pub fn is_owned(dir: &Path) -> bool {
    dir.join(OWNER_MARKER).is_file()
}

fn canonical(p: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(p).ok()
}

/// Why `dir` (an existing folder) may never be replaced, if it is protected.
fn protected(dir: &Path, config: Option<&Path>) -> Option<String> {
    let target = canonical(dir)?;
    if target.parent().is_none() {
        return Some("is the filesystem root".into());
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .and_then(|h| canonical(&h));
    if home.as_deref() == Some(target.as_path()) {
        return Some("is the home folder".into());
    }
    if let Some(cwd) = std::env::current_dir().ok().and_then(|c| canonical(&c)) {
        if cwd.starts_with(&target) {
            return Some("is the current folder or one of its ancestors".into());
        }
    }
    if let Some(cfg) = config.and_then(canonical) {
        if cfg.starts_with(&target) {
            return Some("holds the config file".into());
        }
    }
    None
}

fn refuse(dir: &Path, reason: impl Into<String>) -> CliError {
    CliError::input(dir, "--out", reason)
}

/// Checks that `dir` may be replaced: it does not exist, or it is a folder imreg wrote (with the marker)
/// that is not protected. `config` is the config file of the run, if any.
pub fn check_replaceable(dir: &Path, config: Option<&Path>) -> Result<()> {
    if std::fs::symlink_metadata(dir).is_err() {
        return Ok(());
    }
    if let Some(why) = protected(dir, config) {
        return Err(refuse(dir, format!("{why}; imreg never replaces it")));
    }
    if !dir.is_dir() || dir.is_symlink() {
        return Err(refuse(
            dir,
            "exists and is not a folder imreg wrote; imreg will not replace it",
        ));
    }
    if !is_owned(dir) {
        return Err(refuse(
            dir,
            format!(
                "exists and is not a folder imreg wrote (no {OWNER_MARKER} marker); imreg will not replace \
                 it: choose another --out or remove it yourself"
            ),
        ));
    }
    Ok(())
}

/// Makes `dir` a folder imreg writes into (`what`: its kind): creates and marks it, or accepts it if it
/// already carries the marker or is empty (then marks it). A non-empty folder without the marker, a file,
/// or a protected folder is refused.
pub fn claim(dir: &Path, what: &str) -> Result<()> {
    if std::fs::symlink_metadata(dir).is_err() {
        std::fs::create_dir_all(dir).map_err(|e| CliError::io(dir, e))?;
        return mark(dir, what);
    }
    if let Some(why) = protected(dir, None) {
        return Err(refuse(
            dir,
            format!("{why}; imreg never writes its results there"),
        ));
    }
    if !dir.is_dir() {
        return Err(refuse(dir, "exists and is not a folder"));
    }
    if is_owned(dir) {
        return Ok(());
    }
    let empty = std::fs::read_dir(dir)
        .map_err(|e| CliError::io_while("listing", dir, e))?
        .next()
        .is_none();
    // A folder another imreg process is claiming right now holds its marker before anything else.
    if !empty && !is_owned(dir) {
        return Err(refuse(
            dir,
            format!(
                "exists, is not empty and is not a folder imreg wrote (no {OWNER_MARKER} marker); imreg \
                 will not write into it: choose another --out"
            ),
        ));
    }
    mark(dir, what)
}

/// Deletes `dir` if it carries imreg's marker (a leftover imreg wrote); anything else is left alone.
/// Returns whether it was removed.
pub fn remove_owned(dir: &Path) -> Result<bool> {
    if !is_owned(dir) || dir.is_symlink() {
        return Ok(false);
    }
    std::fs::remove_dir_all(dir).map_err(|e| CliError::io_while("removing", dir, e))?;
    Ok(true)
}

/// The folder that receives `out` (`.` for a bare name) and the leaf name of `out` (`run` when it has
/// none, as for `.`).
pub fn parent_and_leaf(out: &Path) -> (PathBuf, String) {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let leaf = out
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or("run")
        .to_string();
    (parent, leaf)
}

/// Removes the temporary folders `parent/.tmp-<leaf>-*` that carry imreg's marker (left by a killed
/// run). The caller holds the lock of `leaf` (`crate::lock`), so no live process is writing them; folders
/// without the marker are left alone.
pub fn remove_stale_temps(parent: &Path, leaf: &str) -> Result<()> {
    let prefix = format!(".tmp-{leaf}-");
    let entries = std::fs::read_dir(parent).map_err(|e| CliError::io_while("listing", parent, e))?;
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            remove_owned(&entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shards of one study started at the same moment claim one fresh folder together: every one of them
    /// must be accepted (a folder caught half-claimed — created, or holding only a temporary file, before its
    /// marker — was refused as "not empty and not a folder imreg wrote").
    #[test]
    fn processes_claiming_one_fresh_folder_together_are_all_accepted() {
        let root = tempfile::tempdir().unwrap();
        let claimants = 4;
        for round in 0..200 {
            let dir = root.path().join(format!("study-{round}")).join("mnist");
            let start = std::sync::Barrier::new(claimants);
            let results: Vec<Result<()>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..claimants)
                    .map(|_| {
                        s.spawn(|| {
                            start.wait();
                            claim(&dir, "study")
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            for r in results {
                assert!(r.is_ok(), "round {round}: {r:?}");
            }
            assert!(is_owned(&dir));
        }
    }

    #[test]
    fn a_marker_already_there_is_kept_and_a_foreign_folder_is_still_refused() {
        let root = tempfile::tempdir().unwrap();
        mark(root.path(), "run").unwrap();
        mark(root.path(), "sweep").unwrap();
        let text = std::fs::read_to_string(root.path().join(OWNER_MARKER)).unwrap();
        assert!(text.starts_with("imreg run folder"), "{text}");
        let foreign = root.path().join("foreign");
        std::fs::create_dir(&foreign).unwrap();
        std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
        let err = claim(&foreign, "study").unwrap_err().to_string();
        assert!(err.contains("not a folder imreg wrote"), "{err}");
        assert!(!is_owned(&foreign));
    }
}
