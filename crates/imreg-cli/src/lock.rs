//! Run locks of `sweep run`: before a process works on run `<id>` of an output folder it creates
//! `OUT/.lock-<id>` exclusively (`create_new`, so exactly one process wins) holding its host name and
//! process id, and removes it when done. A second process that finds the lock held by a live process
//! leaves that run — and its temporary folders — alone. A lock whose process is dead (on the same host,
//! Linux: no `/proc/<pid>`) is stale and taken over. A lock from another host, or on a system without
//! `/proc`, is never taken over automatically: remove it by hand once that process is gone.
use crate::error::{CliError, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A held lock; dropping it removes the lock file.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Who holds a lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
}

impl Holder {
    fn me() -> Holder {
        Holder {
            host: host_name(),
            pid: std::process::id(),
        }
    }
    fn parse(text: &str) -> Option<Holder> {
        let mut host = None;
        let mut pid = None;
        for line in text.lines() {
            if let Some(h) = line.strip_prefix("host=") {
                host = Some(h.to_string());
            } else if let Some(p) = line.strip_prefix("pid=") {
                pid = p.trim().parse().ok();
            }
        }
        Some(Holder {
            host: host?,
            pid: pid?,
        })
    }
    fn text(&self) -> String {
        format!("host={}\npid={}\n", self.host, self.pid)
    }
    /// Whether the holder is known to be dead: same host and no `/proc/<pid>` (Linux).
    fn is_dead(&self) -> bool {
        self.host == host_name()
            && Path::new("/proc/self").exists()
            && !Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The lock file of run `id` in `out`.
pub fn lock_path(out: &Path, id: &str) -> PathBuf {
    out.join(format!(".lock-{id}"))
}

/// Tries to lock run `id` of `out`: `Ok(Ok(lock))`, or `Ok(Err(holder))` when a live (or unknown) process
/// holds it. A stale lock is taken over.
pub fn acquire(out: &Path, id: &str) -> Result<std::result::Result<RunLock, Holder>> {
    let path = lock_path(out, id);
    let me = Holder::me();
    for _ in 0..3 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(me.text().as_bytes())
                    .map_err(|e| CliError::io(&path, e))?;
                return Ok(Ok(RunLock { path }));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(CliError::io(&path, e)),
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let holder = match Holder::parse(&text) {
            Some(h) => h,
            // Being written right now by its creator: treat as held.
            None => {
                return Ok(Err(Holder {
                    host: "?".into(),
                    pid: 0,
                }))
            }
        };
        if !holder.is_dead() {
            return Ok(Err(holder));
        }
        // Take the stale lock aside atomically (only one process can), check that it is still the dead
        // holder's, and retry; a fresh lock taken aside by mistake is put back without overwriting.
        let aside = out.join(format!(".lock-{id}.stale-{}", me.pid));
        if std::fs::rename(&path, &aside).is_err() {
            continue;
        }
        let moved = std::fs::read_to_string(&aside).unwrap_or_default();
        if Holder::parse(&moved).is_some_and(|h| !h.is_dead()) {
            let _ = std::fs::hard_link(&aside, &path);
        }
        let _ = std::fs::remove_file(&aside);
    }
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    Ok(Err(Holder::parse(&text).unwrap_or(Holder {
        host: "?".into(),
        pid: 0,
    })))
}

/// Whether run `id` of `out` is locked by a live (or unknown) process other than a stale one.
pub fn is_held(out: &Path, id: &str) -> bool {
    match std::fs::read_to_string(lock_path(out, id)) {
        Ok(text) => Holder::parse(&text).is_none_or(|h| !h.is_dead()),
        Err(_) => false,
    }
}
