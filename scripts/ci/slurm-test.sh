#!/usr/bin/env bash
# A sweep on a real single-node Slurm equals the same sweep run locally, bitwise, even when one array task
# is requeued and another cancelled in the middle of a run and the sweep is resubmitted.
#
#  1. build imreg; start Slurm (scripts/ci/slurm-setup.sh, as root or through `sudo -n`);
#  2. expand scripts/ci/slurm-sweep.toml (6 runs) and run it locally with `sweep run` into A;
#  3. submit it as a 3-task job array with `imreg sweep submit --sbatch` into B (a path with a space);
#  4. once task 1 is running a run (its lock held, its temporary folder written), cancel it with scancel;
#     once task 0 is running its second run, have Slurm requeue it (scontrol requeue): the restarted task
#     must skip the first run and redo the second;
#  5. wait for the array; `sweep status` must report the interrupted and the missing run (exit 1) and
#     `sweep collect` must refuse (exit 1);
#  6. resubmit the same array, wait; `sweep status` must report every run done (exit 0);
#  7. collect A and B and compare: the summaries and every file of every run folder with cmp, every run
#     present exactly once, no lock, error marker or temporary folder left.
# Slurm is stopped at exit. Any failure, including Slurm not starting, exits non-zero with a message.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
export IMREG_SLURM_DIR=${IMREG_SLURM_DIR:-/tmp/imreg-slurm}
work=$(mktemp -d /tmp/imreg-slurm-test.XXXXXX)
started=$SECONDS

say() { echo "slurm-test [$((SECONDS - started)) s]: $*"; }
fail() {
    echo "slurm-test: FAILED: $*" >&2
    for log in "$IMREG_SLURM_DIR"/slurmctld.log "$IMREG_SLURM_DIR"/slurmd.log "$work/B out"/slurm/*; do
        if [[ -f $log ]]; then
            echo "---- $log (last 20 lines)" >&2
            tail -n 20 "$log" >&2
        fi
    done
    echo "slurm-test: the sweep folders are kept in $work" >&2
    exit 1
}
as_root() {
    if [[ $(id -u) == 0 ]]; then
        "$@"
    elif sudo -n true 2>/dev/null; then
        sudo -n env IMREG_SLURM_DIR="$IMREG_SLURM_DIR" "$@"
    else
        fail "starting Slurm needs root (or password-less sudo): cannot run $*"
    fi
}
# Runs imreg and checks its exit code: expect CODE imreg ARGS...
expect() {
    local want=$1 got=0
    shift
    "$imreg" "$@" || got=$?
    [[ $got == "$want" ]] || fail "imreg $* exited $got, expected $want"
}
# Waits until job $1 has left the queue (at most $2 seconds).
wait_job() {
    local deadline=$((SECONDS + $2))
    while [[ -n $(squeue -h -j "$1" -o %i 2>/dev/null) ]]; do
        ((SECONDS < deadline)) || fail "job $1 still queued after $2 s: $(squeue -j "$1" 2>&1)"
        sleep 1
    done
}
# The state of job (or array task) $1 as the controller remembers it (MinJobAge keeps finished jobs).
job_state() {
    scontrol -o show job "$1" | grep -o 'JobState=[A-Z_]*' | head -n 1 | cut -d= -f2
}

say "building imreg"
(cd "$repo" && cargo build --release --quiet --bin imreg)
imreg=${CARGO_TARGET_DIR:-$repo/target}/release/imreg
imreg=$(cd "$(dirname "$imreg")" && pwd)/imreg
[[ -x $imreg ]] || fail "no binary at $imreg"

say "starting Slurm (state in $IMREG_SLURM_DIR)"
as_root "$repo/scripts/ci/slurm-stop.sh" --purge
trap 'as_root "$repo/scripts/ci/slurm-stop.sh" >/dev/null' EXIT
as_root "$repo/scripts/ci/slurm-setup.sh" || fail "Slurm did not start (see the logs above)"
# shellcheck disable=SC1091
source "$IMREG_SLURM_DIR/env"
command -v sbatch >/dev/null || fail "sbatch not found after setup"

cd "$work"
"$imreg" sweep expand "$repo/scripts/ci/slurm-sweep.toml" >manifest.jsonl
runs=$(wc -l <manifest.jsonl)
[[ $runs == 6 ]] || fail "expected 6 runs in the manifest, got $runs"

say "local reference: sweep run into A"
expect 0 --quiet sweep run --manifest manifest.jsonl --out A --no-figures

B="$work/B out"
submit=(sweep submit --manifest manifest.jsonl --out "$B" --tasks 3 --cpus-per-task 1 --time 00:10:00
    --mem 500M --job-name imreg-ci --no-figures --sbatch)
say "submitting the job array into '$B'"
job=$("$imreg" "${submit[@]}") || fail "sweep submit --sbatch failed"
[[ $job =~ ^[0-9]+$ ]] || fail "sweep submit printed no job id: $job"
say "job $job; the script, $B/sweep.sbatch:"
cat "$B/sweep.sbatch"

# Waits until array task $1 is RUNNING and computing run $2 (its lock held, its temporary folder written,
# `sweep status` saying running).
wait_computing() {
    local deadline=$((SECONDS + 120)) status
    until [[ $(job_state "$1" 2>/dev/null) == RUNNING && -f $B/.lock-$2 ]] &&
        compgen -G "$B/.tmp-$2-*/metrics.csv" >/dev/null; do
        ((SECONDS < deadline)) || fail "task $1 never started $2 (state $(job_state "$1" 2>&1))"
        sleep 0.2
    done
    status=$("$imreg" sweep status --out "$B" || true)
    grep -q "^running  $2 " <<<"$status" || fail "status does not show $2 running:"$'\n'"$status"
    sleep 0.2
}

