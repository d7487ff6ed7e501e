"""A submit that races ``terminate()``/``shutdown()``, or that a caught Ctrl-C interrupts,
leaves no future unresolved and nothing counted that was never queued.

The races are made certain by widening the window with a slow step (a future that takes a
moment to make, a termination that takes a moment): the controller, its dispatcher and its
workers are real.
"""

from __future__ import annotations

import concurrent.futures as cf
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import pycrew
from pycrew.control import release, submitting
from pycrew.control.futures import TaskFuture


def identity(x: Any) -> Any:
    return x


@pytest.fixture
def controller() -> Iterator[Any]:
    c = pycrew.controller("local", workers=2, seconds_idle=60)
    try:
        assert c.submit(identity, 0).result(timeout=60) == 0
        yield c
    finally:
        c.terminate()


def _slow_futures(monkeypatch: pytest.MonkeyPatch, seconds: float) -> threading.Event:
    """From when the returned event is set, making a task's future takes ``seconds``: the
    submitting thread is held between the controller's last check and the queue."""
    slow = threading.Event()

    class SlowFuture(TaskFuture[Any]):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if slow.is_set():
                time.sleep(seconds)

    monkeypatch.setattr(submitting, "TaskFuture", SlowFuture)
    return slow


def _submit_in_thread(c: Any) -> tuple[threading.Thread, list[Any]]:
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(c.submit(identity, 1))
        except BaseException as exc:  # refused: what the test wants to see
            box.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


def _refused_or_resolved(box: list[Any]) -> None:
    (outcome,) = box
    if isinstance(outcome, BaseException):
        assert isinstance(outcome, RuntimeError), outcome  # ControllerError is one, as the Executor contract asks
        return
    try:
        outcome.result(timeout=5)  # it was queued before the controller stopped taking tasks: it ran or was ended
    except cf.TimeoutError:
        pytest.fail("a future submit() returned while terminate() ran never resolved")
    except (pycrew.errors.ControllerError, cf.CancelledError):
        pass


def test_a_submit_racing_terminate_is_refused_or_resolved(controller: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """On 4c9fdb7 the submit passed its check, terminate() took the dispatcher's tasks, then the
    task was queued to a dispatcher whose loop had ended, and its future stayed pending forever."""
    slow = _slow_futures(monkeypatch, 0.3)
    terminate_all = controller.launcher.terminate_all

    def slow_terminate_all(timeout: float) -> None:  # a launcher that takes a moment to stop its workers
        time.sleep(1.0)
        terminate_all(timeout)

    monkeypatch.setattr(controller.launcher, "terminate_all", slow_terminate_all)
    slow.set()
    thread, box = _submit_in_thread(controller)
    time.sleep(0.1)
    controller.terminate()
    thread.join(10)
    _refused_or_resolved(box)


def test_a_submit_racing_shutdown_is_refused_or_waited_for(controller: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    slow = _slow_futures(monkeypatch, 1.0)
    slow.set()
    thread, box = _submit_in_thread(controller)
    time.sleep(0.2)
    controller.shutdown(wait=True)
    thread.join(10)
    _refused_or_resolved(box)


def test_many_threads_submitting_while_terminate_runs_leave_no_future_pending(monkeypatch: pytest.MonkeyPatch) -> None:
    """The natural race, with the interpreter switching threads often (on 4c9fdb7 3 of 20
    rounds left futures pending at the default switch interval; this test failed there)."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        for _ in range(3):
            c = pycrew.controller("local", workers=2)
            try:
                c.submit(identity, 0).result(timeout=60)
                futures: list[Any] = []
                go = threading.Event()

                def submitter(c: Any = c, futures: list[Any] = futures, go: threading.Event = go) -> None:
                    go.wait()
                    try:
                        for i in range(300):
                            futures.append(c.submit(identity, i))
                    except RuntimeError:  # after terminate: refused
                        pass

                threads = [threading.Thread(target=submitter) for _ in range(4)]
                for t in threads:
                    t.start()
                go.set()
                time.sleep(0.005)
            finally:
                c.terminate()
            for t in threads:
                t.join(30)
            _, not_done = cf.wait(futures, timeout=10)
            assert not not_done, f"{len(not_done)} of {len(futures)} futures still pending after terminate()"
    finally:
        sys.setswitchinterval(old)


@pytest.mark.parametrize("where", ["task", "hold"])
def test_a_caught_ctrl_c_inside_submit_leaves_nothing_to_wait_for(
    controller: Any, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """On 4c9fdb7 a KeyboardInterrupt after the task was counted and before it was queued
    left it counted for good: wait() never returned True, and shutdown(wait=True), a with
    block's exit and the interpreter's exit waited for it forever."""
    if where == "task":  # as the task's record is made
        real_task = submitting.Task

        def interrupted(*args: Any, **kwargs: Any) -> Any:
            monkeypatch.setattr(submitting, "Task", real_task)
            raise KeyboardInterrupt

        monkeypatch.setattr(submitting, "Task", interrupted)
    else:  # as it is counted, just before it is queued
        real_hold = release.OwnerRef.hold

        def hold_interrupted(self: release.OwnerRef) -> None:
            monkeypatch.setattr(release.OwnerRef, "hold", real_hold)
            raise KeyboardInterrupt

        monkeypatch.setattr(release.OwnerRef, "hold", hold_interrupted)
    with pytest.raises(KeyboardInterrupt):
        controller.submit(identity, 2)
    assert controller.pending_futures() == 0 and controller.unresolved() == 0
    assert controller.wait("all", timeout=5)
    assert controller.submit(identity, 3).result(timeout=30) == 3, "the controller still works"
    done = threading.Event()
    threading.Thread(target=lambda: (controller.shutdown(wait=True), done.set()), daemon=True).start()
    assert done.wait(30), "shutdown(wait=True) waited for a task that was never queued"
