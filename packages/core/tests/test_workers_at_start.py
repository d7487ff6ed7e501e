"""``workers_at_start``: start() launches the first worker(s) before any push (local default 1, remote 0)."""

from __future__ import annotations

import time
from typing import Any

import pytest

import pycrew
from pycrew.plugins import PluginRegistry


class Recording:
    """A launcher that records its launch batches (``remote`` as given) and starts nothing."""

    def __init__(self, name: str, remote: bool) -> None:
        self.name, self.remote = name, remote
        self.launched: list[int] = []

    @pycrew.hookimpl
    def pycrew_register_launchers(self, register: Any) -> None:
        register(self.name, pycrew.LauncherOptions, summary="records launches", remote=self.remote)

    @pycrew.hookimpl
    def pycrew_launch_workers(self, launcher: Any, calls: Any) -> list[str]:
        self.launched.append(len(calls))
        return [f"{self.name}-{c.worker}" for c in calls]

    @pycrew.hookimpl
    def pycrew_terminate_workers(self, launcher: Any, handles: Any) -> None:
        return None

    @pycrew.hookimpl
    def pycrew_list_workers(self, launcher: Any, controller_id: Any) -> list[Any]:
        return []


def launches_after_start(remote: bool, **options: Any) -> list[int]:
    reg = PluginRegistry(load_entry_points=False)
    recording = Recording("rec", remote)
    reg.register(recording)
    c = pycrew.Controller("rec", workers=4, registry=reg, seconds_launch=30, **options)
    try:
        c.start()
        deadline = time.monotonic() + 1.0  # several ticks: a launch would have happened by then
        while time.monotonic() < deadline and not recording.launched:
            time.sleep(0.02)
        time.sleep(0.3)
        return recording.launched
    finally:
        c.terminate()


@pytest.mark.parametrize(
    ("remote", "options", "launched"),
    [
        (False, {}, [1]),
        (True, {}, []),
        (False, {"workers_at_start": 0}, []),
        (True, {"workers_at_start": 3}, [3]),
    ],
)
def test_start_launches_workers_at_start_without_any_push(remote: bool, options: dict[str, Any], launched: list[int]) -> None:
    assert launches_after_start(remote, **options) == launched


def test_a_local_worker_is_online_before_the_first_push() -> None:
    with pycrew.controller("local", workers=2) as c:
        deadline = time.monotonic() + 30
        while c.summary().controller.workers_online < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert c.summary().controller.workers_online == 1, "start() should have launched one local worker"
        assert c.submit(abs, -3).result(timeout=30) == 3


def test_workers_at_start_is_validated() -> None:
    with pytest.raises(pycrew.OptionsError, match=r"workers_at_start.*between 0 and workers=2"):
        pycrew.controller("local", workers=2, workers_at_start=3)
