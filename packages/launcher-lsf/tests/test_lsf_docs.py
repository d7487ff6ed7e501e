"""docs/launchers/lsf.md runs: its Python blocks, against the LSF emulator.

Every ``pycrew.controller("lsf", ...)`` of the page keeps the page's options (so they must
validate and work: the emulator has a queue ``short``) except what the emulator stands in
for: where the LSF commands are, the controller's address (loopback: jobs run on this
machine) and the private directory (the test's). The page's monitor only sees, and may
only kill, orphans of the controllers the page made.
"""

from __future__ import annotations

import operator
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

import pycrew
from pycrew_emulators.lsf import LsfEmulator

PAGE = Path(__file__).resolve().parents[3] / "docs" / "launchers" / "lsf.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


@pytest.mark.slow
def test_page_python_blocks_run_against_the_emulator(
    lsf_emulator: LsfEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = BLOCK.findall(PAGE.read_text())
    assert len(blocks) >= 2, f"{PAGE} shows no Python"
    monkeypatch.setenv("PYCREW_STATE_DIR", str(tmp_path / "state"))
    where = {"bin_directory": str(lsf_emulator.bin_directory), "directory": str(tmp_path / "lsf")}
    real_controller, real_monitor = pycrew.controller, pycrew.Monitor
    made: list[pycrew.Controller] = []

    def controller(launcher: str, workers: int = 1, **options: Any) -> pycrew.Controller:
        assert launcher == "lsf"
        c = real_controller(launcher, workers, **{**options, **where, "host": "127.0.0.1"})
        made.append(c)
        return c

    class PageMonitor(real_monitor):  # type: ignore[misc,valid-type]
        """The page's monitor: the page's orphans only, never another test's jobs."""

        def __init__(self, launcher: str, **options: Any) -> None:
            super().__init__(launcher, **{**options, **where})

        def orphans(self) -> list[pycrew.WorkerInfo]:
            ours = {c.id for c in made}
            return [w for w in super().orphans() if w.controller_id in ours]

        def terminate(self, workers: Iterable[pycrew.WorkerInfo]) -> int:
            workers = list(workers)
            assert all(w.controller_id in {c.id for c in made} for w in workers), workers
            return int(super().terminate(workers))

    monkeypatch.setattr(pycrew, "controller", controller)
    monkeypatch.setattr(pycrew, "Monitor", PageMonitor)
    namespace: dict[str, Any] = {"__name__": "docs_lsf", "fit": operator.neg, "params": [1, 2, 3]}
    try:
        for block in blocks:
            exec(compile(block, str(PAGE), "exec"), namespace)
    finally:
        for c in made:
            c.terminate()
    assert made and namespace["results"] == [-1, -2, -3]
    (job, *_) = lsf_emulator.jobs()
    assert job.queue == "short", "the page's queue reached bsub"
    monitor = real_monitor("lsf", **where)
    deadline = time.monotonic() + 30
    while any(w for c in made for w in monitor.list(c.id)):
        assert time.monotonic() < deadline, "the page's workers did not end"
        time.sleep(0.1)
