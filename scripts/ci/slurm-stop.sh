#!/usr/bin/env bash
# Stops the daemons scripts/ci/slurm-setup.sh started (by the pid files in $IMREG_SLURM_DIR) and waits for
# them to exit. `--purge` also removes what setup wrote in $IMREG_SLURM_DIR (configuration, state, logs).
# Safe to run twice.
set -uo pipefail
dir=${IMREG_SLURM_DIR:-/tmp/imreg-slurm}
stop() { # name pidfile
    local pidfile=$2 pid
    [[ -f $pidfile ]] || return 0
    pid=$(<"$pidfile")
    if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
        echo "slurm-stop: stopped $1 ($pid)"
    fi
    rm -f "$pidfile"
}
stop slurmd "$dir/slurmd.pid"
stop slurmctld "$dir/slurmctld.pid"
stop munged "$dir/munged.pid"
if [[ ${1:-} == --purge && -d $dir ]]; then
    # Only what slurm-setup.sh wrote there.
    rm -rf "$dir/state" "$dir/spool"
    rm -f "$dir/slurm.conf" "$dir/env" "$dir"/slurmctld.log "$dir"/slurmd.log "$dir"/munged.pid
    rmdir "$dir" 2>/dev/null || echo "slurm-stop: left $dir (it holds files slurm-setup.sh did not write)"
fi
