#!/usr/bin/env bash
# Install a single-node SLURM (Debian packages) for pycrew's tests and CI.
#
# Idempotent: does nothing when slurmctld, slurmd, sbatch and munged are already present.
# Needs root (or sudo). Quiet unless something fails.
set -euo pipefail

need=(slurmctld slurmd sbatch squeue scancel scontrol sinfo munged)
missing=0
for cmd in "${need[@]}"; do
    if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
        missing=1
    fi
done
if [ "$missing" = 0 ]; then
    echo "SLURM already installed: $(dpkg-query -W -f='slurm-client ${Version}' slurm-client 2>/dev/null || echo present)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$log" 2>&1; then
    cat "$log" >&2
    echo "install.sh: apt-get update failed" >&2
    exit 1
fi
# "policy-rc.d denied execution" messages are expected: no services are started here.
if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurm-wlm slurmctld slurmd slurm-client munge >"$log" 2>&1; then
    cat "$log" >&2
    echo "install.sh: apt-get install failed" >&2
    exit 1
fi
echo "SLURM installed: $(dpkg-query -W -f='slurm-client ${Version}' slurm-client)"
