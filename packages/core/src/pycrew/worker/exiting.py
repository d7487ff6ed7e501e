"""How a worker process ends: its exit handlers run (but pynng's), then ``os._exit``.

pynng registers an exit handler that calls ``nng_fini()``, which frees NNG's state while
NNG's own threads may still be closing a connection (a failed TLS handshake's, or the link
just closed): NNG then panics ("pthread_mutex_lock: Invalid argument") and the process
aborts with SIGABRT instead of the worker's exit code (about 1 in 12 workers refused for
an untrusted certificate did). So the worker process ends with ``os._exit``, skipping the
interpreter's teardown, after running every other exit handler itself: those its tasks
registered (``atexit``, ``weakref.finalize``, which removes a ``TemporaryDirectory`` still
open, coverage's data file, ``multiprocessing``'s clean-up of its children). The handlers
get :data:`SECONDS_EXIT_HANDLERS` in all; one that hangs does not keep the worker alive.
Threads the tasks left running are not waited for; processes they left running in the
worker's session are ended (see :mod:`pycrew.worker.leftovers`).

Once a worker has decided to end (its serving loop returned), it ignores SIGTERM and
SIGINT: the controller terminates the handle of a worker that said goodbye (so that
nothing is left running), and that signal would otherwise cut its goodbye and exit
handlers short. The launcher's SIGKILL after its grace period still ends a worker that
hangs.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
from typing import NoReturn

from pycrew.wire import clock
from pycrew.worker import leftovers

log = logging.getLogger(__name__)

#: How long the exit handlers of a worker process may take, in all, before it exits anyway.
SECONDS_EXIT_HANDLERS = 10.0
#: The signals that tell a worker to leave (see pycrew.worker.leaving), which it ignores once
#: ending; exit code 128 + one of them means "end by this signal" (see exit_process).
ENDING_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _forget_pynng_exit_handler() -> None:
    module = sys.modules.get("pynng.nng")
    handler = getattr(module, "_pynng_atexit", None)
    if handler is not None:
        atexit.unregister(handler)


def run_exit_handlers(seconds: float = SECONDS_EXIT_HANDLERS) -> bool:
    """Run the process's exit handlers but pynng's (on a thread, for ``seconds`` at most).

    Returns:
        Whether they finished in time.
    """
    _forget_pynng_exit_handler()
    done = threading.Event()

    def run() -> None:
        try:
            atexit._run_exitfuncs()  # each handler runs once; errors are printed, as at exit
        finally:
            done.set()

    threading.Thread(target=run, name="pycrew-worker-exit-handlers", daemon=True).start()
    if done.wait(seconds):
        return True
    log.warning("pycrew worker: exit handlers still running after %g s; exiting without them", seconds)
    return False


def ignore_termination() -> None:
    """The process is ending: from now on SIGTERM and SIGINT (requests to do that) are ignored.

    Only the main thread can set a signal's handler; elsewhere this does nothing.
    """
    if threading.current_thread() is threading.main_thread():
        for signum in ENDING_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)


def exit_during_task(code: int) -> NoReturn:
    """End a worker process whose controller is gone while a task runs (it cannot be
    stopped politely): what its tasks started goes too (a solver run as a subprocess, left
    to the init process otherwise), then ``os._exit``; no exit handlers (the task holds on)."""
    try:
        leftovers.end_leftovers()
    except Exception as exc:  # the worker ends anyway; the launcher's own clean-up remains
        log.warning("pycrew worker: ending what its tasks left running failed: %s", exc)
    os._exit(code)


def exit_process(code: int) -> NoReturn:
    """End a worker process with ``code``: exit handlers (but pynng's), flushed output, ``os._exit``.

    ``code`` 128 + SIGTERM or SIGINT (a worker that left because it got that signal) ends
    the process by that signal instead, as the shell's convention for the code says: the
    platform then records the job as ended by the signal (PBS's 271, LSF's and SLURM's
    cancelled state), as it would have if the worker had not handled it.
    """
    ignore_termination()
    run_exit_handlers()
    try:
        leftovers.end_leftovers()
    except Exception as exc:  # the worker ends anyway; the launcher's own clean-up remains
        log.warning("pycrew worker: ending what its tasks left running failed: %s", exc)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # closed or broken by a task: nothing more to say
            stream.flush()
    signum = code - 128
    if signum in ENDING_SIGNALS:
        with contextlib.suppress(ValueError):  # not the main thread: os._exit below
            signal.signal(signum, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
            os.kill(os.getpid(), signum)
            clock.sleep(1.0)  # the default action ends the process meanwhile
    os._exit(code)
