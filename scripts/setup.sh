#!/usr/bin/env bash
# Create .venv and install pycrew, its launchers and the test tools into it (editable).
# Usage: scripts/setup.sh [--test]   (--test adds every launcher, the test emulators and tools)
# (playwright is only the Python driver: the dashboard test uses Debian's chromium from
# scripts/install-chromium.sh; never run `playwright install`, which downloads a browser.)
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
pkgs=(-e packages/core -e packages/launcher-local)
if [ "${1:-}" = "--test" ]; then
    for launcher in packages/launcher-*/; do
        [ "$launcher" = packages/launcher-local/ ] || pkgs+=(-e "${launcher%/}")
    done
    pkgs+=(-e "packages/emulators[all]" pytest pytest-timeout hypothesis scikit-learn joblib ruff mypy nox matplotlib types-psutil types-tqdm mkdocs-material "mkdocstrings[python]" prometheus_client playwright)
    [ -d examples/plugin-template ] && pkgs+=(-e examples/plugin-template)
fi
.venv/bin/python -m pip install -q "${pkgs[@]}"
