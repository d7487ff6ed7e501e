"""Core stays clean under ``mypy --strict`` (the house rule), checked like any test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pycrew


def test_core_is_mypy_strict_clean() -> None:
    if shutil.which("mypy") is None and not (Path(sys.executable).parent / "mypy").exists():
        if os.environ.get("CI") == "true":
            pytest.fail("mypy is not installed in CI: scripts/setup.sh --test installs it")
        pytest.skip("mypy is not installed (pip install mypy types-psutil types-tqdm)")
    root = Path(__file__).resolve().parents[3]
    package = root / "packages" / "core" / "src" / "pycrew"
    assert package.is_dir() and Path(pycrew.__file__).resolve().parent == package, "run from the repository"
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(package)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=root,
    )
    assert result.returncode == 0, f"mypy --strict found problems in core:\n{result.stdout}{result.stderr}"
