"""pytest plugin of pycrew (entry point ``pytest11: pycrew``): fixtures for launcher authors.

Loaded in every pytest session where pycrew is installed, so importing it does nothing
but define fixtures: no pycrew machinery is touched until a fixture is used.

Fixtures:
    pycrew_tmp_state_dir: points ``PYCREW_STATE_DIR`` at a fresh directory, so
        controller records (and thus orphan detection) are private to the test.
    pycrew_plugin: ``pycrew_plugin(obj)`` registers a plugin object (a launcher or an
        observer defined in the test) for the duration of the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``slow`` marker the conformance suite uses."""
    config.addinivalue_line("markers", "slow: takes more than a few seconds (still runs in CI)")


@pytest.fixture
def pycrew_tmp_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``PYCREW_STATE_DIR`` at a fresh directory for this test and return it.

    Child processes started by the test inherit it.
    """
    path = tmp_path / "pycrew-state"
    path.mkdir()
    monkeypatch.setenv("PYCREW_STATE_DIR", str(path))
    return path


@pytest.fixture
def pycrew_plugin() -> Iterator[Callable[..., Any]]:
    """Register plugin objects for one test: ``pycrew_plugin(obj, name=None)`` returns ``obj``.

    Every plugin registered through it is unregistered when the test ends.
    """
    import pycrew

    registered: list[Any] = []

    def register(plugin: Any, name: str | None = None) -> Any:
        pycrew.register(plugin, name=name)
        registered.append(plugin)
        return plugin

    yield register
    for plugin in reversed(registered):
        pycrew.unregister(plugin)
