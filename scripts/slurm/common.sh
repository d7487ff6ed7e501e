# Shared helpers of scripts/slurm/{start,stop}.sh (sourced, not run).
# The cluster's whole state lives in one directory: $PYCREW_SLURM_DIR (default /tmp/pycrew-slurm).

STATE_DIR="${PYCREW_SLURM_DIR:-/tmp/pycrew-slurm}"
SLURM_CONF_FILE="$STATE_DIR/etc/slurm.conf"
MUNGE_DIR="$STATE_DIR/munge"
MUNGE_SOCKET="$MUNGE_DIR/munge.socket.2"
MUNGE_PID="$MUNGE_DIR/munged.pid"
CTLD_PID="$STATE_DIR/run/slurmctld.pid"
SLURMD_PID="$STATE_DIR/run/slurmd.pid"
NODE_NAME="$(hostname -s)"

# alive PID: true if PID exists and is neither a zombie nor dead.
alive() {
    local pid="$1" state
    [ -n "$pid" ] || return 1
    [ -r "/proc/$pid/stat" ] || return 1
    # Field 3 of /proc/PID/stat is the state; the command (field 2) may contain spaces.
    state="$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)"
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# pid_from FILE: the pid in a pid file, or nothing.
pid_from() {
    [ -r "$1" ] && tr -dc '0-9' <"$1" || true
}

# stop_pid NAME PIDFILE [SECONDS]: SIGTERM, wait, then SIGKILL; remove the pid file.
stop_pid() {
    local name="$1" file="$2" seconds="${3:-15}" pid i
    pid="$(pid_from "$file")"
    if alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < seconds * 10; i++)); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then
            echo "$name (pid $pid) did not stop in ${seconds}s: SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do
                alive "$pid" || break
                sleep 0.1
            done
        fi
    fi
    rm -f "$file"
}
