//! The driver: generates input `i` of a target from ChaCha stream `i` of the seed (so any input can be
//! replayed alone), runs it under `catch_unwind` with its time and largest allocation measured, and tallies
//! typed errors, accepts, panics, slow inputs ("hangs"), large allocations and untyped errors.
use crate::alloc;
use crate::target::{Target, TargetVerdict, TARGET_NAMES};
use imreg_objective::rng;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How many inputs to run: a count, or as many as fit in a wall-clock time.
#[derive(Clone, Copy, Debug)]
pub enum Budget {
    Inputs(u64),
    Time(Duration),
}

/// The largest number of failures of each target kept with their details (all are counted).
pub const KEPT_FAILURES: usize = 20;

/// The class of a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    Panic,
    /// Slower than the threshold (a run longer than the watchdog's limit ends the process instead).
    Hang,
    LargeAllocation,
    /// An error that is not the typed bad-input error.
    Untyped,
    /// An accepted input breaking the loader's contract.
    Contract,
}

/// One failing input: `--replay target:seed:index` reproduces it.
#[derive(Clone, Debug)]
pub struct Failure {
    pub kind: FailureKind,
    pub index: u64,
    pub detail: String,
}

/// The result of running one input.
#[derive(Clone, Debug)]
pub struct Run {
    /// The verdict, or the panic message.
    pub outcome: Result<TargetVerdict, String>,
    pub elapsed: Duration,
    /// The largest single allocation while running it, and the largest refused one (0 if none).
    pub peak_alloc: usize,
    pub refused_alloc: usize,
}

/// The counts of one target.
#[derive(Clone, Debug)]
pub struct Tally {
    pub target: &'static str,
    pub is_config: bool,
    pub inputs: u64,
    pub rejected: u64,
    pub accepted: u64,
    pub panics: u64,
    pub hangs: u64,
    pub large_allocations: u64,
    pub untyped: u64,
    pub contract: u64,
    /// The first [`KEPT_FAILURES`] failures.
    pub failures: Vec<Failure>,
    pub max_alloc: usize,
    pub slowest: Duration,
    pub wall: Duration,
}

impl Tally {
    /// Panics, hangs, large allocations, untyped errors and broken contracts.
    pub fn failed(&self) -> u64 {
        self.panics + self.hangs + self.large_allocations + self.untyped + self.contract
    }

    /// The summary line.
    pub fn line(&self) -> String {
        format!(
            "{:<12} inputs {:>9}  typed-errors {:>9}  accepted {:>8}  panics {}  hangs {}  large-allocs {}  \
             untyped {}  contract {}  max-alloc {:.1} KiB  slowest {:.2} ms  wall {:.1} s",
            self.target,
            self.inputs,
            self.rejected,
            self.accepted,
            self.panics,
            self.hangs,
            self.large_allocations,
            self.untyped,
            self.contract,
            self.max_alloc as f64 / 1024.0,
            self.slowest.as_secs_f64() * 1e3,
            self.wall.as_secs_f64()
        )
    }
}

/// FNV-1a of a target's name: its seed offset, so targets draw from different streams.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Input `index` of `target` for `seed`: the target's generator on ChaCha stream `index` of
/// `seed ⊕ FNV(name)`.
pub fn input(target: &dyn Target, seed: u64, index: u64) -> Vec<u8> {
    target.generate(&mut rng::stream(seed ^ name_hash(target.name()), index))
}

static CURRENT_TARGET: AtomicUsize = AtomicUsize::new(usize::MAX);
static CURRENT_SEED: AtomicU64 = AtomicU64::new(0);
static CURRENT_INDEX: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds since [`epoch`] at which the current input started, or 0 when none runs.
static STARTED_NS: AtomicU64 = AtomicU64::new(0);
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The input being run: target name, seed, index (read by the allocator's and the watchdog's reports).
pub fn current_input() -> (&'static str, u64, u64) {
    let t = CURRENT_TARGET.load(Ordering::Relaxed);
    (
        TARGET_NAMES.get(t).copied().unwrap_or("?"),
        CURRENT_SEED.load(Ordering::Relaxed),
        CURRENT_INDEX.load(Ordering::Relaxed),
    )
}

/// Replaces the panic hook by one that, while an input runs, keeps the message for the tally instead of
/// printing it (a panic of the harness itself is printed as usual).
pub fn quiet_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if STARTED_NS.load(Ordering::Relaxed) == 0 {
            default(info);
        } else if let Ok(mut last) = LAST_PANIC.lock() {
            *last = info.to_string();
        }
    }));
}

