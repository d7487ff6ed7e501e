#!/usr/bin/env bash
# Start a single-host Son of Grid Engine cluster for pycrew's tests, without systemd.
#
# Starts sge_qmaster, configures the cell for tests (below), starts sge_execd and waits until
# queue all.q on this host accepts jobs. Uses Debian's cell (SGE_ROOT=/var/lib/gridengine,
# cell "default", spool /var/spool/gridengine, from scripts/sge/install.sh); the files it
# loads with qconf are kept in $PYCREW_SGE_DIR (default /tmp/pycrew-sge). Idempotent: a
# healthy running cluster is left alone; otherwise leftovers are stopped (also their jobs),
# the spool is initialized anew (no jobs, no configuration of an earlier run) and the
# cluster started afresh. Needs root.
#
# Configuration: host_aliases maps localhost to this host; this host is admin, submit and
# exec host; min_uid/min_gid 0 (CI runs as root); queue all.q with $PYCREW_SGE_SLOTS slots,
# load_thresholds NONE (a busy small machine must not alarm-suspend it) and PE "smp"
# (`qsub -pe smp N`); scheduler schedule_interval 0:0:1, flush_submit_sec 1,
# flush_finish_sec 1 (a job starts ~0.2 s after qsub instead of up to 15 s).
#
# Usage:  eval "$(scripts/sge/start.sh)"     # exports SGE_ROOT, SGE_CELL and the ports
# Stop:   scripts/sge/stop.sh
#
# Tunables (environment): PYCREW_SGE_SLOTS (16), PYCREW_SGE_QMASTER_PORT (6444),
# PYCREW_SGE_EXECD_PORT (6445), PYCREW_SGE_DIR (/tmp/pycrew-sge).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$here/common.sh"

SLOTS="${PYCREW_SGE_SLOTS:-16}"
export SGE_QMASTER_PORT="${PYCREW_SGE_QMASTER_PORT:-6444}"
export SGE_EXECD_PORT="${PYCREW_SGE_EXECD_PORT:-6445}"
QUEUE=all.q

fail() {
    echo "start.sh: $*" >&2
    exit 1
}

if ! [[ "$SLOTS" =~ ^[1-9][0-9]*$ ]]; then
    fail "PYCREW_SGE_SLOTS must be a whole number >= 1, got '$SLOTS'"
fi
for var in SGE_QMASTER_PORT SGE_EXECD_PORT; do
    if ! [[ "${!var}" =~ ^[1-9][0-9]*$ ]] || ((${!var} > 65535)); then
        fail "PYCREW_$var must be a TCP port (1-65535), got '${!var}'"
    fi
done
for cmd in sge_qmaster sge_execd qconf qstat qsub qdel; do
    command -v "$cmd" >/dev/null 2>&1 || fail "$cmd not found; run scripts/sge/install.sh first"
done
[ -r "$SGE_ROOT/$SGE_CELL/common/bootstrap" ] \
    || fail "$SGE_ROOT/$SGE_CELL/common/bootstrap is missing; run scripts/sge/install.sh first"
[ "$(id -u)" = 0 ] || fail "must run as root (sge_execd starts jobs as their owners), not as $(id -un)"
# SGE talks to this host by its name: it must be a loopback address (no traffic leaves).
address="$(getent ahostsv4 "$HOST" 2>/dev/null | awk 'NR == 1 {print $1}')"
case "$address" in
    127.*) ;;
    *) fail "host name '$HOST' resolves to '${address:-nothing}', not a 127.x address;" \
        "add '127.0.1.1 $HOST' to /etc/hosts" ;;
esac

exports() {
    echo "export SGE_ROOT=$SGE_ROOT SGE_CELL=$SGE_CELL"
    echo "export SGE_QMASTER_PORT=$SGE_QMASTER_PORT SGE_EXECD_PORT=$SGE_EXECD_PORT"
}

# queue_state: the state column of all.q@HOST in `qstat -f` ("" when usable), or "missing".
queue_state() {
    local out
    out="$(qstat -f -q "$QUEUE@$HOST" 2>/dev/null)" || { echo missing; return; }
    # Columns: queuename qtype resv/used/tot. load_avg arch [states]
    printf '%s\n' "$out" | awk -v q="$QUEUE@$HOST" '
        $1 == q { found = 1; print (NF >= 6 ? $6 : "") }
        END { if (!found) print "missing" }'
}

