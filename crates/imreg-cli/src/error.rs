//! The CLI's errors and their exit codes: 2 for bad input (naming the file, the field and the reason),
//! 1 for a failed check or a run that could not complete.
use std::path::{Path, PathBuf};

/// Exit code of a successful command.
pub const EXIT_OK: i32 = 0;
/// Exit code when a check failed or a computation could not complete.
pub const EXIT_FAILED: i32 = 1;
/// Exit code for bad input: an unreadable or invalid file, field or argument.
pub const EXIT_BAD_INPUT: i32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad input: `file` (the config, data or weights file, or `<args>`), the `field` at fault and why.
    #[error("{}: {field}: {reason}", file.display())]
    Input {
        file: PathBuf,
        field: String,
        reason: String,
    },
    /// Writing results (or reading back imreg's own output) failed at `path`.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done: `writing`, `reading`, `removing`, `listing`.
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A registered check's id is unusable: registered twice, or not a plain `topic.claim` name.
    #[error("check id {id:?}: {reason}")]
    CheckId { id: String, reason: &'static str },
    /// A computation failed (e.g. an objective or eigensolver error on valid input).
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    pub fn input(file: impl AsRef<Path>, field: impl Into<String>, reason: impl Into<String>) -> Self {
        CliError::Input {
            file: file.as_ref().to_path_buf(),
            field: field.into(),
            reason: reason.into(),
        }
    }
    /// A bad command-line argument.
    pub fn arg(field: impl Into<String>, reason: impl Into<String>) -> Self {
        CliError::input("<args>", field, reason)
    }
    /// Writing `path` failed.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Self::io_while("writing", path, source)
    }
    /// `action` (`reading`, `removing`, `listing`, …) on `path` failed.
    pub fn io_while(action: &'static str, path: impl AsRef<Path>, source: std::io::Error) -> Self {
        CliError::Io {
            action,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Input { .. } | CliError::CheckId { .. } => EXIT_BAD_INPUT,
            // An output path that cannot be written (no permission, read-only, a file in the way, a
            // missing or non-folder parent) is a bad --out; other I/O failures (disk full, …) are failures.
            CliError::Io { source, .. } if bad_output_path(source) => EXIT_BAD_INPUT,
            CliError::Io { .. } | CliError::Failed(_) => EXIT_FAILED,
        }
    }
}

fn bad_output_path(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::PermissionDenied
            | K::ReadOnlyFilesystem
            | K::NotFound
            | K::NotADirectory
            | K::IsADirectory
            | K::AlreadyExists
            | K::DirectoryNotEmpty
            | K::InvalidFilename
    )
}

impl From<imreg_plot::PlotError> for CliError {
    /// A failed write names the file; only drawing errors are reported as figure errors.
    fn from(e: imreg_plot::PlotError) -> Self {
        match e {
            imreg_plot::PlotError::Io { path, source } => CliError::io(path, source),
            e => CliError::Failed(format!("figure: {e}")),
        }
    }
}

pub type Result<T> = std::result::Result<T, CliError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_errors_name_the_file_and_unwritable_paths_are_bad_input() {
        let io = |kind| imreg_plot::PlotError::Io {
            path: PathBuf::from("/out/metrics.csv"),
            source: std::io::Error::from(kind),
        };
        let e = CliError::from(io(std::io::ErrorKind::PermissionDenied));
        assert_eq!(e.exit_code(), EXIT_BAD_INPUT);
        let msg = e.to_string();
        assert!(msg.starts_with("writing /out/metrics.csv: "), "{msg}");
        assert!(!msg.contains("figure"), "{msg}");
        assert_eq!(
            CliError::from(io(std::io::ErrorKind::StorageFull)).exit_code(),
            EXIT_FAILED
        );
        let drawing = CliError::from(imreg_plot::PlotError::Font);
        assert!(drawing.to_string().starts_with("figure: "), "{drawing}");
    }
}
