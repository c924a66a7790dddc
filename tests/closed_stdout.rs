//! End to end: when the reader of `imreg`'s output goes away (`imreg sweep status | head -1`), the program
//! ends quietly, as `cat` or `git log` do, instead of panicking on the broken pipe; when standard output
//! cannot be written (a full disk), the command fails with an error naming it.
#![cfg(unix)]
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output, Stdio};

/// `imreg study list` (a few lines on stdout) with its standard output sent to `stdout`; the stderr text.
fn study_list_into(stdout: impl Into<Stdio>) -> (Output, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_imreg"))
        .args(["study", "list"])
        .stdout(stdout)
        .output()
        .expect("the imreg binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

#[test]
fn a_closed_stdout_ends_the_program_quietly() {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader); // nobody will read: the first write meets a closed pipe
    let (out, stderr) = study_list_into(writer);
    assert!(stderr.is_empty(), "it wrote to stderr: {stderr}");
    assert_eq!(out.status.signal(), Some(13), "{:?} (13 is SIGPIPE)", out.status);
}

#[cfg(target_os = "linux")]
#[test]
fn an_unwritable_stdout_is_an_error_naming_it() {
    // `/dev/full` accepts the open and fails every write with ENOSPC, as a full disk does.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full opens");
    let (out, stderr) = study_list_into(full);
    assert_eq!(out.status.code(), Some(1), "{:?}; stderr: {stderr}", out.status);
    assert!(
        stderr.starts_with("error: writing <standard output>: ") && !stderr.contains("panicked"),
        "stderr: {stderr}"
    );
}
