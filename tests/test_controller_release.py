"""A started controller that nothing refers to any more is terminated with its workers
(pycrew.control.release), once the work submitted to it has finished."""

from __future__ import annotations

import contextlib
import gc
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import pycrew
from helpers import identity, sleep_then
from support import pid_gone, run_script, wait_for, worker_pids


@pytest.fixture
def dropped() -> Iterator[list[tuple[weakref.ref[pycrew.Controller], str]]]:
    """Weak references to the controllers a test drops (and their ids): whatever a failing
    test left running is terminated and killed here."""
    refs: list[tuple[weakref.ref[pycrew.Controller], str]] = []
    yield refs
    for ref, controller_id in refs:
        c = ref()
        if c is not None:
            c.terminate()
        del c
        for pid in worker_pids(controller_id):
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()


def _released(ref: weakref.ref[pycrew.Controller]) -> bool:
    gc.collect()
    return ref() is None


def _dispatchers() -> int:
    return sum(t.name == "pycrew-dispatcher" and t.is_alive() for t in threading.enumerate())


def test_a_dropped_controller_is_terminated_with_its_workers(dropped):
    before = _dispatchers()
    c = pycrew.controller("local", workers=2, seconds_idle=3600).start()
    dropped.append((weakref.ref(c), c.id))
    assert list(c.map(identity, range(4))) == [0, 1, 2, 3]
    controller_id = c.id
    pids = wait_for(lambda: worker_pids(controller_id), message="no worker started")
    port = int(c.url.rsplit(":", 1)[1])
    ref = dropped[0][0]
    del c
    wait_for(lambda: _released(ref), timeout=30, message="a dropped controller is never collected")
    wait_for(lambda: all(pid_gone(p) for p in pids), timeout=30,
             message="the workers of a dropped controller were not terminated")
    wait_for(lambda: _dispatchers() == before, timeout=10, message="the dispatcher thread of a dropped controller runs on")
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass  # its port is closed


def test_a_dropped_controller_finishes_its_work_first(dropped, tmp_path: Path):
    """As with concurrent.futures: tasks submitted (and pushed) before the controller was
    dropped still run, and their done-callbacks too; then it is terminated."""
    c = pycrew.controller("local", workers=2).start()
    ref = weakref.ref(c)
    dropped.append((ref, c.id))
    ran: list[object] = []
    future = c.submit(sleep_then, 1.0, "submitted")
    future.add_done_callback(lambda f: ran.append(f.result()))
    marker = tmp_path / "pushed"
    c.push(_touch_later, (str(marker), 1.0))
    del c, future
    time.sleep(0.3)
    gc.collect()
    assert ref() is not None, "a controller dropped with tasks still running was collected before they finished"
    wait_for(lambda: _released(ref), timeout=30, message="a dropped controller is never collected after its tasks")
    wait_for(lambda: ran == ["submitted"], timeout=10, message="the done-callback of a dropped controller's task did not run")
    assert marker.read_text() == "done", "a pushed task of a dropped controller did not run to its end"


def _touch_later(path: str, seconds: float) -> None:
    time.sleep(seconds)
    Path(path).write_text("done")


def test_a_dropped_controller_with_a_dashboard_is_terminated(dropped):
    c = pycrew.controller("local", workers=1, dashboard=True).start()
    ref = weakref.ref(c)
    dropped.append((ref, c.id))
    assert c.submit(identity, 5).result(timeout=60) == 5
    assert c.dashboard_link is not None
    dashboard_port = int(c.dashboard_link.split(":")[2].split("/")[0])
    pids = worker_pids(c.id)
    del c
    wait_for(lambda: _released(ref), timeout=30, message="the dashboard's threads keep a dropped controller alive")
    wait_for(lambda: all(pid_gone(p) for p in pids), timeout=30, message="the workers were not terminated")

    def closed() -> bool:
        try:
            socket.create_connection(("127.0.0.1", dashboard_port), timeout=2).close()
        except OSError:
            return True
        return False

    wait_for(closed, timeout=10, message="the dashboard of a dropped controller still listens")


def test_a_controller_dropped_in_a_running_program_leaves_nothing(tmp_path: Path):
    """A function that starts a controller and returns without terminating it: the program
    runs on, the workers go (the run ends with none left and no warning about them)."""
    proc = run_script(tmp_path, """
        import gc, sys, time
        import psutil
        import pycrew

        def compute():
            c = pycrew.controller("local", workers=2, seconds_idle=3600).start()
            return sum(c.map(abs, range(-5, 5)))

        assert compute() == 25
        me = psutil.Process()
        deadline = time.monotonic() + 30
        while me.children(recursive=True) and time.monotonic() < deadline:
            gc.collect()
            time.sleep(0.1)
        print("left", len(me.children(recursive=True)))
        sys.stdout.flush()
    """)
    assert proc.returncode == 0, proc.stderr
    assert "left 0" in proc.stdout, proc.stdout + proc.stderr
