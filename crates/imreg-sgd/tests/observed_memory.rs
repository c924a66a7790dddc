//! An observed run keeps none of its recorded iterates: recording every step of 2·10⁵ steps, the bytes the
//! process holds at once (counted by this test binary's allocator) stay within a fixed bound, while the
//! collecting [`run`] of the same trajectory holds at least one vector per recorded step. Both see the same
//! iterates. One test in this binary, so no other test allocates while it measures.
use imreg_objective::models::LogCoshQuartic;
use imreg_objective::Objective;
use imreg_objective::Remainder;
use imreg_sgd::observe::{Cadence, Control, Scheduled, StepView};
use imreg_sgd::sampler::Sampler;
use imreg_sgd::train::{train, Noise, Optimizer, RunOutcome, Seeds, TrainOptions, Update};
use imreg_sgd::trajectory::run;
use imreg_sgd::SgdError;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

/// The system allocator, counting the bytes live now and the most live since the last [`reset_peak`].
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let live = LIVE.fetch_add(layout.size(), SeqCst) + layout.size();
            PEAK.fetch_max(live, SeqCst);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), SeqCst);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Live bytes now; the peak starts again from here.
fn reset_peak() -> usize {
    let live = LIVE.load(SeqCst);
    PEAK.store(live, SeqCst);
    live
}

#[test]
fn recording_every_step_holds_no_iterates() {
    const STEPS: usize = 200_000;
    let obj = LogCoshQuartic::random(8, 2, 5).unwrap();
    let method = Optimizer {
        sampler: Sampler::reshuffling(3, Remainder::SmallerLastBatch),
        update: Update::HeavyBall { momentum: 0.5 },
        noise: Noise::Isotropic { sigma: 0.01 },
        ..Default::default()
    };
    let opts = TrainOptions {
        lr: 0.05,
        steps: STEPS,
        seeds: Seeds::from_seed(3),
        ..Default::default()
    };
    let theta0 = [0.4, -0.3];

    // Observed: count the calls, check the steps arrive in order, fold the iterates into a checksum.
    let mut calls = 0usize;
    let mut checksum = 0.0f64;
    let before = reset_peak();
    let mut observe = |at: &StepView<'_, dyn Objective>| -> Result<Control, SgdError> {
        assert_eq!(at.step, calls);
        calls += 1;
        checksum += at.theta[0] - 2.0 * at.theta[1];
        Ok(Control::Continue)
    };
    let end = train(
        &obj as &dyn Objective,
        &theta0,
        &method,
        &opts,
        &mut [Scheduled::new(Cadence::Every(1), &mut observe)],
    )
    .unwrap();
    let observed_growth = PEAK.load(SeqCst) - before;
    assert_eq!(end.outcome, RunOutcome::Completed);
    assert_eq!(calls, STEPS + 1);
    assert_eq!(end.gradient_calls, STEPS);
    // A few vectors of p = 2, the epoch's batches and the objective's scratch: far below one 16-byte
    // iterate per recorded step (3.2 MB).
    assert!(
        observed_growth < 64 << 10,
        "observed run held {observed_growth} bytes"
    );

    // Collected: the same trajectory, every iterate kept.
    let before = reset_peak();
    let tr = run(&obj, &theta0, &method, &opts, Cadence::Every(1)).unwrap();
    let collected_growth = PEAK.load(SeqCst) - before;
    assert!(
        collected_growth > STEPS * 16,
        "collecting run held only {collected_growth} bytes"
    );
    assert_eq!(tr.theta, end.theta);
    assert_eq!(tr.recorded_steps.len(), STEPS + 1);
    let collected: f64 = tr.iterates.iter().map(|t| t[0] - 2.0 * t[1]).sum();
    assert_eq!(collected, checksum);
}
