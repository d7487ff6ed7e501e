"""Fixtures shared by the cross-package tests (core on the local launcher)."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator

import cloudpickle
import psutil
import pytest

import helpers
import pycrew
from support import worker_pids

# Workers may run anywhere (emulated containers have a minimal environment): send the
# test task functions by value rather than by module reference.
cloudpickle.register_pickle_by_value(helpers)


@pytest.fixture(autouse=True)
def state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private controller-record directory per test, so monitors see only this test's controllers."""
    path = str(tmp_path_factory.mktemp("pycrew-state"))
    monkeypatch.setenv("PYCREW_STATE_DIR", path)
    yield path


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


#: Weak references to controllers a test drops (and their ids): see :func:`dropped`.
Dropped = list[tuple["weakref.ref[pycrew.Controller]", str]]


@pytest.fixture
def dropped() -> Iterator[Dropped]:
    """Weak references to the controllers a test drops (and their ids): whatever a failing
    test left running is terminated and its workers killed here."""
    refs: Dropped = []
    yield refs
    for ref, controller_id in refs:
        c = ref()
        if c is not None:
            c.terminate()
        del c
        for pid in worker_pids(controller_id):
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