# Already up? Leave it alone.
if [ -r "$ENV_FILE" ] && [ -n "$(pids_named sge_qmaster)" ] && [ -n "$(pids_named sge_execd)" ] \
        && [ -z "$(queue_state)" ] \
        && [ "$(qconf -sq "$QUEUE" 2>/dev/null | awk '$1 == "slots" {print $2}')" = "$SLOTS" ]; then
    echo "# SGE already running (queue $QUEUE@$HOST, $SLOTS slots)" >&2
    exports
    exit 0
fi

# Leftovers of a half-started or crashed cluster: stop them, then start afresh.
stop_daemon sge_execd 15
kill_leftover_jobs
stop_daemon sge_qmaster 30

mkdir -p "$STATE_DIR/conf"
exports >"$ENV_FILE"
common="$SGE_ROOT/$SGE_CELL/common"
# Clients connecting from 127.0.0.1 resolve to "localhost": make that this host.
echo "$HOST localhost" >"$common/host_aliases"
echo "$HOST" >"$common/act_qmaster"

# A fresh spool, as the package's postinst makes it: no jobs of an earlier cluster (they
# would run again, and deleting jobs of a host whose execd died can crash the qmaster).
# Job numbers go on from the last cluster's, so that a job id is never reused.
seqnum="$(cat "$SPOOL/qmaster/jobseqnum" 2>/dev/null || true)"
rm -rf "$SPOOL/spooldb" "$SPOOL/qmaster" "$SPOOL/execd"
install -d -o sgeadmin -g sgeadmin -m 0755 "$SPOOL/spooldb" "$SPOOL/qmaster" \
    "$SPOOL/qmaster/job_scripts" "$SPOOL/execd"
if [[ "$seqnum" =~ ^[0-9]+$ ]]; then
    echo "$seqnum" >"$SPOOL/qmaster/jobseqnum"
    chown sgeadmin:sgeadmin "$SPOOL/qmaster/jobseqnum"
fi
if ! runuser -u sgeadmin -- env SGE_ROOT="$SGE_ROOT" SGE_CELL="$SGE_CELL" \
        /usr/share/gridengine/scripts/init_cluster "$SGE_ROOT" "$SGE_CELL" "$SPOOL/spooldb" sgeadmin \
        >"$STATE_DIR/init_cluster.log" 2>&1; then
    cat "$STATE_DIR/init_cluster.log" >&2
    fail "initializing the spool $SPOOL/spooldb failed"
fi

sge_qmaster || fail "sge_qmaster failed to start; see $SPOOL/qmaster/messages"
up=0
for ((i = 0; i < 300; i++)); do
    if qconf -sh >/dev/null 2>&1; then up=1; break; fi
    sleep 0.1
done
[ "$up" = 1 ] || fail "sge_qmaster does not answer after 30 s; see $SPOOL/qmaster/messages"

# qconf_load KIND NAME FILE: add (-A) or modify (-M) an object from FILE.
qconf_load() {
    local kind="$1" name="$2" file="$3" out
    if qconf "-s$kind" "$name" >/dev/null 2>&1; then
        out="$(qconf "-M$kind" "$file" 2>&1)" || fail "qconf -M$kind $file failed: $out"
    else
        out="$(qconf "-A$kind" "$file" 2>&1)" || fail "qconf -A$kind $file failed: $out"
    fi
    # qconf exits 0 on some rejected files: check that the object exists now.
    qconf "-s$kind" "$name" >/dev/null 2>&1 || fail "qconf did not create $kind $name from $file: $out"
}

# Global configuration: jobs of root (uid/gid 0) are allowed. -Mconf takes the
# configuration's name from the file name, hence "global".
conf="$STATE_DIR/conf/global"
qconf -sconf global | grep -v '^#' \
    | sed -E -e 's/^(min_uid|min_gid)([[:space:]]+).*/\1\20/' >"$conf"
out="$(qconf -Mconf "$conf" 2>&1)" || fail "qconf -Mconf $conf failed: $out"

if ! qconf -ss 2>/dev/null | grep -qxF "$HOST"; then
    out="$(qconf -as "$HOST" 2>&1)" || fail "qconf -as $HOST failed: $out"
