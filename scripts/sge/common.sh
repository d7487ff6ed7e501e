# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts sourcing this
# Shared helpers of scripts/sge/{start,stop}.sh (sourced, not run).
#
# Son of Grid Engine from Debian keeps its cell in SGE_ROOT=/var/lib/gridengine (cell
# "default") and its spool in /var/spool/gridengine; the packages fix those paths. What the
# scripts write themselves (the configuration files they load with qconf, the client
# environment) lives in $PYCREW_SGE_DIR (default /tmp/pycrew-sge).

STATE_DIR="${PYCREW_SGE_DIR:-/tmp/pycrew-sge}"
ENV_FILE="$STATE_DIR/env.sh"
export SGE_ROOT=/var/lib/gridengine
export SGE_CELL=default
SPOOL=/var/spool/gridengine
HOST="$(hostname)"
# sge_execd names its spool directory $SPOOL/execd/<its own name>; with /etc/hosts mapping
# 127.0.0.1 to "localhost" first that is "localhost", not $HOST: use $SPOOL/execd/*.
export PATH="$PATH:/usr/sbin:/sbin"

# alive PID: true if PID exists and is neither a zombie nor dead.
alive() {
    local pid="$1" stat state
    [ -n "$pid" ] || return 1
    { read -r stat <"/proc/$pid/stat"; } 2>/dev/null || return 1
    # The state follows "pid (comm) "; the command may contain spaces and parentheses.
    state="${stat##*) }"
    state="${state%% *}"
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# pids_named NAME: the live (not zombie) processes running the Debian SGE binary NAME
# (/usr/sbin/NAME or /usr/lib/gridengine/NAME): this host's cell, whoever started it.
pids_named() {
    local dir pid exe comm
    for dir in /proc/[0-9]*; do
        pid="${dir#/proc/}"
        # (read, not cat: no process per /proc entry; a process may vanish meanwhile)
        { read -r comm <"$dir/comm"; } 2>/dev/null || continue
        [ "$comm" = "$1" ] || continue
        exe="$(readlink "$dir/exe" 2>/dev/null || true)"
        case "$exe" in
            "/usr/sbin/$1" | "/usr/lib/gridengine/$1") alive "$pid" && echo "$pid" ;;
        esac
    done
}

# wait_gone SECONDS PID...: wait until none of the PIDs is alive; false if some still are.
wait_gone() {
    local seconds="$1" i pid left
    shift
    for ((i = 0; i <= seconds * 10; i++)); do
        left=0
        for pid in "$@"; do
            if alive "$pid"; then left=1; fi
        done
        [ "$left" = 0 ] && return 0
        sleep 0.1
    done
    return 1
}

# stop_daemon NAME SECONDS: SIGTERM every live process of the SGE binary NAME, wait up to
# SECONDS, then SIGKILL what is left and wait for it to be gone.
stop_daemon() {
    local name="$1" seconds="$2" pids
    pids="$(pids_named "$name" | tr '\n' ' ')"
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    # shellcheck disable=SC2086
    if ! wait_gone "$seconds" $pids; then
        echo "SGE: $name (pids $pids) did not stop in ${seconds}s: SIGKILL" >&2
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        # shellcheck disable=SC2086
        wait_gone 5 $pids || echo "SGE: $name (pids $pids) survived SIGKILL" >&2
    fi
}

# kill_leftover_jobs: SIGKILL the process group of every job an sge_shepherd still runs,
# then the shepherds themselves (only needed when execd went away with jobs running).
kill_leftover_jobs() {
    local shepherds shepherd dir stat ppid pgid own_pgid children=""
    shepherds="$(pids_named sge_shepherd | tr '\n' ' ')"
    [ -n "$shepherds" ] || return 0
    read -r stat </proc/$$/stat
    read -r _ _ own_pgid _ <<<"${stat##*) }"
    for dir in /proc/[0-9]*; do
        { read -r stat <"$dir/stat"; } 2>/dev/null || continue
        # After "pid (comm) " come the state, the parent pid and the process group.
        read -r _ ppid pgid _ <<<"${stat##*) }"
        for shepherd in $shepherds; do
            if [ "$ppid" = "$shepherd" ]; then
                children+=" ${dir#/proc/}"
                # A job runs in its own process group; never signal ours (or group 0/1).
                if ((pgid > 1)) && [ "$pgid" != "$own_pgid" ]; then
                    echo "SGE: killing job process group $pgid left by sge_shepherd $shepherd" >&2
                    kill -KILL -- "-$pgid" 2>/dev/null || true
                else
                    kill -KILL "${dir#/proc/}" 2>/dev/null || true
                fi
            fi
        done
    done
    # shellcheck disable=SC2086
    kill -KILL $shepherds 2>/dev/null || true
    # shellcheck disable=SC2086
    wait_gone 5 $shepherds $children || echo "SGE: sge_shepherd or job processes survived SIGKILL: $shepherds$children" >&2
}

# jobs_left: how many jobs qstat lists for every user (nothing printed when qstat fails).
jobs_left() {
    local out
    out="$(qstat -u '*' 2>/dev/null)" || return 1
    # qstat prints a two-line header, then one line per job (array tasks may share a line).
    printf '%s\n' "$out" | awk 'NR > 2 && NF > 0' | wc -l
}

# delete_all_jobs SECONDS: qdel every job of every user and wait until qstat lists none.
# Needs a live sge_execd: a job on a host whose execd is gone stays in state "dr", and
# forcing it out (qdel -f) crashes sge_qmaster 8.1.9 ("got NULL element for JB_type").
delete_all_jobs() {
    local seconds="$1" i n
    n="$(jobs_left || echo unknown)"
    [ "$n" = 0 ] && return 0
    qdel -u '*' >/dev/null 2>&1 || true
    for ((i = 0; i < seconds * 10; i++)); do
        n="$(jobs_left || echo unknown)"
        [ "$n" = 0 ] && return 0
        sleep 0.1
    done
    echo "jobs still listed after ${seconds}s:" >&2
    qstat -u '*' >&2 || true
    return 1
}