# Task 1 runs shard 1/3: run-0001, then run-0004. Cancel it while run-0001 is being computed.
wait_computing "${job}_1" run-0001
scancel "${job}_1"
say "cancelled task ${job}_1 while it was running run-0001"
# Task 0 runs run-0000, then run-0003. Have Slurm requeue it while run-0003 is being computed: the task
# starts again (after the credential lifetime, AuthInfo=cred_expire) and must skip run-0000.
[[ $(scontrol -o show job "${job}_0") == *" Requeue=1 "* ]] || fail "task ${job}_0 is not requeueable"
wait_computing "${job}_0" run-0003
[[ -f $B/run-0000/_COMPLETE ]] || fail "run-0000 not complete before run-0003 began"
scontrol requeue "${job}_0"
say "requeued task ${job}_0 while it was running run-0003"
wait_job "$job" 300
state=$(job_state "${job}_1")
[[ $state == CANCELLED ]] || fail "task ${job}_1 ended $state, expected CANCELLED"
for task in 0 2; do
    state=$(job_state "${job}_$task")
    [[ $state == COMPLETED ]] || fail "task ${job}_$task ended $state, expected COMPLETED"
done
[[ $(scontrol -o show job "${job}_0") == *" Restarts=1 "* ]] || fail "task ${job}_0 was not restarted once"
grep -q 'DUE TO JOB REQUEUE' "$B/slurm/imreg-ci-${job}_0.err" || fail "no requeue in task ${job}_0's log"
grep -q 'ran 1, skipped 1 finished' "$B/slurm/imreg-ci-${job}_0.out" ||
    fail "requeued task ${job}_0 did not skip run-0000 and redo run-0003"
say "task ${job}_0 restarted once: $(cat "$B/slurm/imreg-ci-${job}_0.out")"
[[ ! -f $B/run-0001/_COMPLETE ]] || fail "run-0001 completed although its task was cancelled"
compgen -G "$B/.tmp-run-0001-*" >/dev/null || fail "the cancelled run left no temporary folder"

say "status and collect of the incomplete sweep"
got=0
status=$("$imreg" sweep status --out "$B") || got=$?
echo "$status"
[[ $got == 1 ]] || fail "sweep status of an incomplete sweep exited $got, expected 1"
head -n 1 <<<"$status" | grep -qx '6 runs: 4 done, 0 running, 1 failed, 1 missing' ||
    fail "unexpected status counts"
grep -q '^failed   run-0001  interrupted' <<<"$status" || fail "run-0001 not reported as interrupted"
grep -q '^missing  run-0004$' <<<"$status" || fail "run-0004 not reported as missing"
expect 1 --quiet sweep collect --out "$B"
[[ ! -e $B/summary.csv ]] || fail "collect wrote a summary of an incomplete sweep"

say "resubmitting the same array"
job2=$("$imreg" "${submit[@]}") || fail "the second sweep submit --sbatch failed"
wait_job "$job2" 300
for task in 0 1 2; do
    state=$(job_state "${job2}_$task")
    [[ $state == COMPLETED ]] || fail "task ${job2}_$task ended $state, expected COMPLETED"
done
grep -q 'ran 0, skipped 2 finished' "$B/slurm/imreg-ci-${job2}_0.out" ||
    fail "resubmitted task 0 did not skip its finished runs"
grep -q 'ran 2, skipped 0 finished' "$B/slurm/imreg-ci-${job2}_1.out" ||
    fail "resubmitted task 1 did not redo run-0001 and run-0004"
expect 0 sweep status --out "$B"

say "collecting A and B and comparing them bitwise"
expect 0 --quiet sweep collect --out A
expect 0 --quiet sweep collect --out "$B"
ids=$(jq -r .id manifest.jsonl)
[[ $(cut -d, -f1 A/summary.csv | tail -n +2) == "$ids" ]] || fail "A/summary.csv does not list each run once"
cmp A/summary.csv "$B/summary.csv" || fail "summary.csv differs"
cmp A/summary.jsonl "$B/summary.jsonl" || fail "summary.jsonl differs"
files=0
for id in $ids; do
    diff -rq "A/$id" "$B/$id" || fail "run folder $id differs"
    files=$((files + $(find "A/$id" -type f | wc -l)))
done
[[ $(find "$B" -maxdepth 1 -name 'run-*' | wc -l) == "$runs" ]] || fail "B does not hold exactly $runs runs"
leftovers=$(find "$B" -maxdepth 1 \( -name '.lock-*' -o -name '.error-*' -o -name '.tmp-*' \) | wc -l)
[[ $leftovers == 0 ]] || fail "$leftovers locks, error markers or temporary folders left in $B"
say "PASSED: $runs runs ($files files in their folders) and both summaries bitwise equal to the local run"
cd /
rm -rf "$work"
