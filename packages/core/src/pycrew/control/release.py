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
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol

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
            owner = self.held if self.held is not None else self.ref()
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


def terminate_dropped(controller: _Terminable) -> None:
    """``controller.__del__``: terminate a started controller no one refers to any more.

    On a new thread (non-daemon: the interpreter waits for it at exit): the collection that
    found it may run on any thread, in the middle of anything, and terminating may take
    ``seconds_terminate``. At interpreter exit, where no thread can start, it is terminated
    here (the exit hook has terminated those it knew already).
    """
    name = f"pycrew-release-{controller.name}"
    try:
        if not sys.is_finalizing():
            threading.Thread(target=_terminate, args=(controller,), name=name).start()
            return
    except RuntimeError:  # "can't create new thread at interpreter shutdown"
        pass
    _terminate(controller)


def _terminate(controller: _Terminable) -> None:
    log.info("controller %r: no longer referenced while started: terminating it and its workers", controller.name)
    try:
        controller.terminate()
    except Exception:  # collected at interpreter shutdown, say: nothing sensible left to do
        log.debug("controller %r: terminating it after it was dropped failed", controller.name, exc_info=True)
