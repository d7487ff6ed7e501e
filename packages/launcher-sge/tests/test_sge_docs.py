"""docs/launchers/sge.md runs: its Python blocks, on the test SGE cell.

Every ``pycrew.controller("sge", ...)`` of the page keeps the page's options (so they must
validate and work) except what this cell must stand in for: the controller's address
(loopback: the one execution host is this machine) and the private directory (the test's).
The page's monitor only sees, and may only delete, orphans of the controllers the page made.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from sge_helpers import SgeCluster, wait_for

import pycrew

PAGE = Path(__file__).resolve().parents[3] / "docs" / "launchers" / "sge.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)

pytestmark = pytest.mark.slow


def test_page_python_blocks_run_on_the_cell(sge_cluster: SgeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = BLOCK.findall(PAGE.read_text())
    assert blocks, f"{PAGE} shows no Python"
    monkeypatch.setenv("PYCREW_STATE_DIR", str(tmp_path / "state"))
    stand_in = {"host": "127.0.0.1", "directory": str(tmp_path / "sge")}
    real_controller, real_monitor = pycrew.controller, pycrew.Monitor
    made: list[pycrew.Controller] = []

    def controller(launcher: str, workers: int = 1, **options: Any) -> pycrew.Controller:
        assert launcher == "sge"
        c = real_controller(launcher, workers, **{**options, **stand_in})
        made.append(c)
        return c

    class PageMonitor(real_monitor):  # type: ignore[misc,valid-type]
        """The page's monitor: the page's orphans only, never another test's or person's jobs."""

        def __init__(self, launcher: str, **options: Any) -> None:
            super().__init__(launcher, **{**options, "directory": stand_in["directory"]})

        def orphans(self) -> list[pycrew.WorkerInfo]:
            ours = {c.id for c in made}
            return [w for w in super().orphans() if w.controller_id in ours]

        def terminate(self, workers: Iterable[pycrew.WorkerInfo]) -> int:
            workers = list(workers)
            assert all(w.controller_id in {c.id for c in made} for w in workers), workers
            return int(super().terminate(workers))

    monkeypatch.setattr(pycrew, "controller", controller)
    monkeypatch.setattr(pycrew, "Monitor", PageMonitor)
    namespace: dict[str, Any] = {"__name__": "docs_sge", "fit": operator.neg, "params": [1, 2, 3]}
    try:
        for block in blocks:
            exec(compile(block, str(PAGE), "exec"), namespace)
    finally:
        for c in made:
            c.terminate()
    assert made and namespace["results"] == [-1, -2, -3]
    monitor = real_monitor("sge", directory=stand_in["directory"])
    wait_for(lambda: not any(monitor.list(c.id) for c in made), timeout=30, what="the page's workers to leave the queue")
