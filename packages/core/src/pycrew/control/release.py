"""A started controller that nothing refers to any more is terminated, its workers with it.

A controller started and then dropped without ``terminate()`` (a notebook cell run again, a
function that returns without a ``with`` block) would otherwise keep its dispatcher thread,
its port and its workers until the program ends: the dispatcher's thread held it. As
``ProcessPoolExecutor``'s management thread does with its executor, the threads pycrew
runs for a controller (the dispatcher's, the launcher's, the dashboard's) reach it only
through an :class:`OwnerRef`: a weak reference, made strong while the controller has
unresolved tasks, so that work already submitted still runs (and its done-callbacks)
when its controller is dropped, as ``concurrent.futures`` promises. Once nothing refers to
the controller (no variable, no unfinished future, no running ``map``) and it has no
unresolved task, Python collects it, and :func:`terminate_dropped` terminates it on a
thread of its own: its workers are terminated, its port closed, its record ended.

A future keeps its controller: a future that finished is only released with its controller.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from pycrew.fork_safety import free_after_fork

log = logging.getLogger("pycrew.control")


class _Terminable(Protocol):
    name: str

    def terminate(self) -> None: ...


class OwnerRef:
    """How the dispatcher and the launcher call their controller: through a weak reference,
    or the strong one in :attr:`held` while the controller has unresolved tasks.

    Calls made once the controller was collected do nothing (it had no task left).
    """

    __slots__ = ("held", "ref")

    def __init__(self, owner: object) -> None:
        self.ref = weakref.ref(owner)
        self.held: object | None = None  # the owner, while it has unresolved tasks

    def method(self, name: str) -> Callable[..., Any]:
        """A function calling the owner's method ``name`` while the owner lives."""

        def call(*args: Any) -> Any:
            held = self.held  # (read once: the dispatcher's thread may let go meanwhile)
            owner = held if held is not None else self.ref()
            return None if owner is None else getattr(owner, name)(*args)

        call.__name__ = call.__qualname__ = name
        return call

    def hold(self) -> None:
        """A task was pushed (any thread, after counting it): keep the owner alive."""
        self.held = self.ref()

    def let_go_if(self, idle: Callable[[], bool]) -> None:
        """A task resolved: with none left unresolved (``idle()``) the owner may be collected.

        Let go first, then looked at again: a push counts its task before it calls
        :meth:`hold`, so one that raced with this is seen by the second look.
        """
        if idle():
            owner, self.held = self.held, None
            if not idle():
                self.held = owner


_handed: queue.SimpleQueue[_Terminable] = queue.SimpleQueue()  # put() is safe in a finalizer
_releasing: list[_Terminable] = []  # taken by the release thread, being terminated
_thread: threading.Thread | None = None
_thread_lock = threading.Lock()
free_after_fork(_thread_lock)  # (a thread may hold it at a fork)


def start_thread() -> None:
    """Start the release thread if it does not run (``Controller.start``): a finalizer may not
    start one (a thread's start takes locks the collecting thread may hold)."""
    global _thread
    with _thread_lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="pycrew-release", daemon=True)
            _thread.start()


def terminate_dropped(controller: _Terminable) -> None:
    """``controller.__del__``: hand a started controller no one refers to any more to the
    release thread, which terminates it (terminating may take ``seconds_terminate``, and the
    collection that found it may run on any thread, in the middle of anything). At
    interpreter exit nothing is done: no thread can start then, and terminating starts some;
    the exit hook has terminated the controllers it knew."""
    if not sys.is_finalizing():
        _handed.put(controller)


def _run() -> None:
    while True:
        controller = _handed.get()
        _releasing.append(controller)
        try:
            _terminate(controller)
        finally:
            _releasing.remove(controller)
            del controller


def finish_at_exit() -> None:
    """The exit hook: terminate, here, the controllers handed over and not terminated yet (the
    release thread is a daemon: it would not outlive the interpreter)."""
    left = list(_releasing)
    while True:
        try:
            left.append(_handed.get_nowait())
        except queue.Empty:
            break
    for controller in left:
        _terminate(controller)  # (terminate() waits for the release thread's, if it runs)


def _terminate(controller: _Terminable) -> None:
    log.info("controller %r: no longer referenced while started: terminating it and its workers", controller.name)
    try:
        controller.terminate()
    except Exception:  # collected at interpreter shutdown, say: nothing sensible left to do
        log.debug("controller %r: terminating it after it was dropped failed", controller.name, exc_info=True)