/// Starts a thread that ends the process (exit code 3) with the input's `--replay` when one input runs
/// longer than `limit`: a true hang would otherwise never be counted.
pub fn spawn_watchdog(limit: Duration) {
    let _ = epoch();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(100));
        let started = STARTED_NS.load(Ordering::Relaxed);
        let now = epoch().elapsed().as_nanos() as u64;
        if started != 0 && now.saturating_sub(started) > limit.as_nanos() as u64 {
            let (target, seed, index) = current_input();
            eprintln!(
                "imreg-fuzz: HANG: one input ran for more than {limit:?}: --replay {target}:{seed}:{index}"
            );
            std::process::exit(3);
        }
    });
}

/// Runs one input through `target` under `catch_unwind`, measuring its time and allocations.
pub fn run_one(target: &dyn Target, seed: u64, index: u64, input: &[u8]) -> Run {
    let t = TARGET_NAMES
        .iter()
        .position(|n| *n == target.name())
        .unwrap_or(usize::MAX);
    CURRENT_TARGET.store(t, Ordering::Relaxed);
    CURRENT_SEED.store(seed, Ordering::Relaxed);
    CURRENT_INDEX.store(index, Ordering::Relaxed);
    let _ = alloc::take_peak();
    let start = Instant::now();
    STARTED_NS.store((start - epoch()).as_nanos().max(1) as u64, Ordering::Relaxed);
    let outcome = catch_unwind(AssertUnwindSafe(|| target.check(input)));
    let elapsed = start.elapsed();
    STARTED_NS.store(0, Ordering::Relaxed);
    let (peak_alloc, refused_alloc) = alloc::take_peak();
    let outcome = outcome.map_err(|_| {
        LAST_PANIC
            .lock()
            .map(|m| m.clone())
            .unwrap_or_else(|_| "panic (message lost)".into())
    });
    Run {
        outcome,
        elapsed,
        peak_alloc,
        refused_alloc,
    }
}

/// Runs `target` on inputs `0, 1, …` of `seed` within `budget`; an input slower than `slow` counts as a
/// hang, one allocating more than the allocator's cap in one request as a large allocation.
pub fn run_target(target: &dyn Target, seed: u64, budget: Budget, slow: Duration) -> Tally {
    let mut tally = Tally {
        target: target.name(),
        is_config: target.is_config(),
        inputs: 0,
        rejected: 0,
        accepted: 0,
        panics: 0,
        hangs: 0,
        large_allocations: 0,
        untyped: 0,
        contract: 0,
        failures: Vec::new(),
        max_alloc: 0,
        slowest: Duration::ZERO,
        wall: Duration::ZERO,
    };
    let start = Instant::now();
    let cap = alloc::cap();
    for index in 0.. {
        let more = match budget {
            Budget::Inputs(n) => index < n,
            Budget::Time(t) => start.elapsed() < t,
        };
        if !more {
            break;
        }
        let bytes = input(target, seed, index);
        let run = run_one(target, seed, index, &bytes);
        tally.inputs += 1;
        tally.max_alloc = tally.max_alloc.max(run.peak_alloc);
        tally.slowest = tally.slowest.max(run.elapsed);
        let mut fail = |kind: FailureKind, detail: String, count: &mut u64| {
            *count += 1;
            if tally.failures.len() < KEPT_FAILURES {
                tally.failures.push(Failure { kind, index, detail });
            }
        };
        match run.outcome {
            Ok(TargetVerdict::Accepted) => tally.accepted += 1,
            Ok(TargetVerdict::Rejected(_)) => tally.rejected += 1,
            Ok(TargetVerdict::Untyped(m)) => fail(FailureKind::Untyped, m, &mut tally.untyped),
            Ok(TargetVerdict::Contract(m)) => fail(FailureKind::Contract, m, &mut tally.contract),
            Err(m) => fail(FailureKind::Panic, m, &mut tally.panics),
        }
        if run.elapsed > slow {
            fail(
                FailureKind::Hang,
                format!("took {:?}", run.elapsed),
                &mut tally.hangs,
            );
        }
        if run.refused_alloc > 0 || run.peak_alloc > cap {
            let size = run.refused_alloc.max(run.peak_alloc);
            fail(
                FailureKind::LargeAllocation,
                format!("a single allocation of {size} bytes (cap {cap})"),
                &mut tally.large_allocations,
            );
        }
    }
    tally.wall = start.elapsed();
    tally
}
