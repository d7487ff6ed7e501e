"""Observer plugins the conformance suite registers with :func:`pycrew.register`.

Each one watches a single controller (by id or name), so plugins registered for one
test never disturb another controller. They double as examples of observer plugins:
a ``wrapper=True`` implementation of a launcher hook sees every launch of every backend.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pycrew


@dataclass
class LaunchRecord:
    """One call of ``pycrew_launch_workers`` as a wrapper saw it."""

    thread: str
    calls: list[pycrew.WorkerCall]
    handles: list[Any] | None = None
    error: BaseException | None = None


@dataclass(eq=False)
class Recorder:
    """Records launches (as a hook wrapper) and the observer hooks of one controller.

    Set :attr:`controller_id` (and :attr:`controller` for task results) once the
    controller exists; before that nothing is recorded.
    """

    controller_id: str | None = None
    controller: str | None = None
    launches: list[LaunchRecord] = field(default_factory=list)
    launched: list[tuple[pycrew.WorkerCall, Any]] = field(default_factory=list)
    terminated: list[tuple[Any, str]] = field(default_factory=list)
    done: list[pycrew.TaskResult] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def watch(self, c: pycrew.Controller) -> None:
        """Record what happens to controller ``c`` from now on."""
        self.controller_id = c.id
        self.controller = c.name

    def _mine(self, launcher: pycrew.LauncherInfo) -> bool:
        return self.controller_id is not None and launcher.controller_id == self.controller_id

    @pycrew.hookimpl(wrapper=True)
    def pycrew_launch_workers(
        self, launcher: pycrew.LauncherInfo, calls: Sequence[pycrew.WorkerCall]
    ) -> Generator[None, list[Any], list[Any]]:
        """Wrap the backend's launch hook: record the batch, its thread and its handles."""
        if not self._mine(launcher):
            return (yield)
        record = LaunchRecord(thread=threading.current_thread().name, calls=list(calls))
        with self.lock:
            self.launches.append(record)
        try:
            handles = yield
        except BaseException as exc:
            record.error = exc
            raise
        record.handles = list(handles) if handles is not None else None
        return handles

    @pycrew.hookimpl
    def pycrew_worker_launched(self, launcher: pycrew.LauncherInfo, call: pycrew.WorkerCall, handle: Any) -> None:
        """Observer: record each launched worker and its handle."""
        if self._mine(launcher):
            with self.lock:
                self.launched.append((call, handle))

    @pycrew.hookimpl
    def pycrew_worker_terminated(self, launcher: pycrew.LauncherInfo, handle: Any, reason: str) -> None:
        """Observer: record each termination and its reason."""
        if self._mine(launcher):
            with self.lock:
                self.terminated.append((handle, reason))

    @pycrew.hookimpl
    def pycrew_task_done(self, result: pycrew.TaskResult) -> None:
        """Observer: record each resolved task of the watched controller."""
        if self.controller is not None and result.controller == self.controller:
            with self.lock:
                self.done.append(result)

    def batch_sizes(self, start: int = 0) -> list[int]:
        """Sizes of the launch batches from the ``start``-th on."""
        with self.lock:
            return [len(r.calls) for r in self.launches[start:]]

    def tokens(self) -> set[str]:
        """Every secret handed to the launch hook so far: tokens and batch keys (to look for leaks)."""
        with self.lock:
            calls = [c for r in self.launches for c in r.calls]
        return {s for c in calls for s in (c.token, getattr(c, "batch_key", "")) if s}


class TaskDoneGate:
    """Holds the dispatcher of one controller inside ``pycrew_task_done`` of its first task.

    ``pycrew_task_done`` runs on the dispatcher's thread, so while the gate is closed the
    dispatcher makes no scaling decision: tasks pushed meanwhile all reach the queue
    before the next scaling round. :meth:`release` opens the gate; it also opens by
    itself after ``timeout`` seconds so a failing test never hangs.
    """

    def __init__(self, timeout: float) -> None:
        self.controller: str | None = None
        self.timeout = timeout
        self.entered = threading.Event()
        self._release = threading.Event()
        self.timed_out = False

    def watch(self, c: pycrew.Controller) -> None:
        """Gate controller ``c`` (register the gate before building ``c``: core looks up
        ``pycrew_task_done`` observers when a controller is built)."""
        self.controller = c.name

    @pycrew.hookimpl
    def pycrew_task_done(self, result: pycrew.TaskResult) -> None:
        """Block the first call for the watched controller until released."""
        if self.controller is None or result.controller != self.controller or self.entered.is_set():
            return
        self.entered.set()
        if not self._release.wait(self.timeout):
            self.timed_out = True

    def release(self) -> None:
        """Let the dispatcher go on."""
        self._release.set()


class LaunchHold:
    """Wraps ``pycrew_launch_workers`` of one controller and holds every call until released.

    It stands for a slow platform API (seconds per request): if anything on the user's
    path waited for the launch hook, it would wait for :meth:`release`.
    """

    def __init__(self, timeout: float) -> None:
        self.controller_id: str | None = None
        self.timeout = timeout
        self.entered = threading.Event()
        self._release = threading.Event()
        self.threads: list[str] = []
        self.held = 0
        self.timed_out = False
        self._lock = threading.Lock()

    def watch(self, c: pycrew.Controller) -> None:
        """Hold the launches of controller ``c``."""
        self.controller_id = c.id

    @pycrew.hookimpl(wrapper=True)
    def pycrew_launch_workers(
        self, launcher: pycrew.LauncherInfo, calls: Sequence[pycrew.WorkerCall]
    ) -> Generator[None, list[Any], list[Any]]:
        """Hold the launch until released, then let the backend launch."""
        if self.controller_id is None or launcher.controller_id != self.controller_id:
            return (yield)
        with self._lock:
            self.threads.append(threading.current_thread().name)
            self.held += 1
        self.entered.set()
        try:
            if not self._release.wait(self.timeout):
                self.timed_out = True
        finally:
            with self._lock:
                self.held -= 1
        return (yield)

    def release(self) -> None:
        """Let every held launch (and every later one) go on."""
        self._release.set()
