#!/usr/bin/env bash
# A single-node Slurm on this machine, for CI: installs Debian's slurm-wlm and munge (idempotent), writes a
# minimal slurm.conf for this host, starts munged, slurmctld and slurmd, and waits until the node is idle.
# Needs root. Made for containers and VMs without systemd: no cgroup plugins (proctrack/linuxproc,
# task/none), no accounting. Every file of the cluster is under $IMREG_SLURM_DIR (default /tmp/imreg-slurm);
# clients find it with `export SLURM_CONF=$IMREG_SLURM_DIR/slurm.conf` (written to $IMREG_SLURM_DIR/env).
# Stop everything with scripts/ci/slurm-stop.sh. Exits non-zero, printing the daemons' logs, if Slurm does
# not come up.
set -euo pipefail
dir=${IMREG_SLURM_DIR:-/tmp/imreg-slurm}
timeout_s=${IMREG_SLURM_TIMEOUT:-60}

fail() {
    echo "slurm-setup: $*" >&2
    for log in /var/log/munge/munged.log "$dir"/slurmctld.log "$dir"/slurmd.log; do
        if [[ -f $log ]]; then
            echo "---- $log (last 40 lines)" >&2
            tail -n 40 "$log" >&2
        fi
    done
    exit 1
}

[[ $(id -u) == 0 ]] || fail "must run as root (it installs packages and starts the Slurm daemons)"

need=()
for cmd in munged mungekey slurmctld slurmd sbatch sinfo squeue scancel; do
    command -v "$cmd" >/dev/null || need=(slurm-wlm munge)
done
if ((${#need[@]})); then
    echo "slurm-setup: installing ${need[*]}"
    command -v apt-get >/dev/null || fail "slurm-wlm and munge are missing and there is no apt-get to install them"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || fail "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
        fail "apt-get could not install ${need[*]}"
fi

if [[ -f $dir/slurmctld.pid || -f $dir/slurmd.pid ]]; then
    fail "$dir holds a running cluster's pid files: run scripts/ci/slurm-stop.sh first"
fi
# A fresh cluster: no jobs recovered from an earlier one.
rm -rf "$dir/state" "$dir/spool"
mkdir -p "$dir/state" "$dir/spool"

# munge: the key (created once) and the daemon, run as the munge user on its default socket.
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    install -d -o munge -g munge -m 0700 /etc/munge
    mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
fi
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    echo "slurm-setup: using the munged already running (it is not ours to stop)"
else
    runuser -u munge -- munged --pid-file=/run/munge/munged.pid --log-file=/var/log/munge/munged.log ||
        fail "munged did not start"
    cp /run/munge/munged.pid "$dir/munged.pid"
fi
munge -n | unmunge >/dev/null || fail "munge cannot encode and decode a credential"

# slurm.conf: this host as controller and only node, with the CPUs and memory slurmd detects.
host=$(hostname -s)
node=$(slurmd -C | head -n 1)
[[ $node == "NodeName=$host "* ]] || fail "slurmd -C did not describe this host: $node"
cat >"$dir/slurm.conf" <<CONF
# Written by scripts/ci/slurm-setup.sh: a single-node cluster for CI.
ClusterName=imreg-ci
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# A requeued job waits for the credential lifetime before it starts again (default 120 s).
AuthInfo=cred_expire=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No systemd and no delegated cgroups in a container: track processes through /proc, bind no tasks.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
# Cancelled tasks are killed quickly (SIGTERM, then SIGKILL after KillWait seconds).
KillWait=5
MinJobAge=300
$node
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
printf 'export SLURM_CONF=%q\n' "$dir/slurm.conf" >"$dir/env"
export SLURM_CONF=$dir/slurm.conf

slurmctld -f "$SLURM_CONF" || fail "slurmctld did not start"
slurmd -f "$SLURM_CONF" || fail "slurmd did not start"

deadline=$((SECONDS + timeout_s))
until [[ $(sinfo -h -n "$host" -o %t 2>/dev/null) == idle ]]; do
    ((SECONDS < deadline)) || fail "node $host not idle after ${timeout_s} s (sinfo: $(sinfo -h -o '%n %t' 2>&1))"
    sleep 1
done
echo "slurm-setup: node $host idle ($(sinfo -h -o '%c CPUs, %m MB' -n "$host")); SLURM_CONF=$SLURM_CONF"
