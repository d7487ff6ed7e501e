#!/usr/bin/env bash
# Start a single-node SLURM cluster for pycrew's tests, without systemd.
#
# Everything lives in $PYCREW_SLURM_DIR (default /tmp/pycrew-slurm): slurm.conf, its own
# munge key and munged socket, state, spool, logs and pid files. Nothing under /etc is
# changed. Idempotent: a healthy running cluster is left alone. Needs root (SlurmUser=root).
#
# Usage:  eval "$(scripts/slurm/start.sh)"     # sets SLURM_CONF in the calling shell
# Stop:   scripts/slurm/stop.sh
#
# Tunables (environment): PYCREW_SLURM_CPUS (16), PYCREW_SLURM_MEMORY_MB (4000),
# PYCREW_SLURM_MAX_ARRAY_SIZE (1001), PYCREW_SLURM_CTLD_PORT (6817),
# PYCREW_SLURM_D_PORT (6818).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"

CPUS="${PYCREW_SLURM_CPUS:-16}"
MEMORY_MB="${PYCREW_SLURM_MEMORY_MB:-4000}"
MAX_ARRAY_SIZE="${PYCREW_SLURM_MAX_ARRAY_SIZE:-1001}"
CTLD_PORT="${PYCREW_SLURM_CTLD_PORT:-6817}"
D_PORT="${PYCREW_SLURM_D_PORT:-6818}"

for cmd in slurmctld slurmd sbatch sinfo scontrol munged mungekey runuser; do
    if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
        echo "start.sh: $cmd not found; run scripts/slurm/install.sh first" >&2
        exit 1
    fi
done
export PATH="$PATH:/usr/sbin:/sbin"
export SLURM_CONF="$SLURM_CONF_FILE"

# Already up? Leave it alone.
if alive "$(pid_from "$MUNGE_PID")" && alive "$(pid_from "$CTLD_PID")" \
        && alive "$(pid_from "$SLURMD_PID")" && scontrol ping >/dev/null 2>&1; then
    echo "# SLURM already running in $STATE_DIR" >&2
    echo "export SLURM_CONF=$SLURM_CONF_FILE"
    exit 0
fi

# Leftovers of a half-started or crashed cluster: stop them, then start fresh.
stop_pid slurmd "$SLURMD_PID"
stop_pid slurmctld "$CTLD_PID"
stop_pid munged "$MUNGE_PID"
rm -rf "$STATE_DIR/ctld" "$STATE_DIR/spool" "$STATE_DIR/run" "$MUNGE_DIR"
mkdir -p "$STATE_DIR"/{etc,ctld,spool,run,log}
chmod 0755 "$STATE_DIR"

# munge: a private key and socket for this cluster; munged runs as user munge.
install -d -m 0755 -o munge -g munge "$MUNGE_DIR"
install -d -m 0700 -o munge -g munge "$MUNGE_DIR/private"
runuser -u munge -- mungekey --create --keyfile="$MUNGE_DIR/private/munge.key" >/dev/null
runuser -u munge -- munged \
    --socket="$MUNGE_SOCKET" \
    --key-file="$MUNGE_DIR/private/munge.key" \
    --pid-file="$MUNGE_PID" \
    --log-file="$MUNGE_DIR/private/munged.log" \
    --seed-file="$MUNGE_DIR/private/munged.seed"
for ((i = 0; i < 100; i++)); do
    [ -S "$MUNGE_SOCKET" ] && munge -S "$MUNGE_SOCKET" -n 2>/dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1 && break
    sleep 0.1
done
if ! munge -S "$MUNGE_SOCKET" -n | unmunge -S "$MUNGE_SOCKET" >/dev/null; then
    echo "start.sh: munged did not come up; see $MUNGE_DIR/private/munged.log" >&2
    exit 1
fi

cat >"$SLURM_CONF_FILE" <<CONF
# Written by pycrew scripts/slurm/start.sh: a single-node test cluster.
ClusterName=pycrew
SlurmctldHost=${NODE_NAME}(127.0.0.1)
SlurmctldPort=${CTLD_PORT}
SlurmdPort=${D_PORT}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=${MUNGE_SOCKET}
CredType=cred/munge
StateSaveLocation=${STATE_DIR}/ctld
SlurmdSpoolDir=${STATE_DIR}/spool
SlurmctldPidFile=${CTLD_PID}
SlurmdPidFile=${SLURMD_PID}
SlurmctldLogFile=${STATE_DIR}/log/slurmctld.log
SlurmdLogFile=${STATE_DIR}/log/slurmd.log
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=${STATE_DIR}/log/jobcomp.txt
JobAcctGatherType=jobacct_gather/none
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
ReturnToService=2
SlurmdParameters=config_overrides
MaxArraySize=${MAX_ARRAY_SIZE}
MinJobAge=10
KillWait=5
InactiveLimit=0
NodeName=${NODE_NAME} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${MEMORY_MB} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

slurmctld -i
slurmd -N "$NODE_NAME"

# Wait until the node is idle (usually < 2 s).
state=""
for ((i = 0; i < 300; i++)); do
    state="$(sinfo -h -N -n "$NODE_NAME" -o %T 2>/dev/null || true)"
    [ "$state" = idle ] && break
    sleep 0.1
done
if [ "$state" != idle ]; then
    echo "start.sh: node $NODE_NAME is '${state:-unknown}', not idle, after 30 s;" \
        "see $STATE_DIR/log/slurmctld.log and slurmd.log" >&2
    exit 1
fi
echo "# SLURM up in $STATE_DIR (node $NODE_NAME idle)" >&2
echo "export SLURM_CONF=$SLURM_CONF_FILE"