fi

# The host's local configuration (what install_execd would add; without one the daemons
# warn "local configuration ... not defined").
local_conf="$STATE_DIR/conf/$HOST"
cat >"$local_conf" <<CONF
mailer                       /usr/bin/mail
xterm                        /usr/bin/xterm
CONF
if qconf -sconf "$HOST" >/dev/null 2>&1; then
    out="$(qconf -Mconf "$local_conf" 2>&1)" || fail "qconf -Mconf $local_conf failed: $out"
else
    out="$(qconf -Aconf "$local_conf" 2>&1)" || fail "qconf -Aconf $local_conf failed: $out"
fi

sched="$STATE_DIR/conf/scheduler"
qconf -ssconf | sed -E \
    -e 's/^(schedule_interval[[:space:]]+).*/\10:0:1/' \
    -e 's/^(flush_submit_sec[[:space:]]+).*/\11/' \
    -e 's/^(flush_finish_sec[[:space:]]+).*/\11/' >"$sched"
out="$(qconf -Msconf "$sched" 2>&1)" || fail "qconf -Msconf $sched failed: $out"

cat >"$STATE_DIR/conf/exechost" <<CONF
hostname              $HOST
load_scaling          NONE
complex_values        NONE
user_lists            NONE
xuser_lists           NONE
projects              NONE
xprojects             NONE
usage_scaling         NONE
report_variables      NONE
CONF
qconf_load e "$HOST" "$STATE_DIR/conf/exechost"

cat >"$STATE_DIR/conf/allhosts" <<CONF
group_name @allhosts
hostlist $HOST
CONF
qconf_load hgrp @allhosts "$STATE_DIR/conf/allhosts"

cat >"$STATE_DIR/conf/smp" <<CONF
pe_name            smp
slots              $SLOTS
user_lists         NONE
xuser_lists        NONE
start_proc_args    NONE
stop_proc_args     NONE
allocation_rule    \$pe_slots
control_slaves     FALSE
job_is_first_task  TRUE
urgency_slots      min
accounting_summary FALSE
qsort_args         NONE
CONF
qconf_load p smp "$STATE_DIR/conf/smp"

cat >"$STATE_DIR/conf/$QUEUE" <<CONF
qname                 $QUEUE
hostlist              @allhosts
seq_no                0
load_thresholds       NONE
suspend_thresholds    NONE
nsuspend              1
suspend_interval      00:05:00
priority              0
min_cpu_interval      00:05:00
processors            UNDEFINED
qtype                 BATCH INTERACTIVE
ckpt_list             NONE
pe_list               smp
rerun                 FALSE
slots                 $SLOTS
tmpdir                /tmp
shell                 /bin/sh
prolog                NONE
epilog                NONE
shell_start_mode      posix_compliant
starter_method        NONE
suspend_method        NONE
resume_method         NONE
terminate_method      NONE
notify                00:00:60
owner_list            NONE
user_lists            NONE
xuser_lists           NONE
subordinate_list      NONE
complex_values        NONE
projects              NONE
xprojects             NONE
calendar              NONE
initial_state         default
s_rt                  INFINITY
h_rt                  INFINITY
s_cpu                 INFINITY
h_cpu                 INFINITY
s_fsize               INFINITY
h_fsize               INFINITY
s_data                INFINITY
h_data                INFINITY
s_stack               INFINITY
h_stack               INFINITY
s_core                INFINITY
h_core                INFINITY
s_rss                 INFINITY
h_rss                 INFINITY
s_vmem                INFINITY
h_vmem                INFINITY
CONF
qconf_load q "$QUEUE" "$STATE_DIR/conf/$QUEUE"

sge_execd || fail "sge_execd failed to start; see $SPOOL/execd/*/messages"
state=missing
for ((i = 0; i < 600; i++)); do
    state="$(queue_state)"
    [ -z "$state" ] && break
    sleep 0.1
done
if [ -n "$state" ]; then
    fail "queue $QUEUE@$HOST is '$state' (not usable) after 60 s; see" \
        "$SPOOL/qmaster/messages and $SPOOL/execd/*/messages"
fi
echo "# SGE up (queue $QUEUE@$HOST, $SLOTS slots)" >&2
exports
