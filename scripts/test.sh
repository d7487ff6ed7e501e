#!/usr/bin/env bash
# Quick start, part 2: set up everything and run the whole test suite.
#
# Installs the Python packages into .venv, installs and starts a real single-node SLURM and
# a real single-host Son of Grid Engine (Debian packages; needs root and apt), runs every
# package's tests in one pytest run, and stops both again. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
# The dashboard's browser test needs Debian's chromium (installed as root; under CI=true the
# test fails without it, elsewhere it skips).
if [ "$(id -u)" = 0 ] || [ "${CI:-}" = "true" ]; then
    scripts/install-chromium.sh || echo "test.sh: chromium could not be installed; tests/test_dashboard.py's browser test needs it" >&2
fi
# The stress suite's network-fault tests (root only) need ip, nft and setsid; without
# them they skip, saying so.
if [ "$(id -u)" = 0 ] && ! { command -v nft && command -v ip && command -v setsid; } >/dev/null 2>&1; then
    apt_log=$(mktemp)
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends nftables iproute2 util-linux; } >"$apt_log" 2>&1; then
        cat "$apt_log" >&2
        echo "test.sh: installing nftables/iproute2 failed; the network-fault stress tests will skip" >&2
    fi
    rm -f "$apt_log"
fi
slurm_started=0
sge_started=0
cleanup() {
    if [ "$sge_started" = 1 ]; then scripts/sge/stop.sh || true; fi
    if [ "$slurm_started" = 1 ]; then scripts/slurm/stop.sh || true; fi
}
trap cleanup EXIT
if [ -x scripts/slurm/install.sh ] && { [ "$(id -u)" = 0 ] || [ "${CI:-}" = "true" ]; }; then
    scripts/slurm/install.sh
    eval "$(scripts/slurm/start.sh)"
    slurm_started=1
fi
# A real single-host Son of Grid Engine (Debian packages) for tests/test_sge_infra.py and pycrew-sge.
if [ -x scripts/sge/install.sh ] && { [ "$(id -u)" = 0 ] || [ "${CI:-}" = "true" ]; }; then
    scripts/sge/install.sh
    sge_started=1 # set first: a start that fails half-way is cleaned up too
    # (eval "$(...)" alone would hide a failed start: its status is eval's, 0)
    if sge_env="$(scripts/sge/start.sh)"; then
        eval "$sge_env"
    else
        echo "test.sh: scripts/sge/start.sh failed (above); the SGE tests fail under CI=true, else skip" >&2
    fi
fi
export PYCREW_STATE_DIR="${PYCREW_STATE_DIR:-$(mktemp -d)}"
.venv/bin/python -m pytest "$@"
