"""The interpreter waits for pending futures at exit, as :mod:`concurrent.futures` does.

Unless the program is being interrupted: after a ``KeyboardInterrupt`` (Ctrl-C) ended the
main thread, or a SIGTERM or SIGHUP came (see :mod:`pycrew.control.termination`), the
controllers are terminated at once, their pending futures failed. (ProcessPoolExecutor
still runs every queued task after Ctrl-C; the user meant the program to stop.) A Ctrl-C,
SIGTERM or SIGHUP *while* the hook waits stops the waiting too; the process then ends
with that signal's status, not the 0 of a main thread that had ended normally.

A terminate() that another thread began (the controller's own ``shutdown(wait=False)``
thread, say) is waited for too, within that controller's termination bound: such threads
are daemons, which die with the interpreter, and one stopped in the middle of terminate()
never terminates the workers still launching. A SIGTERM does not stop that wait (the
termination under way is what stops the workers); a Ctrl-C does.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
import time
import weakref
from typing import TYPE_CHECKING

from pycrew.control import callbacks, release, termination

if TYPE_CHECKING:
    from pycrew.control.controller import Controller

log = logging.getLogger(__name__)

# Controllers started and not terminated. As ``concurrent.futures`` does for its executors,
# the interpreter does not exit while one of them has pending futures (see _wait_at_exit).
live: weakref.WeakSet[Controller] = weakref.WeakSet()
# Controllers whose terminate() has begun: busy until it is done (see busy()).
_ending: weakref.WeakSet[Controller] = weakref.WeakSet()


def ending(controller: Controller) -> None:
    """``controller``'s terminate() has begun: it is no longer live, and busy until its terminate is done."""
    live.discard(controller)
    _ending.add(controller)


def busy() -> bool:
    """Whether a controller is live or still terminating, done-callbacks are still to run, or the exit hook
    runs (a SIGTERM then ends the program through them)."""
    return _exiting or bool(live) or any(not c._terminate_done.is_set() for c in list(_ending)) or callbacks.pending()
_exit_hook_lock = threading.Lock()
_exit_hook_registered = False


_interrupted: BaseException | None = None  # the Ctrl-C or SystemExit (SIGTERM) that stopped the waiting
_exiting = False  # the exit hook runs


def stop_waiting() -> bool:
    """Whether the exit hook must not wait for pending futures: the program is being interrupted
    (a SIGTERM; a Ctrl-C that ended the main thread, or the waiting). At an interactive prompt,
    ``sys.last_value`` is the last error shown, not what ended the session: it does not count."""
    ctrl_c = isinstance(getattr(sys, "last_value", None), KeyboardInterrupt) and not hasattr(sys, "ps1")
    return termination.signalled or _interrupted is not None or ctrl_c


def _wait_at_exit() -> None:
    """Interpreter exit: let every live controller's pending futures finish, then terminate it.

    A SIGTERM (or Ctrl-C) may land anywhere in here, not only while a controller waits: it
    is kept, the controllers left are terminated without waiting, and the process ends
    with it (a second SIGTERM ends it at once, by the handler)."""
    global _interrupted, _exiting
    _exiting = True
    while True:
        try:
            _finish_live()
            break
        except (SystemExit, KeyboardInterrupt) as exc:  # between two waits: again, now without waiting
            _interrupted = _interrupted or exc
    if _interrupted is not None:
        _end_process(_interrupted)


def _finish_live() -> None:
    global _interrupted
    seen: set[int] = set()
    # Each live controller, and those started meanwhile (a backup a crashed task was handed to);
    # and each whose terminate() another thread runs: it is no longer in `live` (see ending()).
    while todo := [c for c in [*live, *_ending] if id(c) not in seen]:
        for controller in todo:
            seen.add(id(controller))
            if controller in _ending:
                _await_termination(controller)
            else:
                _finish_one(controller)
    release.finish_at_exit()  # those dropped (see pycrew.control.release) and not terminated yet
    # and the done-callbacks of futures of controllers terminated already (they run on a
    # daemon thread, which would not outlive the interpreter)
    if not stop_waiting():  # (interrupted, or signalled: a stuck callback must not hold the process)
        try:
            callbacks.drain_all()
        except (SystemExit, KeyboardInterrupt) as exc:  # while it waited for the callbacks
            _interrupted = exc


def _finish_one(running: Controller) -> None:
    """Let ``running``'s pending futures finish (unless interrupted), then terminate it."""
    global _interrupted
    try:
        if stop_waiting() and running.pending_futures():
            log.warning("controller %r: the program was interrupted: terminating it without waiting for its %d "
                        "pending future(s)", running.name, running.pending_futures())
        running._finish_at_exit()
    except (SystemExit, KeyboardInterrupt) as exc:  # while it waited (it terminated): the others go at once
        _interrupted = _interrupted or exc
        log.warning("controller %r: the program was interrupted (%s) while it waited at exit for pending futures: "
                    "terminated", running.name, type(exc).__name__)
    except Exception:  # one controller's failure must not keep the others running
        log.exception("controller %r: finishing pending futures at interpreter exit failed", running.name)


def _await_termination(controller: Controller) -> None:
    """Wait for the terminate() another thread runs for ``controller``, as long as terminate() itself
    waits for one (``seconds_terminate`` and a margin): that thread is a daemon, which dies when the
    interpreter exits, and would leave the workers still launching behind (their terminate_all not run).

    A SIGTERM while it waits does not stop the waiting (it is kept, and ends the process after): the
    termination under way is what stops the workers. A Ctrl-C does, as one stops a terminate() itself.
    """
    global _interrupted
    done = controller._terminate_done
    deadline = time.monotonic() + termination.seconds_awaiting_termination(controller.options.seconds_terminate)
    while not done.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            log.warning("controller %r: its termination, begun on another thread, did not end within its "
                        "seconds_terminate: exiting without it; some workers may be left", controller.name)
            return
        try:
            done.wait(left)
        except SystemExit as exc:  # a SIGTERM: the termination under way still terminates the workers
            _interrupted = _interrupted or exc
        except KeyboardInterrupt as exc:
            _interrupted = _interrupted or exc
            log.error("controller %r: interrupted while waiting for its termination to end: some workers may be "
                      "left; once this program has ended, `pycrew monitor %s list --orphans` shows them",
                      controller.name, controller.spec.name)
            return


def _end_process(interruption: BaseException) -> None:
    """End the process as ``interruption`` would have, had it come before the main thread ended.

    The interpreter's exit status was fixed when the main thread ended (0, most often): run
    the ``atexit`` handlers and flush the standard streams, then exit with SystemExit's
    code (143 for SIGTERM), or, for Ctrl-C, by SIGINT, as Python ends a program that a
    ``KeyboardInterrupt`` ended.
    """
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    if isinstance(interruption, KeyboardInterrupt):
        with contextlib.suppress(BaseException):
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
    code = interruption.code if isinstance(interruption, SystemExit) else None
    os._exit(code if isinstance(code, int) else 1)


def _after_fork_in_child() -> None:
    """A forked child holds copies of its parent's live controllers: none may act for the parent.

    Without this, a child of ``os.fork`` or multiprocessing's "fork" start method ran this
    module's exit hook when it ended, which terminated its copies: it sent the parent's
    workers STOP through the sockets it inherited and had the launcher stop them.
    """
    for copy in list(live):
        copy._forked()
    live.clear()
    _ending.clear()


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


