#!/usr/bin/env bash
# Quick start, part 2: set up everything and run the whole test suite.
#
# Installs the Python packages into .venv, installs and starts a real single-node SLURM
# (Debian packages; needs root and apt), runs every package's tests in one pytest run,
# and stops SLURM again. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
slurm_started=0
if [ -x scripts/slurm/install.sh ] && { [ "$(id -u)" = 0 ] || [ "${CI:-}" = "true" ]; }; then
    scripts/slurm/install.sh
    eval "$(scripts/slurm/start.sh)"
    slurm_started=1
fi
cleanup() { if [ "$slurm_started" = 1 ]; then scripts/slurm/stop.sh || true; fi; }
trap cleanup EXIT
export PYCREW_STATE_DIR="${PYCREW_STATE_DIR:-$(mktemp -d)}"
.venv/bin/python -m pytest "$@"
