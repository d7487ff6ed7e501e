#!/usr/bin/env bash
# Install Debian's Chromium for the dashboard's browser test (tests/test_dashboard.py).
#
# Idempotent: does nothing when /usr/bin/chromium is already present. Installs only as
# root (or with sudo); otherwise it says so and exits 0, and the browser test skips
# (outside CI) or fails (with CI=true). Quiet unless something fails.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    echo "Chromium already installed: $(dpkg-query -W -f='chromium ${Version}' chromium 2>/dev/null || echo present)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install-chromium.sh: not root and no sudo; skipping (the dashboard browser test needs /usr/bin/chromium)" >&2
        exit 0
    fi
    SUDO="sudo"
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$log" 2>&1; then
    cat "$log" >&2
    echo "install-chromium.sh: apt-get update failed" >&2
    exit 1
fi
if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium fonts-dejavu-core >"$log" 2>&1; then
    cat "$log" >&2
    echo "install-chromium.sh: apt-get install chromium failed" >&2
    exit 1
fi
echo "Chromium installed: $(dpkg-query -W -f='chromium ${Version}' chromium)"
