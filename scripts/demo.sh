#!/usr/bin/env bash
# Quick start, part 1: set up a venv and run tasks on 2 local workers with a progress bar.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/pycrew demo --workers 2 --tasks 200
