"""docs/launchers/pbs.md runs: its Python blocks, on the PBS emulator (both flavours).

Every ``pycrew.controller("pbs", ...)`` of the page keeps the page's options (so they must
validate and work) except what the emulator must stand in for: where the commands are
(an emulator of the block's flavour), the controller's address (loopback: jobs run on this
machine) and the private directory (the test's). The page's monitor only sees, and may only
delete, orphans of the controllers the page made.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

import pycrew
from pycrew_emulators.pbs import PbsEmulator

PAGE = Path(__file__).resolve().parents[3] / "docs" / "launchers" / "pbs.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


@pytest.fixture
def emulators() -> Iterator[dict[str, PbsEmulator]]:
    made = {flavour: PbsEmulator(flavour) for flavour in ("pbspro", "torque")}
    try:
        yield made
    finally:
        for emulator in made.values():
            emulator.close()


def test_page_python_blocks_run_on_the_emulator(
    emulators: dict[str, PbsEmulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = BLOCK.findall(PAGE.read_text())
    assert len(blocks) >= 3, f"{PAGE} shows too little Python"
    monkeypatch.setenv("PYCREW_STATE_DIR", str(tmp_path / "state"))
    real_controller, real_monitor = pycrew.controller, pycrew.Monitor
    made: list[pycrew.Controller] = []

    def stand_in(options: dict[str, Any]) -> dict[str, Any]:
        emulator = emulators[options.get("flavour", "pbspro")]
        return {"bin_directory": str(emulator.bin_directory), "host": "127.0.0.1", "directory": str(tmp_path / "pbs")}

    def controller(launcher: str, workers: int = 1, **options: Any) -> pycrew.Controller:
        assert launcher == "pbs"
        c = real_controller(launcher, workers, **{**options, **stand_in(options)})
        made.append(c)
        return c

    class PageMonitor(real_monitor):  # type: ignore[misc,valid-type]
        """The page's monitor: the page's orphans only."""

        def __init__(self, launcher: str, **options: Any) -> None:
            extra = stand_in(options)
            super().__init__(launcher, **{**options, "bin_directory": extra["bin_directory"], "directory": extra["directory"]})

        def orphans(self) -> list[pycrew.WorkerInfo]:
            ours = {c.id for c in made}
            return [w for w in super().orphans() if w.controller_id in ours]

        def terminate(self, workers: Iterable[pycrew.WorkerInfo]) -> int:
            workers = list(workers)
            assert all(w.controller_id in {c.id for c in made} for w in workers), workers
            return int(super().terminate(workers))

    monkeypatch.setattr(pycrew, "controller", controller)
    monkeypatch.setattr(pycrew, "Monitor", PageMonitor)
    namespace: dict[str, Any] = {"__name__": "docs_pbs", "fit": operator.neg, "params": [1, 2, 3]}
    try:
        for block in blocks:
            namespace.pop("results", None)
            exec(compile(block, str(PAGE), "exec"), namespace)
            if "results" in namespace:
                assert namespace["results"] == [-1, -2, -3]
    finally:
        for c in made:
            c.terminate()
    assert len(made) == 2, "the page's two controllers (PBS Pro and TORQUE) ran"
    flavours = {flavour for flavour, e in emulators.items() if any(call.command == "qsub" for call in e.calls)}
    assert flavours == {"pbspro", "torque"}
