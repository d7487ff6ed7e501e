"""The exit hook finishes every live controller, those started while it ran too (fakes, no processes)."""

from __future__ import annotations

import weakref
from typing import Any

import pytest

from pycrew.control import exit_hooks


class FakeController:
    """What the exit hook uses of a controller; finishing it may start another (as a crash handed to a backup does)."""

    def __init__(self, name: str, starts: FakeController | None = None, fails: bool = False) -> None:
        self.name = name
        self.starts = starts
        self.fails = fails
        self.finished = 0

    def pending_futures(self) -> int:
        return 0

    def _finish_at_exit(self) -> None:
        self.finished += 1
        if self.starts is not None:
            exit_hooks.live.add(self.starts)  # type: ignore[arg-type]
        if self.fails:
            raise RuntimeError("terminating failed")
        exit_hooks.live.discard(self)  # type: ignore[arg-type]


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch) -> weakref.WeakSet[Any]:
    fresh: weakref.WeakSet[Any] = weakref.WeakSet()
    monkeypatch.setattr(exit_hooks, "live", fresh)
    return fresh


def test_a_controller_started_while_the_hook_finishes_another_is_finished_too(live: weakref.WeakSet[Any]) -> None:
    """On b40f4bb the hook went once over the controllers live when it began: a backup started by a
    task handed over while the hook waited was never terminated (its queued workers orphaned)."""
    backup = FakeController("big")
    first = FakeController("small", starts=backup)
    live.add(first)
    exit_hooks._finish_live()
    assert (first.finished, backup.finished) == (1, 1)
    assert not live


def test_a_controller_whose_finish_fails_is_tried_once(live: weakref.WeakSet[Any]) -> None:
    stuck = FakeController("stuck", fails=True)
    other = FakeController("other")
    live.add(stuck)
    live.add(other)
    exit_hooks._finish_live()
    assert (stuck.finished, other.finished) == (1, 1), "tried once each, no endless loop"
