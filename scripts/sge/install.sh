#!/usr/bin/env bash
# Install a single-host Son of Grid Engine (Debian packages) for pycrew's tests and CI.
#
# Preseeds the debconf answers the packages ask for (configure SGE automatically, cell
# "default", this host as master), so the postinst creates SGE_ROOT=/var/lib/gridengine
# without a prompt. Idempotent: does nothing when the packages are already installed.
# Needs root (or sudo). Quiet unless something fails.
set -euo pipefail

packages=(gridengine-common gridengine-client gridengine-master gridengine-exec)

installed() {
    local pkg status
    for pkg in "${packages[@]}"; do
        status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
        [ "$status" = "install ok installed" ] || return 1
    done
    [ -d /var/lib/gridengine/default/common ]
}

if installed; then
    echo "SGE already installed: $(dpkg-query -W -f='gridengine-master ${Version}' gridengine-master)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
fi
master="$(hostname)"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The postinst of each package asks the same three shared questions.
answers=""
for pkg in "${packages[@]}"; do
    answers+="$pkg shared/gridengineconfig boolean true
$pkg shared/gridenginecell string default
$pkg shared/gridenginemaster string $master
"
done
if ! printf '%s' "$answers" | $SUDO debconf-set-selections >"$log" 2>&1; then
    cat "$log" >&2
    echo "install.sh: debconf-set-selections failed" >&2
    exit 1
fi
# Other installs (scripts/slurm/install.sh, chromium) may hold the dpkg lock: wait for it.
apt=(apt-get -o DPkg::Lock::Timeout=300)
if ! $SUDO env DEBIAN_FRONTEND=noninteractive "${apt[@]}" update -qq >"$log" 2>&1; then
    cat "$log" >&2
    echo "install.sh: apt-get update failed" >&2
    exit 1
fi
# "policy-rc.d denied execution" messages are expected: no services are started here.
if ! $SUDO env DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends \
        "${packages[@]}" >"$log" 2>&1; then
    cat "$log" >&2
    echo "install.sh: apt-get install ${packages[*]} failed" >&2
    exit 1
fi
if ! installed; then
    cat "$log" >&2
    echo "install.sh: the packages installed but /var/lib/gridengine/default/common is missing:" \
        "the postinst did not configure SGE (debconf answers not taken?); try" \
        "'dpkg-reconfigure gridengine-common'" >&2
    exit 1
fi
echo "SGE installed: $(dpkg-query -W -f='gridengine-master ${Version}' gridengine-master)"
