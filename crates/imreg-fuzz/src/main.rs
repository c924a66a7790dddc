//! `imreg-fuzz`: runs the fuzz targets within a budget and prints one summary line per target; exits 1 if
//! any input panicked, was slow, allocated above the cap or gave an untyped error (each listed with its
//! `--replay`), 3 if one input hung past the watchdog's limit. See `docs/fuzzing.md`.
use clap::Parser;
use imreg_fuzz::alloc::{self, CappedAlloc};
use imreg_fuzz::run::{self, Budget, Tally};
use imreg_fuzz::target::{self, TargetVerdict};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: CappedAlloc = CappedAlloc;

/// Structure-aware fuzzing of imreg's loaders and config parser.
#[derive(Parser, Debug)]
#[command(name = "imreg-fuzz")]
struct Args {
    /// Wall-clock budget in seconds, shared equally by the targets.
    #[arg(long, conflicts_with = "inputs")]
    seconds: Option<f64>,
    /// Number of inputs, shared equally by the targets (the default budget is 60 seconds).
    #[arg(long)]
    inputs: Option<u64>,
    /// Master seed of the ChaCha streams.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Targets to run, comma-separated (default: all): npy, idx-images, idx-labels, cifar10, safetensors, config.
    #[arg(long, value_delimiter = ',')]
    formats: Vec<String>,
    /// An input slower than this many milliseconds counts as a hang.
    #[arg(long, default_value_t = 1000)]
    slow_ms: u64,
    /// An input running longer than this many seconds ends the process (exit 3) with its replay.
    #[arg(long, default_value_t = 60)]
    watchdog_secs: u64,
    /// Cap on a single allocation, in MiB: a larger request is recorded and refused.
    #[arg(long, default_value_t = 256)]
    alloc_cap_mib: usize,
    /// Replays one input, `target:seed:index`, printing its verdict, time and largest allocation.
    #[arg(long)]
    replay: Option<String>,
    /// With `--replay`: also writes the input's bytes to this file.
    #[arg(long, requires = "replay")]
    dump: Option<std::path::PathBuf>,
}

fn replay(spec: &str, dump: Option<&std::path::Path>) -> Result<bool, String> {
    let usage = || format!("--replay {spec:?}: expected target:seed:index");
    let mut parts = spec.split(':');
    let (Some(name), Some(seed), Some(index), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(usage());
    };
    let t = target::by_name(name).ok_or_else(|| format!("unknown target {name:?}"))?;
    let seed: u64 = seed.parse().map_err(|_| usage())?;
    let index: u64 = index.parse().map_err(|_| usage())?;
    let bytes = run::input(t, seed, index);
    if let Some(path) = dump {
        std::fs::write(path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let r = run::run_one(t, seed, index, &bytes);
    println!("input: {} bytes", bytes.len());
    if t.is_config() {
        println!("---\n{}\n---", String::from_utf8_lossy(&bytes));
    }
    println!(
        "time {:.3} ms, largest allocation {} bytes, refused {} bytes",
        r.elapsed.as_secs_f64() * 1e3,
        r.peak_alloc,
        r.refused_alloc
    );
    let ok = match &r.outcome {
        Ok(TargetVerdict::Accepted) => {
            println!("accepted");
            true
        }
        Ok(TargetVerdict::Rejected(m)) => {
            println!("typed error: {m}");
            true
        }
        Ok(TargetVerdict::Untyped(m)) => {
            println!("UNTYPED error: {m}");
            false
        }
        Ok(TargetVerdict::Contract(m)) => {
            println!("CONTRACT broken: {m}");
            false
        }
        Err(m) => {
            println!("PANIC: {m}");
            false
        }
    };
    Ok(ok && r.refused_alloc == 0 && r.peak_alloc <= alloc::cap())
}

fn report(tallies: &[Tally], seed: u64, config: bool) -> u64 {
    let group: Vec<&Tally> = tallies.iter().filter(|t| t.is_config == config).collect();
    if group.is_empty() {
        return 0;
    }
    println!(
        "{}",
        if config {
            "-- config parser and validator (imreg-cli)"
        } else {
            "-- loaders (imreg-objective)"
        }
    );
    for t in &group {
        println!("{}", t.line());
    }
    let failed: u64 = group.iter().map(|t| t.failed()).sum();
    for t in &group {
        for f in &t.failures {
            println!(
                "  {:?} --replay {}:{seed}:{}: {}",
                f.kind,
                t.target,
                f.index,
                f.detail.replace('\n', " | ")
            );
        }
    }
    println!(
        "   {}: {} inputs, {failed} failures",
        if config { "config" } else { "loaders" },
        group.iter().map(|t| t.inputs).sum::<u64>()
    );
    failed
}

fn main() -> ExitCode {
    let args = Args::parse();
    alloc::set_cap(args.alloc_cap_mib << 20);
    run::quiet_panics();
    if let Some(spec) = &args.replay {
        return match replay(spec, args.dump.as_deref()) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("imreg-fuzz: {e}");
                ExitCode::from(2)
            }
        };
    }
    let mut targets = Vec::new();
    for name in &args.formats {
        match target::by_name(name) {
            Some(t) => targets.push(t),
            None => {
                eprintln!(
                    "imreg-fuzz: unknown target {name:?} (known: {})",
                    target::TARGET_NAMES.join(", ")
                );
                return ExitCode::from(2);
            }
        }
    }
    if targets.is_empty() {
        targets = target::all().to_vec();
    }
    let k = targets.len() as u64;
    let budget = |i: u64| match (args.inputs, args.seconds) {
        (Some(n), _) => Budget::Inputs(n / k + u64::from(i < n % k)),
        (None, s) => Budget::Time(Duration::from_secs_f64(s.unwrap_or(60.0).max(0.0) / k as f64)),
    };
    run::spawn_watchdog(Duration::from_secs(args.watchdog_secs));
    println!(
        "imreg-fuzz: seed {}, {} targets, slow > {} ms, allocation cap {} MiB",
        args.seed,
        targets.len(),
        args.slow_ms,
        args.alloc_cap_mib
    );
    let start = Instant::now();
    let tallies: Vec<Tally> = targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            run::run_target(
                *t,
                args.seed,
                budget(i as u64),
                Duration::from_millis(args.slow_ms),
            )
        })
        .collect();
    let failed = report(&tallies, args.seed, false) + report(&tallies, args.seed, true);
    println!(
        "total: {} inputs in {:.1} s, {failed} failures",
        tallies.iter().map(|t| t.inputs).sum::<u64>(),
        start.elapsed().as_secs_f64()
    );
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
