#!/usr/bin/env bash
# Stop the single-host Son of Grid Engine cluster that scripts/sge/start.sh started.
#
# Order matters: delete every job (qdel -u '*') and wait until qstat lists none, then stop
# sge_execd, kill any job an sge_shepherd still runs (only when the wait failed), then stop
# sge_qmaster (it takes 7-11 s to exit). Waits until each daemon is really gone (zombies
# count as gone), so a later start.sh works. Idempotent: stopping a stopped cluster is fine.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$here/common.sh"
# The ports start.sh used (clients and daemons of one cluster must agree).
if [ -r "$ENV_FILE" ]; then
    # shellcheck source=/dev/null
    source "$ENV_FILE"
fi

if [ -n "$(pids_named sge_qmaster)" ] && command -v qdel >/dev/null 2>&1; then
    delete_all_jobs 30 || echo "stop.sh: going on; leftover jobs are killed below" >&2
fi
stop_daemon sge_execd 15
kill_leftover_jobs
stop_daemon sge_qmaster 30
rm -f "$SPOOL/qmaster/qmaster.pid" "$SPOOL"/execd/*/execd.pid
echo "# SGE stopped" >&2
