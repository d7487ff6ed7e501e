"""docs/launchers/cloudrun.md runs: its Python blocks, against the Cloud Run emulator.

The page shows a real deployment (a project, a VPC, the controller's internal address).
Here every ``pycrew.controller("cloudrun", ...)`` it makes keeps the page's options (so they
must validate and work) except where the emulator must stand in: the API endpoints,
credentials, project and region, and the controller's address (loopback only).
"""

from __future__ import annotations

import operator
import re
from pathlib import Path
from typing import Any

import pytest

import pycrew

PAGE = Path(__file__).resolve().parents[3] / "docs" / "launchers" / "cloudrun.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def test_page_python_blocks_run_on_the_emulator(cloudrun_options: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = BLOCK.findall(PAGE.read_text())
    assert blocks, f"{PAGE} shows no Python"
    real = pycrew.controller
    made: list[pycrew.Controller] = []

    def controller(launcher: str, workers: int = 1, **options: Any) -> pycrew.Controller:
        assert launcher == "cloudrun"
        options.pop("port", None)
        c = real(launcher, workers, **{**options, **cloudrun_options, "host": "127.0.0.1"})
        made.append(c)
        return c

    monkeypatch.setattr(pycrew, "controller", controller)
    namespace: dict[str, Any] = {"__name__": "docs_cloudrun", "fit": operator.neg, "params": [1, 2, 3]}
    try:
        for block in blocks:
            exec(compile(block, str(PAGE), "exec"), namespace)
    finally:
        for c in made:
            c.terminate()
    assert made and namespace["results"] == [-1, -2, -3]
