"""SIGTERM (and SIGHUP) end a program that runs controllers as Ctrl-C does, so that their workers go with it.

Platforms end a program with SIGTERM: a batch job's time limit, ``scancel``, a deleted
pod, ``timeout``, ``kill``. Python's default action ends the process at once, and no
``finally`` block, ``with`` exit or exit hook runs: a controller could not terminate its
workers. Those connected see the link close and leave; but workers still queued on a
scheduler, or starting, would start later for nothing, and hold their allocation until
they gave up connecting. So the first controller started in the main thread, while
SIGTERM has its default action, installs :func:`_on_sigterm`: it raises
``SystemExit(143)`` in the main thread, as Ctrl-C raises ``KeyboardInterrupt``. ``with``
blocks terminate their controllers as it unwinds, and the exit hook terminates the others
without waiting for their pending futures (see :mod:`pycrew.control.exit_hooks`). A
second SIGTERM ends the process at once, with the default action. SIGHUP (the terminal
or the ssh session closed) is handled the same way, with exit code 129, unless the
program ignores it (``nohup``) or handles it itself.

Once no controller is started or terminating (a long-lived program, a notebook, that
used pycrew earlier), the handler stays installed but acts as the default would: the
process ends at once with the signal, as it would have without pycrew (a service loop that
catches ``BaseException`` would otherwise carry on after a SIGTERM meant for it).

A program's own SIGTERM handler is left alone: one installed before the first controller
starts stays, and ``signal.signal(signal.SIGTERM, signal.SIG_DFL)`` after it puts the
default back. A child forked from the program gets the default action back.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

#: The exit code of a program ended by SIGTERM through this handler (128 + 15, as a shell reports it).
EXIT_CODE = 128 + signal.SIGTERM
#: The signals handled so, while they have their default action (SIGHUP is absent on Windows).
SIGNALS = tuple(s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)

log = logging.getLogger("pycrew.control")

#: What a termination under way takes beyond the launcher's ``seconds_terminate``: the
#: dispatcher's stop and resolving the futures it ends.
SECONDS_TERMINATE_MARGIN = 10.0


def seconds_awaiting_termination(seconds_terminate: float) -> float:
    """How long another thread waits for a controller's ``terminate()`` under way (``wait()``,
    a second ``terminate()``, the exit hook): its ``seconds_terminate`` and a margin."""
    return min(seconds_terminate + SECONDS_TERMINATE_MARGIN, threading.TIMEOUT_MAX)

_lock = threading.Lock()
installed = False  # the handler was installed (once per process)
signalled = False  # a SIGTERM came: the program is ending (exit hooks do not wait)
signals = 0  # how many SIGTERMs (or SIGHUPs) raised SystemExit so far (a with block begun before one ends at once)


def install() -> None:
    """Install the handler for each of :data:`SIGNALS` that has its default action (main thread only; once)."""
    global installed
    with _lock:
        if installed or threading.current_thread() is not threading.main_thread():
            return
        try:
            for signum in SIGNALS:
                if signal.getsignal(signum) is signal.SIG_DFL:  # else the program's own handler (or SIG_IGN) stands
                    signal.signal(signum, _on_sigterm)
        except (ValueError, OSError):  # not the main interpreter, say: the default stays
            return
        installed = True


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM or SIGHUP: raise ``SystemExit(128 + signum)`` in the main thread, once."""
    global signalled, signals
    from pycrew.control import exit_hooks  # (it imports this module)

    if signalled or not exit_hooks.busy():  # a second signal while the first unwinds, or no controller: end now
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    signalled = True
    signals += 1
    name = signal.Signals(signum).name
    log.warning(
        "pycrew: %s received: terminating the controllers' workers (queued ones too), then exiting with "
        "code %d; a second %s ends the process at once", name, 128 + signum, name,
    )
    raise SystemExit(128 + signum)


def _after_fork_in_child() -> None:
    """A forked child (multiprocessing's "fork", say) ends on SIGTERM and SIGHUP as it would without pycrew."""
    global signalled
    signalled = False
    if installed:
        try:
            for signum in SIGNALS:
                if signal.getsignal(signum) is _on_sigterm:
                    signal.signal(signum, signal.SIG_DFL)
        except ValueError:  # forked from a thread other than the main one: not this child's main thread
            pass


os.register_at_fork(after_in_child=_after_fork_in_child)
