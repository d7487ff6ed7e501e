"""A process a task forks never comes back out of the task as a second copy of the worker.

A task that calls ``os.fork()`` and lets the child leave the task function (by returning,
or by raising: ``sys.exit()`` in the child is the usual way to end it) handed that child
back to the worker's code, which caught the ``SystemExit``: the child then sent its own
"result" over the worker's connection and waited for tasks forever, and the parent's
task, waiting for the child, never ended. Now such a child ends where it leaves the task,
as the interpreter would end it: with ``SystemExit``'s code, with 1 and the traceback on
stderr for another exception, with 0 and a note on stderr for a return. Its standard
streams are flushed; exit handlers do not run (they are the worker's, as in a
``multiprocessing`` child). Children that end themselves (``os._exit``, ``multiprocessing``)
never get here.

A child forked by a task also gets Python's default signal handling back at once, not the
worker's: otherwise SIGTERM to it (``multiprocessing.Pool`` ends its processes so) went
through the worker's wakeup pipe, which the child shares, to the worker's signal thread,
and the worker left as if it had been told to (see :mod:`pycrew.worker.leaving`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import traceback
from collections.abc import Mapping

#: Whether this process was forked after this module was imported (read on every task: a
#: module attribute, so that a worker that never forks pays no system call for it).
forked = False


#: The worker's own signal handlers and wakeup descriptor (see :func:`own_signals`).
_handlers: dict[int, object] = {}
_wakeup_fd = -1


def own_signals(handlers: Mapping[int, object]) -> None:
    """Record signal handlers the worker installed (``TaskRunner.keep_handlers`` does): a
    child a task forks gets Python's defaults back in their place."""
    _handlers.update(handlers)


def own_wakeup_fd(fd: int) -> None:
    """Record the worker's signal wakeup descriptor: a child a task forks does not write to it."""
    global _wakeup_fd
    _wakeup_fd = fd


def _note_fork() -> None:
    global forked
    forked = True
    with contextlib.suppress(ValueError, OSError):  # forked from a thread Python does not see as main
        for signum, handler in _handlers.items():
            if signal.getsignal(signum) is handler:
                signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)
        if _wakeup_fd != -1:
            current = signal.set_wakeup_fd(-1)
            if current != _wakeup_fd:  # a task's own descriptor: leave it in place
                signal.set_wakeup_fd(current)


os.register_at_fork(after_in_child=_note_fork)


def end_if_child(worker_pid: int, exc: BaseException | None) -> None:
    """End this process here if it is not ``worker_pid`` but a child a task forked.

    Args:
        worker_pid: the worker's process id.
        exc: what the child raised out of the task function, ``None`` if it returned.
    """
    if os.getpid() == worker_pid:
        return
    code = 0
    if isinstance(exc, SystemExit):
        if isinstance(exc.code, int):
            code = exc.code
        elif exc.code is not None:  # as the interpreter does: print it, exit 1
            code = 1
            with contextlib.suppress(Exception):
                print(exc.code, file=sys.stderr)
    elif exc is not None:
        code = 1
        with contextlib.suppress(Exception):
            traceback.print_exception(exc)
    else:
        with contextlib.suppress(Exception):
            print(
                f"pycrew worker: process {os.getpid()}, forked by a task, returned from the task function; it ends "
                "here (exit code 0) instead of carrying on as a copy of the worker. End such a child with os._exit()",
                file=sys.stderr,
            )
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code & 0xFF)
