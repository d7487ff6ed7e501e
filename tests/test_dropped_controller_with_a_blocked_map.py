"""A ``map`` whose input blocks for ever in ``next()`` keeps its controller alive only while the
map runs: once it is stopped (its iterator closed, ``terminate()``), the feeder thread that
nothing can interrupt holds the controller weakly, so a dropped controller is collected and
terminated with its workers, and a terminated one is freed (pycrew.control.map_feeder)."""

from __future__ import annotations

import gc
import itertools
import queue
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

import pycrew
from helpers import mark_after_gate
from support import pid_gone, wait_for, worker_pids

Gate = queue.Queue[int | None]
Dropped = list[tuple[weakref.ref[pycrew.Controller], str]]  # the conftest fixture `dropped`


@pytest.fixture
def gate() -> Iterator[Gate]:
    """What the blocked inputs wait on: at the end, it lets them end (their feeder threads with them)."""
    items: Gate = queue.Queue()
    yield items
    for _ in range(4):
        items.put(None)


def _blocking_input(gate: Gate) -> Iterator[int]:
    """Item 0, then what is put in ``gate`` until ``None``: nothing, for now (a queue, a socket)."""
    yield 0
    while (item := gate.get()) is not None:
        yield item


def _feeder_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "pycrew-map-feeder" and t.is_alive()}


def _released(ref: weakref.ref[pycrew.Controller]) -> bool:
    gc.collect()
    return ref() is None


def _start(dropped: Dropped) -> pycrew.Controller:
    c = pycrew.controller("local", workers=2, seconds_idle=3600).start()
    dropped.append((weakref.ref(c), c.id))
    return c


def _map_then_give_up(dropped: Dropped, gate: Gate, how: str) -> tuple[list[int], threading.Thread]:
    """Start a controller, map over an input that blocks after one item, take that item, give the
    map up (``how``: "close" or "terminate") and drop everything: the workers' pids and the
    feeder thread, still blocked in the input's ``next()``."""
    c = _start(dropped)
    before = _feeder_threads()
    results = c.map(abs, _blocking_input(gate))
    assert next(results) == 0
    pids = wait_for(lambda: worker_pids(c.id), timeout=30, message="no worker started")
    feeder = wait_for(lambda: _feeder_threads() - before, message="no feeder thread")
    assert isinstance(feeder, set) and isinstance(pids, list)
    if how == "close":
        results.close()
    else:
        c.terminate()
    return pids, feeder.pop()


def test_a_dropped_controller_whose_closed_map_input_blocks_is_terminated_with_its_workers(dropped, gate):
    pids, feeder = _map_then_give_up(dropped, gate, "close")
    ref = dropped[0][0]
    wait_for(lambda: _released(ref), timeout=30,
             message="a dropped controller is never collected: the closed map's feeder, blocked in next(), keeps it")
    wait_for(lambda: all(pid_gone(p) for p in pids), timeout=30,
             message="the workers of a dropped controller with a blocked map were not terminated")
    assert feeder.is_alive(), "the input was meant to block the feeder thread all along"
    gate.put(1)  # the input yields at last: the feeder, whose controller is gone, just ends
    wait_for(lambda: not feeder.is_alive(), timeout=10, message="the feeder thread runs on after its input yielded")


def test_a_terminated_controller_is_freed_though_its_map_input_blocks(dropped, gate):
    pids, feeder = _map_then_give_up(dropped, gate, "terminate")
    ref = dropped[0][0]
    assert all(pid_gone(p) for p in pids), "terminate() left a worker running"
    wait_for(lambda: _released(ref), timeout=30,
             message="a terminated controller is kept alive by the feeder thread of a map whose input blocks")
    assert feeder.is_alive(), "the input was meant to block the feeder thread all along"


def test_a_dropped_controller_runs_a_map_still_reading_its_input_to_its_end(dropped, gate, tmp_path: Path):
    """The map was not given up on (its iterator dropped unread: every task of a map runs whether or
    not it is iterated): it still runs, and keeps its controller until its input ends."""
    (tmp_path / "gate").touch()
    c = _start(dropped)
    ref = dropped[0][0]
    c.map(mark_after_gate, itertools.repeat(str(tmp_path)), _blocking_input(gate))
    del c
    wait_for(lambda: (tmp_path / "done-0").exists(), timeout=60, message="the first task of the map did not run")
    time.sleep(0.3)
    assert not _released(ref), "a controller was collected while a map of it still read its input"
    for i in (1, 2, 3, None):
        gate.put(i)
    wait_for(lambda: all((tmp_path / f"done-{i}").exists() for i in (1, 2, 3)), timeout=60,
             message="the rest of the input of a dropped controller's map did not run")
    wait_for(lambda: _released(ref), timeout=30, message="a dropped controller is never collected after its map ended")
