"""The interpreter's process-wide settings a task may change, and how the worker puts them
back after it: :class:`InterpreterSettings` (see :mod:`pycrew.worker.isolation` for the
rest of what a worker restores between tasks)."""

from __future__ import annotations

import _locale
import gc
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any


class InterpreterSettings:
    """The interpreter's process-wide settings every task starts from (a worker that owns its process).

    One task's ``sys.setrecursionlimit(50)`` made every later task on its worker that
    recursed a little fail with ``RecursionError``; a ``sys.setprofile`` or ``sys.settrace``
    left installed slowed every later task (a thousandfold, for a profiler that sleeps);
    the file mode creation mask (``os.umask``), ``socket.setdefaulttimeout``,
    ``gc.disable()``, ``logging.disable`` and ``sys.set_int_max_str_digits`` leaked the same
    way, as did the root logger's level and handlers (a task that added a handler per call
    multiplied every later log line) and the main thread's ``decimal`` context (one task's
    ``getcontext().prec = 5`` silently rounded every later task's decimals on that worker)
    and the C library's locale for characters and numbers (``locale.setlocale``).
    :meth:`restore` (after each task) sets the umask back (one system call: it cannot be
    read without being set) and reads each other setting, a C call of tens of nanoseconds,
    setting only what changed: about 0.8 us in all, 0.4 us more once ``decimal`` is
    imported. The baseline is the state before the first task, so a tracer installed at
    start-up (a coverage tool's) stays; ``decimal`` imported later (by a task) has a new
    thread's context as its baseline.
    """

    def __init__(self) -> None:
        self.saved: tuple[Any, ...] | None = None
        self.umask = 0

    @staticmethod
    def _read() -> tuple[Any, ...]:
        sock = sys.modules.get("socket")
        return (
            sys.getrecursionlimit(),
            sys.get_int_max_str_digits(),
            sys.gettrace(),
            sys.getprofile(),
            threading.gettrace(),
            threading.getprofile(),
            gc.isenabled(),
            sys.getswitchinterval(),
            logging.root.manager.disable,
            sock.getdefaulttimeout() if sock is not None else None,
            sys.excepthook,
            threading.excepthook,
            logging.root.level,
            tuple(logging.root.handlers),
            (_setlocale(_locale.LC_CTYPE, None), _setlocale(_locale.LC_NUMERIC, None)),
            _decimal_settings(),
        )

    def take(self) -> None:
        """Record the current settings (once)."""
        if self.saved is None:
            self.saved = self._read()
            self.umask = os.umask(0o022)  # there is no reading it without setting it
            os.umask(self.umask)

    def restore(self) -> None:
        """Put back every setting a task changed."""
        saved = self.saved
        if saved is None:
            return
        os.umask(self.umask)  # one system call: set it back whether or not it changed
        if saved[-1] is None and "decimal" in sys.modules:  # imported since: a new thread's context is the baseline
            saved = self.saved = (*saved[:-1], _decimal_settings(sys.modules["decimal"].DefaultContext))
        now = self._read()
        try:
            if now == saved:  # the usual case: the same objects, and equal numbers
                return
        except Exception:  # a tracer object whose == raises: compare one by one below
            pass
        for setter, current, wanted in zip(_SETTERS, now, saved, strict=True):
            if current is not wanted and not (type(current) in (int, float, str, tuple) and current == wanted):
                setter(wanted)


def _decimal_settings(context: Any = None) -> tuple[Any, ...] | None:
    """The settings of ``context`` (by default this thread's ``decimal`` context), not its
    flags (which computing sets); ``None`` while no one imported ``decimal``."""
    module = sys.modules.get("decimal")
    if module is None:
        return None
    c = module.getcontext() if context is None else context
    return (c.prec, c.rounding, c.Emin, c.Emax, c.capitals, c.clamp, c.traps.copy())  # a dict: 0.2 us


def _set_decimal(settings: tuple[Any, ...] | None) -> None:
    """Give this thread a fresh ``decimal`` context with ``settings`` (and no flags set)."""
    module = sys.modules.get("decimal")
    if module is None or settings is None:
        return
    prec, rounding, emin, emax, capitals, clamp, traps = settings
    module.setcontext(module.Context(prec, rounding, emin, emax, capitals, clamp, flags=[], traps=[k for k, v in traps.items() if v]))


# The C library's locale for characters and numbers (LC_CTYPE, LC_NUMERIC; 0.2 us to read,
# where all categories at once take 0.4): one task's setlocale(LC_ALL, "de_DE") made C code
# that parses or prints numbers on that worker (strtod in an extension module, locale.atof,
# "{:n}") read "1.5" as 1 and write "1,5". The other categories (dates, collation, currency,
# messages) are not watched.
_setlocale: Callable[..., str] = _locale.setlocale


def _set_locale(settings: tuple[str, str]) -> None:
    _setlocale(_locale.LC_CTYPE, settings[0])
    _setlocale(_locale.LC_NUMERIC, settings[1])


def _set_root_handlers(handlers: tuple[Any, ...]) -> None:
    logging.root.handlers[:] = handlers  # removed ones are left open: a task may still hold them


def _set_gc(enabled: bool) -> None:
    if enabled:
        gc.enable()
    else:
        gc.disable()


def _set_socket_timeout(timeout: float | None) -> None:
    sock = sys.modules.get("socket")
    if sock is not None:
        sock.setdefaulttimeout(timeout)


def _set_excepthook(hook: Any) -> None:
    sys.excepthook = hook


def _set_thread_excepthook(hook: Any) -> None:
    threading.excepthook = hook


#: How to put back each setting InterpreterSettings._read reads, in the same order.
_SETTERS: tuple[Callable[[Any], object], ...] = (
    sys.setrecursionlimit,
    sys.set_int_max_str_digits,
    sys.settrace,
    sys.setprofile,
    threading.settrace,
    threading.setprofile,
    _set_gc,
    sys.setswitchinterval,
    logging.disable,
    _set_socket_timeout,
    _set_excepthook,
    _set_thread_excepthook,
    logging.root.setLevel,
    _set_root_handlers,
    _set_locale,
    _set_decimal,
)
