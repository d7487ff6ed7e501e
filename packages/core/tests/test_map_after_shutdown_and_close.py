"""``map`` at the edges of its life: a ``buffersize=n`` map never ends short when the controller
is shut down under it, and a map whose input blocks, once given up on (``close()``,
``cancel(all=True)``, ``shutdown(cancel_futures=True)``), holds up neither ``wait``,
``shutdown`` nor the interpreter's exit."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from concurrent.futures import CancelledError
from typing import Any

import pytest

import pycrew
from pycrew.testing.harness import wait_until


@pytest.fixture
def controller() -> Iterator[Any]:
    c = pycrew.controller("local", workers=2, name="map-edges")
    try:
        yield c
    finally:
        c.terminate()


def _feeders_alive() -> bool:
    return any(t.name == "pycrew-map-feeder" and t.is_alive() for t in threading.enumerate())


def _blocking_input(reached: threading.Event, release: threading.Event) -> Iterator[int]:
    """Three items, then blocks (a queue or socket with nothing more for now) until ``release``."""
    yield from (0, -1, -2)
    reached.set()
    release.wait()
    yield from range(-3, -10, -1)  # read after the map was given up on: never submitted


def test_int_buffersize_map_cut_by_shutdown_raises_instead_of_ending_short(controller: Any) -> None:
    # Nothing more is submitted after shutdown (the map submits only as results are taken, so it
    # could not keep the controller from ending): the results already submitted come back in order,
    # then the iterator raises where the input was cut, never ending as if the input had ended.
    it = controller.map(abs, range(0, -100, -1), buffersize=4)
    got = [next(it) for _ in range(10)]
    controller.shutdown(wait=False)
    with pytest.raises(RuntimeError, match="after shutdown"):
        for value in it:
            got.append(value)
    assert got == list(range(len(got)))
    assert 10 <= len(got) < 100


@pytest.mark.parametrize("give_up", ["close", "cancel_all"])
def test_map_given_up_on_while_its_input_blocks_is_not_pending(controller: Any, give_up: str) -> None:
    reached, release = threading.Event(), threading.Event()
    try:
        it = controller.map(abs, _blocking_input(reached, release))
        assert [next(it) for _ in range(3)] == [0, 1, 2]
        wait_until(reached.is_set, 30, "the map's feeder never reached the blocking read")
        if give_up == "close":
            it.close()
        else:
            controller.cancel(all=True)
        wait_until(lambda: controller.pending_futures() == 0 and controller.unresolved() == 0, 30,
                   lambda: f"pending_futures={controller.pending_futures()} unresolved={controller.unresolved()}")
        assert controller.wait("all", timeout=30)
        # The blocked read returns now: what it gives is dropped, not submitted.
        release.set()
        wait_until(lambda: not _feeders_alive(), 30, "the map's feeder did not end once its input returned")
        assert controller.summary().controller.pushed == 3
        assert controller.pending_futures() == 0
    finally:
        release.set()


def test_shutdown_cancel_futures_returns_while_a_map_input_blocks(controller: Any) -> None:
    reached, release = threading.Event(), threading.Event()
    try:
        it = controller.map(abs, _blocking_input(reached, release))
        assert [next(it) for _ in range(3)] == [0, 1, 2]
        wait_until(reached.is_set, 30, "the map's feeder never reached the blocking read")
        shutting = threading.Thread(target=controller.shutdown, kwargs={"wait": True, "cancel_futures": True}, daemon=True)
        shutting.start()
        wait_until(lambda: not shutting.is_alive(), 30, "shutdown(wait=True, cancel_futures=True) did not return")
        with pytest.raises(CancelledError, match="cancel_futures"):
            next(it)
    finally:
        release.set()


CHILD = textwrap.dedent(
    """
    import threading
    import pycrew

    def blocking_input():
        yield from (0, -1, -2)
        threading.Event().wait()  # never returns

    c = pycrew.controller("local", workers=2, name="map-edges-child")
    it = c.map(abs, blocking_input())
    print([next(it) for _ in range(3)], flush=True)
    it.close()  # done with this map: the program ends here, and must exit
    """
)


def test_program_exits_after_closing_a_map_whose_input_blocks() -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = child.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGTERM)  # pycrew terminates its controllers (and workers) at once on SIGTERM
        try:
            out, err = child.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            out, err = child.communicate()
        pytest.fail(f"the program did not exit within 60 s after closing its map\nstdout: {out}\nstderr: {err}")
    assert child.returncode == 0, err
    assert "[0, 1, 2]" in out
