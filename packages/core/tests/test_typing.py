"""Core and every launcher package stay clean under ``mypy --strict`` (the house rule), checked like any test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pycrew

ROOT = Path(__file__).resolve().parents[3]
#: The launcher packages' import packages, every one under packages/ (and the template
#: plugin, which authors copy).
LAUNCHER_PACKAGES = [
    *sorted((ROOT / "packages").glob("launcher-*/src/pycrew_*")),
    ROOT / "examples" / "plugin-template" / "src" / "pycrew_template",
]


def _require_mypy() -> None:
    if shutil.which("mypy") is None and not (Path(sys.executable).parent / "mypy").exists():
        if os.environ.get("CI") == "true":
            pytest.fail("mypy is not installed in CI: scripts/setup.sh --test installs it")
        pytest.skip("mypy is not installed (pip install mypy types-psutil types-tqdm)")


def _mypy_strict(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )


def test_core_is_mypy_strict_clean() -> None:
    _require_mypy()
    package = ROOT / "packages" / "core" / "src" / "pycrew"
    assert package.is_dir() and Path(pycrew.__file__).resolve().parent == package, "run from the repository"
    result = _mypy_strict(package)
    assert result.returncode == 0, f"mypy --strict found problems in core:\n{result.stdout}{result.stderr}"


def test_launcher_packages_are_mypy_strict_clean() -> None:
    """Every launcher package (and the template plugin), checked in one run against core's types."""
    _require_mypy()
    missing = [str(p.relative_to(ROOT)) for p in LAUNCHER_PACKAGES if not p.is_dir()]
    assert not missing, f"launcher packages not found (moved? update LAUNCHER_PACKAGES): {missing}"
    result = _mypy_strict(*LAUNCHER_PACKAGES)
    assert result.returncode == 0, f"mypy --strict found problems in launcher packages:\n{result.stdout}{result.stderr}"
