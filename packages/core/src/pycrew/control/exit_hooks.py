"""The interpreter waits for pending futures at exit, as :mod:`concurrent.futures` does."""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import TYPE_CHECKING

from pycrew.control import callbacks

if TYPE_CHECKING:
    from pycrew.control.controller import Controller

log = logging.getLogger(__name__)

# Controllers started and not terminated. As ``concurrent.futures`` does for its executors,
# the interpreter does not exit while one of them has pending futures (see _wait_at_exit).
live: weakref.WeakSet[Controller] = weakref.WeakSet()
_exit_hook_lock = threading.Lock()
_exit_hook_registered = False


def _wait_at_exit() -> None:
    """Interpreter exit: let every live controller's pending futures finish, then terminate it."""
    for running in list(live):
        try:
            running._finish_at_exit()
        except SystemExit:  # SIGTERM while it waited (see pycrew.control.termination): the others go at once
            continue
        except Exception:  # one controller's failure must not keep the others running
            log.exception("controller %r: finishing pending futures at interpreter exit failed", running.name)
    # and the done-callbacks of futures of controllers terminated already (they run on a
    # daemon thread, which would not outlive the interpreter)
    callbacks.runner.drain_all()


def _after_fork_in_child() -> None:
    """A forked child holds copies of its parent's live controllers: none may act for the parent.

    Without this, a child of ``os.fork`` or multiprocessing's "fork" start method ran this
    module's exit hook when it ended, which terminated its copies: it sent the parent's
    workers STOP through the sockets it inherited and had the launcher stop them.
    """
    for copy in list(live):
        copy._forked()
    live.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def register_exit_hook() -> None:
    global _exit_hook_registered
    with _exit_hook_lock:
        if _exit_hook_registered:
            return
        try:
            # Runs when the main thread ends, before atexit handlers and while daemon threads
            # (the dispatcher) still run: the same hook concurrent.futures uses.
            threading._register_atexit(_wait_at_exit)  # type: ignore[attr-defined]
        except RuntimeError:  # the interpreter is already shutting down: nothing left to wait for
            return
        _exit_hook_registered = True


