#!/usr/bin/env bash
# Stop the single-node SLURM cluster that scripts/slurm/start.sh started.
#
# Order matters: cancel every job and wait until squeue is empty (else a job's slurmstepd
# outlives the daemons, retrying its completion message forever), then stop slurmd,
# slurmctld, and munged last. Waits until each daemon is really gone (not a zombie), so a
# later start.sh works. Idempotent: stopping a stopped cluster is fine.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"
export PATH="$PATH:/usr/sbin:/sbin"
export SLURM_CONF="$SLURM_CONF_FILE"

if alive "$(pid_from "$CTLD_PID")" && [ -r "$SLURM_CONF_FILE" ]; then
    jobs="$(squeue -h -o %F 2>/dev/null | sort -u || true)"
    if [ -n "$jobs" ]; then
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null || true
    fi
    for ((i = 0; i < 300; i++)); do
        [ -z "$(squeue -h -o %i 2>/dev/null || echo unknown)" ] && break
        sleep 0.1
    done
    if [ -n "$(squeue -h -o %i 2>/dev/null || true)" ]; then
        echo "stop.sh: jobs still queued after 30 s:" >&2
        squeue >&2 || true
    fi
fi

stop_pid slurmd "$SLURMD_PID"
stop_pid slurmctld "$CTLD_PID"

# Job steps of this node that outlived slurmd (only possible after the wait above failed).
for dir in /proc/[0-9]*; do
    pid="${dir#/proc/}"
    if [ "$(cat "$dir/comm" 2>/dev/null || true)" = slurmstepd ] && alive "$pid"; then
        echo "stop.sh: killing leftover slurmstepd $pid" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
done

stop_pid munged "$MUNGE_PID"
echo "# SLURM stopped ($STATE_DIR)" >&2
