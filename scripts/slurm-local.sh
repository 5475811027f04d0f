#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, to test `snakemake --profile slurm` for real:
# Debian's slurm-wlm (slurmctld + slurmd) authenticated by munge, one partition "debug" with this
# node's CPUs, 90% of its memory and one fake GPU (a gres backed by /dev/null, so GPU requests
# schedule). Needs root; installs the packages with apt-get when they are missing.
#
#   scripts/slurm-local.sh start    install if needed, configure, start, wait until the node is idle
#   scripts/slurm-local.sh status   exit 0 when the daemons run and the node answers
#   scripts/slurm-local.sh stop     stop the daemons (by the pids in their pid files), remove the config
#
# State, logs and pid files go to $SLURM_LOCAL_DIR (default /var/tmp/slurm-local). The config must be
# /etc/slurm/slurm.conf: the jobs' srun reads that path only (Snakemake's jobstep drops SLURM_CONF).
# There is no slurmdbd, so no sacct: use `--slurm-status-command squeue`. Finished jobs stay in
# squeue for an hour (MinJobAge), long enough to check them.
set -euo pipefail

STATE=${SLURM_LOCAL_DIR:-/var/tmp/slurm-local}
CONF=/etc/slurm/slurm.conf
MARK="# written by scripts/slurm-local.sh"
SOCKET=$STATE/munge/munge.socket.2
NODE=$(hostname -s)
PIDS=("$STATE/slurmd.pid" "$STATE/slurmctld.pid" "$STATE/munge/munged.pid")

install() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && return
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

configure() {
    if [[ -e $CONF ]] && ! grep -qxF "$MARK" "$CONF"; then
        echo "error: $CONF exists and is not this script's; leaving it alone" >&2
        return 1
    fi
    [[ -s /etc/munge/munge.key ]] || runuser -u munge -- mungekey --create
    mkdir -p "$STATE"/{state,spool,log,munge} /etc/slurm
    chown -R slurm:slurm "$STATE"/{state,spool,log}
    chown munge:munge "$STATE/munge"
    chmod 711 "$STATE/munge"  # slurm's clients must reach the socket in there
    local memory
    memory=$(awk '/^MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    cat >"$CONF" <<EOF
$MARK
ClusterName=local
SlurmctldHost=$NODE
SlurmUser=slurm
AuthType=auth/munge
AuthInfo=socket=$SOCKET
CredType=cred/munge
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
MinJobAge=3600
ReturnToService=2
SchedulerType=sched/backfill
GresTypes=gpu
NodeName=$NODE CPUs=$(nproc) RealMemory=$memory Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    printf '%s\nAutoDetect=off\nNodeName=%s Name=gpu File=/dev/null\n' "$MARK" "$NODE" >/etc/slurm/gres.conf
}

alive() {
    local pidfile
    for pidfile in "${PIDS[@]}"; do
        [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null || return 1
    done
}

node_state() {
    sinfo --noheader --nodes "$NODE" --format %t 2>/dev/null
}

status() {
    alive && [[ -n $(node_state) ]] && sinfo
}

start() {
    if alive; then
        echo "SLURM is already running"
        return
    fi
    install
    configure
    # The daemons must not inherit the lock (fd 9), nor keep the caller's output open.
    runuser -u munge -- /usr/sbin/munged --socket="$SOCKET" --pid-file="$STATE/munge/munged.pid" \
        --log-file="$STATE/munge/munged.log" --seed-file="$STATE/munge/munged.seed" </dev/null >/dev/null 2>&1 9>&-
    /usr/sbin/slurmctld -c </dev/null >/dev/null 2>&1 9>&-  # -c: a clean slate, no jobs from an earlier start
    /usr/sbin/slurmd </dev/null >/dev/null 2>&1 9>&-
    for _ in $(seq 60); do
        if [[ $(node_state) =~ ^(idle|mix|alloc) ]]; then
            sinfo
            return
        fi
        sleep 1
    done
    echo "error: node $NODE did not come up; see $STATE/log" >&2
    return 1
}

stop() {
    local pidfile pid
    for pidfile in "${PIDS[@]}"; do
        [[ -s $pidfile ]] || continue
        pid=$(cat "$pidfile")
        if kill "$pid" 2>/dev/null; then
            for _ in $(seq 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.2
            done
        fi
        rm -f "$pidfile"
    done
    # Without a controller, a slurm.conf left behind makes every SLURM client (and so every
    # `snakemake`, whose SLURM plugin asks `scontrol` at start-up) wait ~10 s for a timeout.
    local conf
    for conf in "$CONF" /etc/slurm/gres.conf; do
        if [[ -e $conf ]] && grep -qxF "$MARK" "$conf"; then rm -f "$conf"; fi
    done
}

case ${1:-} in
start | stop | status)
    if [[ $EUID -ne 0 ]]; then
        echo "error: needs root (daemons, /etc/slurm, apt-get)" >&2
        exit 1
    fi
    mkdir -p "$STATE"
    exec 9>"$STATE/lock"
    flock 9  # one start or stop at a time
    "$1"
    ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
