//! The harness itself: every target runs a fixed number of inputs cleanly and deterministically, and the
//! driver counts what a broken target does (panics, large allocations, untyped errors, broken contracts).
use imreg_fuzz::alloc::{self, CappedAlloc};
use imreg_fuzz::run::{self, Budget, FailureKind};
use imreg_fuzz::target::{self, Target, TargetVerdict};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

#[global_allocator]
static ALLOC: CappedAlloc = CappedAlloc;

const SLOW: Duration = Duration::from_secs(1);

/// The allocator's records are process-wide: the tests that run inputs take turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A few thousand inputs per target (well under a second each in release): no failure, and both typed
/// errors and accepts occur, so the mutations neither leave every input valid nor break every one.
#[test]
fn every_target_runs_clean() {
    let _turn = serial();
    run::quiet_panics();
    for t in target::all() {
        let tally = run::run_target(t, 11, Budget::Inputs(3000), SLOW);
        assert_eq!(tally.inputs, 3000, "{}", tally.line());
        assert_eq!(tally.failed(), 0, "{}\n{:?}", tally.line(), tally.failures);
        assert_eq!(tally.rejected + tally.accepted, 3000);
        assert!(tally.rejected >= 300 && tally.accepted >= 30, "{}", tally.line());
        assert!(tally.max_alloc <= alloc::cap());
    }
}

/// Input `i` depends only on (target, seed, i): a replay regenerates it bit for bit, other seeds differ.
#[test]
fn inputs_are_reproducible_from_seed_and_index() {
    for t in target::all() {
        let a: Vec<Vec<u8>> = (0..50).map(|i| run::input(t, 5, i)).collect();
        let b: Vec<Vec<u8>> = (0..50).rev().map(|i| run::input(t, 5, i)).rev().collect();
        let c: Vec<Vec<u8>> = (0..50).map(|i| run::input(t, 6, i)).collect();
        assert_eq!(a, b, "{}", t.name());
        assert_ne!(a, c, "{}", t.name());
        assert_eq!(target::by_name(t.name()).map(|u| u.name()), Some(t.name()));
    }
}

/// A deliberately broken target: input byte 0 selects a panic, a 1 GiB fallible allocation (refused by the
/// cap, then failing gracefully), an untyped error, a broken contract, a 15 ms sleep (slower than the
/// 10 ms threshold the test sets), a typed error or an accept.
struct Broken;

impl Target for Broken {
    fn name(&self) -> &'static str {
        "broken"
    }
    fn generate(&self, rng: &mut ChaCha8Rng) -> Vec<u8> {
        vec![rng.random_range(0..7)]
    }
    fn check(&self, input: &[u8]) -> TargetVerdict {
        match input[0] {
            0 => panic!("broken target panics"),
            1 => {
                let mut v: Vec<u8> = Vec::new();
                match v.try_reserve(1 << 30) {
                    Ok(()) => TargetVerdict::Accepted,
                    Err(e) => TargetVerdict::Rejected(e.to_string()),
                }
            }
            2 => TargetVerdict::Untyped("exit 1".into()),
            3 => TargetVerdict::Contract("shape [2] with 3 values".into()),
            4 => {
                std::thread::sleep(Duration::from_millis(15));
                TargetVerdict::Accepted
            }
            5 => TargetVerdict::Rejected("typed".into()),
            _ => TargetVerdict::Accepted,
        }
    }
}

#[test]
fn the_driver_counts_each_failure_class() {
    let _turn = serial();
    run::quiet_panics();
    let tally = run::run_target(&Broken, 3, Budget::Inputs(300), Duration::from_millis(10));
    let kinds = |k: FailureKind| tally.failures.iter().filter(|f| f.kind == k).count();
    assert!(tally.panics > 0 && tally.large_allocations > 0 && tally.untyped > 0 && tally.contract > 0);
    // every sleeping input is slow (other inputs may be too, on a loaded machine)
    let sleepers = (0..300).filter(|&i| run::input(&Broken, 3, i)[0] == 4).count() as u64;
    assert!(sleepers > 0 && tally.hangs >= sleepers, "{}", tally.line());
    // the refused allocation failed gracefully, so that input also counts as a typed error
    assert_eq!(
        tally.inputs,
        tally.rejected + tally.accepted + tally.panics + tally.untyped + tally.contract
    );
    assert_eq!(
        tally.failed(),
        tally.panics + tally.hangs + tally.large_allocations + tally.untyped + tally.contract
    );
    assert_eq!(tally.failures.len(), run::KEPT_FAILURES);
    assert!(kinds(FailureKind::Panic) > 0);
    // each kept failure replays to the same input
    for f in &tally.failures {
        let bytes = run::input(&Broken, 3, f.index);
        let again = run::run_one(&Broken, 3, f.index, &bytes);
        match f.kind {
            FailureKind::Panic => {
                assert!(again
                    .outcome
                    .as_ref()
                    .is_err_and(|m| m.contains("broken target panics")))
            }
            FailureKind::LargeAllocation => assert_eq!(again.refused_alloc, 1 << 30),
            FailureKind::Untyped => assert!(matches!(again.outcome, Ok(TargetVerdict::Untyped(_)))),
            FailureKind::Contract => assert!(matches!(again.outcome, Ok(TargetVerdict::Contract(_)))),
            FailureKind::Hang => assert!(f.detail.starts_with("took")),
        }
    }
    // a time budget stops
    let timed = run::run_target(&Broken, 3, Budget::Time(Duration::from_millis(50)), SLOW);
    assert!(timed.inputs > 0 && timed.wall < Duration::from_secs(5));
}
