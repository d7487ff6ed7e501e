"""Fixtures shared by the cross-package tests (core on the local launcher)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator

import cloudpickle
import psutil
import pytest

import helpers
import pycrew

# Workers may run anywhere (emulated containers have a minimal environment): send the
# test task functions by value rather than by module reference.
cloudpickle.register_pickle_by_value(helpers)


@pytest.fixture(autouse=True)
def state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private controller-record directory per test, so monitors see only this test's controllers."""
    path = str(tmp_path_factory.mktemp("pycrew-state"))
    monkeypatch.setenv("PYCREW_STATE_DIR", path)
    yield path


def wait_for(condition: Callable[[], object], timeout: float = 20.0, interval: float = 0.05, message: str = "") -> object:
    """Poll ``condition`` until truthy; fail the test with ``message`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(message or f"condition not met within {timeout} s")
        time.sleep(interval)


def worker_pids(controller_id: str) -> list[int]:
    """Pids of live local worker processes of one controller."""
    return [w.pid for w in pycrew.Monitor("local").list(controller_id) if w.pid is not None]


@pytest.fixture
def make_controller() -> Iterator[Callable[..., pycrew.Controller]]:
    """Build controllers that are always terminated at the end of the test."""
    made: list[pycrew.Controller] = []

    def make(launcher: str = "local", workers: int = 1, **options: object) -> pycrew.Controller:
        c = pycrew.controller(launcher, workers, **options)
        made.append(c)
        return c

    yield make
    for c in made:
        c.terminate()
    for c in made:
        for pid in worker_pids(c.id):
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
            pytest.fail(f"controller {c.name!r} left worker pid {pid} running after terminate()")


def pid_gone(pid: int) -> bool:
    """Whether process ``pid`` no longer runs (zombies count as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


__all__ = ["pid_gone", "wait_for", "worker_pids", "os"]
