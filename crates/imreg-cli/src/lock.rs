//! Run locks of `sweep run`: before a process works on run `<id>` of an output folder it creates
//! `OUT/.lock-<id>` exclusively (`create_new`, so exactly one process wins) holding its host name,
//! process id and start time (Unix seconds; `sweep status` shows how long the run has been running),
//! refreshes its modification time every [`HEARTBEAT`] while it works ([`Held`], [`with_heartbeat`]), and
//! removes it when done. A run is locked when its work starts, not before, so
//! several processes started on the same runs share them: each takes the next run nobody holds. A second
//! process that finds the lock held by a live process leaves that run — and its temporary folders — alone.
//! A lock is stale, and taken over, when its process is known dead (same host, Linux: no `/proc/<pid>`) or,
//! from another host (a cluster on a shared file system), when it has not been refreshed for
//! [`STALE_AFTER`].
use crate::error::{CliError, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// How often a holder refreshes its locks.
pub const HEARTBEAT: Duration = Duration::from_secs(30);
/// A lock from another host not refreshed for this long is stale (its holder was killed or preempted).
pub const STALE_AFTER: Duration = Duration::from_secs(600);

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
    /// The lock file's text: the holder, and `started` (Unix seconds) when the clock allows.
    fn text(&self, started: Option<u64>) -> String {
        let started = started.map(|s| format!("started={s}\n")).unwrap_or_default();
        format!("host={}\npid={}\n{started}", self.host, self.pid)
    }
    /// Whether the holder of the lock file `path` is known to be gone: on this host, no `/proc/<pid>`
    /// (Linux); on another host, no heartbeat for [`STALE_AFTER`].
    fn is_gone(&self, path: &Path) -> bool {
        if self.host == host_name() {
            return Path::new("/proc/self").exists() && !Path::new(&format!("/proc/{}", self.pid)).exists();
        }
        std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > STALE_AFTER)
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

/// What the lock of a run shows to an observer that does not take it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockState {
    /// Who holds it (host `?`, pid 0 while its creator is still writing it).
    pub holder: Holder,
    /// Time since its last heartbeat (its modification time), if the clock allows.
    pub heartbeat_age: Option<Duration>,
    /// Time since the run was locked (its `started` line), if the lock has one (older locks do not) and
    /// the clock allows.
    pub running_for: Option<Duration>,
    /// Its holder is known gone (same host: no such process; another host: no heartbeat for
    /// [`STALE_AFTER`]); the next process to work on the run takes it over.
    pub stale: bool,
}

/// The lock of run `id` in `out`, if there is one; it is only read.
pub fn inspect(out: &Path, id: &str) -> Option<LockState> {
    let path = lock_path(out, id);
    let meta = std::fs::metadata(&path).ok()?;
    let heartbeat_age = meta
        .modified()
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok());
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let running_for = text
        .lines()
        .find_map(|l| l.strip_prefix("started="))
        .and_then(|s| s.trim().parse().ok())
        .and_then(|s| since_epoch().map(|now| now.saturating_sub(Duration::from_secs(s))));
    let (holder, stale) = match Holder::parse(&text) {
        Some(h) => {
            let stale = h.is_gone(&path);
            (h, stale)
        }
        None => (
            Holder {
                host: "?".into(),
                pid: 0,
            },
            false,
        ),
    };
    Some(LockState {
        holder,
        heartbeat_age,
        running_for,
        stale,
    })
}

/// Now as time since the Unix epoch, if the clock allows.
fn since_epoch() -> Option<Duration> {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).ok()
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
                f.write_all(me.text(since_epoch().map(|d| d.as_secs())).as_bytes())
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
        if !holder.is_gone(&path) {
            return Ok(Err(holder));
        }
        // Take the stale lock aside atomically (only one process can), check that it is still the dead
        // holder's, and retry; a fresh lock taken aside by mistake is put back without overwriting.
        let aside = out.join(format!(".lock-{id}.stale-{}", me.pid));
        if std::fs::rename(&path, &aside).is_err() {
            continue;
        }
        let moved = std::fs::read_to_string(&aside).unwrap_or_default();
        if Holder::parse(&moved).is_some_and(|h| h != holder) {
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

/// The locks this process holds, refreshed together by [`with_heartbeat`]: a lock joins when it is taken
/// ([`Held::acquire`]) and leaves, its file removed, when its [`HeldLock`] is dropped.
#[derive(Debug, Default)]
pub struct Held {
    paths: Mutex<Vec<PathBuf>>,
}

/// A lock taken through [`Held::acquire`].
#[derive(Debug)]
pub struct HeldLock<'a> {
    held: &'a Held,
    lock: RunLock,
}

impl Held {
    /// [`acquire`], and on success joins the lock to the set refreshed by the heartbeat.
    pub fn acquire(&self, out: &Path, id: &str) -> Result<std::result::Result<HeldLock<'_>, Holder>> {
        Ok(acquire(out, id)?.map(|lock| {
            self.paths().push(lock.path.clone());
            HeldLock { held: self, lock }
        }))
    }

    fn paths(&self) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
        // A panic while holding the guard cannot leave the list half-changed (push and retain are whole).
        self.paths.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for HeldLock<'_> {
    fn drop(&mut self) {
        // Leave the heartbeat's set first; the lock file goes when `self.lock` drops right after.
        self.held.paths().retain(|p| *p != self.lock.path);
    }
}

/// Runs `work` while a background thread refreshes the modification time of the locks in `held` every
/// [`HEARTBEAT`], so other hosts see them as live.
pub fn with_heartbeat<T>(held: &Held, work: impl FnOnce() -> T) -> T {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(HEARTBEAT) {
                for path in held.paths().iter() {
                    if let Ok(f) = std::fs::File::options().append(true).open(path) {
                        let _ = f.set_modified(SystemTime::now());
                    }
                }
            }
        });
        let out = work();
        drop(stop);
        out
    })
}
