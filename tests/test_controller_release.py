"""A started controller that nothing refers to any more is terminated with its workers
(pycrew.control.release), once the work submitted to it has finished."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path

import pytest

import pycrew
from helpers import identity, sleep_then
from support import pid_gone, run_script, wait_for, worker_pids


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


def _run_bounded(tmp_path: Path, body: str, seconds: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``body`` as a script; a hang is a test failure after ``seconds``, not a stuck run."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=tmp_path, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the program hung (killed after {seconds} s); stdout:\n{out}\nstderr:\n{err[-3000:]}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_a_controller_freed_while_the_interpreter_finalizes_does_not_hang_the_exit(tmp_path: Path):
    """Probe: a controller started in an atexit handler (after pycrew's exit hook) is freed when
    the module's globals are cleared; terminating it there started a thread, which can no
    longer start: the process hung for ever."""
    proc = _run_bounded(tmp_path, """
        import atexit
        import psutil
        import pycrew

        def late():
            global c
            c = pycrew.controller("local", workers=1).start()
            assert c.submit(abs, -5).result(timeout=60) == 5
            print(*[p.pid for p in psutil.Process().children(recursive=True)], flush=True)

        atexit.register(late)
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    pids = [int(w) for w in proc.stdout.split()]
    wait_for(lambda: all(pid_gone(p) for p in pids), timeout=30, message="the worker outlived the program")


def test_a_controller_collected_where_threads_cannot_start_is_released_without_deadlock(tmp_path: Path):
    """Probe: __del__ started a thread, whose start needs threading's _shutdown_locks_lock; a
    collection on a thread holding that lock (any thread starting a non-daemon thread holds it
    a moment) deadlocked both. The release thread is started beforehand and handed the controller."""
    proc = _run_bounded(tmp_path, """
        import gc, threading, time, weakref
        import pycrew

        c = pycrew.controller("local", workers=1, seconds_idle=3600).start()
        assert c.submit(abs, -2).result(timeout=60) == 2
        c.me = c  # a reference cycle: only the cyclic collector frees it
        ref = weakref.ref(c)
        del c
        with threading._shutdown_locks_lock:  # as while a non-daemon thread starts
            gc.collect()
        deadline = time.monotonic() + 30
        while ref() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        print("released", ref() is None, flush=True)
    """)
    assert proc.returncode == 0 and "released True" in proc.stdout, proc.stdout + proc.stderr[-3000:]


def test_a_dropped_controller_whose_launches_failed_is_released_with_pushed_tasks_queued(dropped):
    """Probe: pushed tasks stay queued after a LaunchError (only futures are failed), so the
    unresolved count never reached 0 and the controller was held for ever."""
    c = pycrew.controller("local", workers=1, python="/bin/false", launch_max=1).start()
    ref = weakref.ref(c)
    dropped.append((ref, c.id))
    c.push(identity, (2,))
    future = c.submit(identity, 3)
    with pytest.raises(pycrew.LaunchError):
        future.result(timeout=60)
    del c, future
    wait_for(lambda: _released(ref), timeout=30, message="a dropped controller whose launches failed is held for ever")


def test_a_done_callback_that_refers_to_its_controller_does_not_delay_its_release(dropped):
    """Probe: the callbacks thread kept its last callback (a closure over the controller) until
    it idled out, 30 s later."""
    c = pycrew.controller("local", workers=1).start()
    ref = weakref.ref(c)
    dropped.append((ref, c.id))
    seen: list[str] = []
    c.submit(identity, 1).add_done_callback(lambda f, owner=c: seen.append(owner.name))  # holds it
    wait_for(lambda: seen, timeout=30, message="the callback did not run")
    del c
    wait_for(lambda: _released(ref), timeout=10, message="the callbacks thread keeps the controller its callback named")


def test_cancelling_a_running_task_from_the_dispatchers_own_thread_does_not_hang_it(tmp_path: Path):
    """Probe: a half-read map iterator in a reference cycle, finalized by a collection on the
    dispatcher's thread, cancels its running futures there: the cancel waited for the
    dispatcher's next turn, on the dispatcher's own thread, for ever."""
    proc = _run_bounded(tmp_path, """
        import time
        import pycrew

        with pycrew.controller("local", workers=1) as c:
            running = c.submit(time.sleep, 60)
            deadline = time.monotonic() + 60
            while not running.running() and time.monotonic() < deadline:
                time.sleep(0.05)
            c._dispatcher.call_soon(running.cancel)  # as a finalizer run there would
            deadline = time.monotonic() + 30
            while not running.cancelled() and time.monotonic() < deadline:
                time.sleep(0.05)
            print("cancelled", running.cancelled(), "then", c.submit(abs, -3).result(timeout=30), flush=True)
    """)
    assert proc.returncode == 0 and "cancelled True then 3" in proc.stdout, proc.stdout + proc.stderr[-3000:]


def test_the_dashboard_of_a_controller_being_released_answers_503_without_a_traceback(dropped, monkeypatch, caplog):
    """Probe: the cyclic collector clears weak references before the controller's __del__, so
    until its release ended the dashboard, requests failed with 500 and logged tracebacks."""
    from pycrew.control import release

    gate = threading.Event()
    terminate = release._terminate

    def held(controller):  # the release thread waits here: the window the probe saw, held open
        gate.wait(30)
        terminate(controller)

    monkeypatch.setattr(release, "_terminate", held)
    c = pycrew.controller("local", workers=1, dashboard=True).start()
    ref = weakref.ref(c)
    dropped.append((ref, c.id))
    assert c.submit(identity, 1).result(timeout=60) == 1
    link = c.dashboard_link
    assert link is not None
    c.me = c  # a reference cycle: freed by the cyclic collector, weak references first
    del c
    gc.collect()
    try:
        with caplog.at_level(logging.ERROR, logger="pycrew"):
            try:
                urllib.request.urlopen(link.rstrip("/") + "/api/state", timeout=10)
                pytest.fail("the dashboard answered for a controller being released")
            except urllib.error.HTTPError as exc:
                assert exc.code == 503, exc.code
        assert "failed to answer" not in caplog.text, caplog.text
    finally:
        gate.set()
    wait_for(lambda: _released(ref), timeout=30, message="the controller was not released")
