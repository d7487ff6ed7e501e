"""What a task may change in its worker process, and how the worker puts it back.

Both classes here run around every task, so they do the least work when the task changed
nothing (the usual case): compare with a baseline, restore only what differs.

- :class:`ProcessBaseline`: the environment, ``sys.path`` and working directory as they
  were before the first task; after each task whatever differs is restored.
- :class:`pycrew.worker.interpreter.InterpreterSettings`: the interpreter's process-wide
  knobs (recursion limit, trace and profile functions, the garbage collector, the root
  logger, the ``decimal`` context, ...), put back after a task that turned one.
- :class:`StandardStreams`: ``sys.stdin``, ``sys.stdout`` and ``sys.stderr``, put back
  after a task that replaced them, and opened again after a task that closed them.
- :func:`restore_handlers`: the worker's own signal handlers, put back after a task that
  replaced them.
- :class:`SignalMask`: the main thread's blocked signals, put back after a task that
  blocked (or unblocked) some.
- :class:`WarningCapture`: every warning a task raises is recorded (the ``"always"``
  action, as ``warnings.catch_warnings(record=True)`` with ``simplefilter("always")``
  would), without building and tearing down a ``catch_warnings`` per task. The
  ``warnings`` module's state is process-wide, so this is for a worker that owns its
  process; worker loops that share one fall back to ``catch_warnings``.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

# os.environ keeps its data in a private dict of encoded bytes; copying and comparing
# that dict is ~50x cheaper than going through the str mapping (which decodes every
# key and value).
_ENV_DATA: dict[Any, Any] | None = getattr(os.environ, "_data", None)


def environ_snapshot() -> dict[Any, Any]:
    """A copy of the environment, cheap to compare with the current one."""
    return _ENV_DATA.copy() if isinstance(_ENV_DATA, dict) else dict(os.environ)


def environ_changed(saved: dict[Any, Any]) -> bool:
    """Whether the environment differs from ``saved`` (an :func:`environ_snapshot`)."""
    return (_ENV_DATA if isinstance(_ENV_DATA, dict) else dict(os.environ)) != saved


def environ_restore(saved: dict[Any, Any]) -> None:
    """Make the environment equal to ``saved`` again (through ``os.environ``, so that the
    process's real environment, which child processes inherit, follows)."""
    raw = isinstance(_ENV_DATA, dict)
    decode_key = getattr(os.environ, "decodekey", str) if raw else str
    decode_value = getattr(os.environ, "decodevalue", str) if raw else str
    current = set(os.environ)
    wanted = {decode_key(k): decode_value(v) for k, v in saved.items()}
    for key in current - set(wanted):
        del os.environ[key]
    for key, value in wanted.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


# signal.getsignal turns the C function's result into an enum member where it can, through
# a ValueError for every Python handler: ~1.7 us a call, too much for every task. The C
# function (in the _signal module that signal wraps) takes ~20 ns.
_getsignal: Callable[[int], object] = getattr(signal, "_signal", signal).getsignal


#: Signals whose disposition a task may change for the whole process, unseen by the next
#: task: SIGCHLD ignored makes the kernel reap children at once, so a later
#: ``subprocess.run(...).returncode`` is 0 whatever the child's status; SIGPIPE at its
#: default (common in command-line code) kills the worker at a later broken pipe. (Not
#: SIGHUP: a controller a task starts and keeps, in a module, handles it for good.)
WATCHED_SIGNALS = tuple(getattr(signal, name) for name in ("SIGCHLD", "SIGPIPE") if hasattr(signal, name))


def signal_dispositions() -> dict[int, object]:
    """The current handlers of :data:`WATCHED_SIGNALS` (what tasks start from: put back after each)."""
    handlers = {signum: _getsignal(signum) for signum in WATCHED_SIGNALS}
    return {signum: handler for signum, handler in handlers.items() if handler is not None}  # (None: set in C)


def restore_handlers(handlers: Mapping[int, object]) -> None:
    """Install again each of ``handlers`` (signal number: handler) that a task replaced (main thread)."""
    for signum, handler in handlers.items():
        if _getsignal(signum) is not handler:
            signal.signal(signum, handler)  # type: ignore[arg-type]


# signal.pthread_sigmask turns every signal number of its result into an enum member; the C
# function returns plain numbers.
_sigmask: Callable[[int, Any], set[int]] = getattr(signal, "_signal", signal).pthread_sigmask


class SignalMask:
    """The main thread's blocked signals every task starts with (a worker that owns its process).

    A task that blocked ``SIGUSR1`` (``signal.pthread_sigmask``, never undone) left every
    later task on its worker impossible to interrupt: a later task's ``seconds_timeout`` or
    cancel took effect only when it returned on its own; one that blocked ``SIGTERM`` made
    the worker deaf to being asked to leave. :meth:`restore` (after each task) sets the
    mask back: one system call (~0.3 us).
    """

    def __init__(self) -> None:
        self.saved: set[int] | None = None

    def take(self, unblock: Iterable[int]) -> None:
        """Unblock ``unblock`` (the worker's own signals: a parent's mask is inherited across
        ``exec``) and record the mask (main thread)."""
        _sigmask(signal.SIG_UNBLOCK, set(unblock))
        self.saved = _sigmask(signal.SIG_BLOCK, ())

    def restore(self) -> None:
        """Block exactly the signals blocked at :meth:`take` (main thread)."""
        if self.saved is not None:
            _sigmask(signal.SIG_SETMASK, self.saved)


class ProcessBaseline:
    """The environment, ``sys.path`` and working directory every task starts from.

    Taken once, before the first task (:meth:`take`); :meth:`restore` after each task puts
    back whatever the task changed, so every task starts from the same state without a
    copy of it per task.
    """

    def __init__(self) -> None:
        self.env: dict[Any, Any] | None = None
        self.path: list[str] = []
        self.cwd = ""

    def take(self) -> None:
        """Record the current state as the baseline (once)."""
        if self.env is None:
            self.env, self.path, self.cwd = environ_snapshot(), list(sys.path), _getcwd()

    def restore(self) -> list[str]:
        """Undo a task's changes to the environment, ``sys.path`` and working directory.

        Never raises: what cannot be put back is returned, as ``"Category: message"``
        warnings for the task that changed it (the worker keeps serving).
        """
        env = self.env
        if env is None:
            return []
        problems = []
        try:
            if environ_changed(env):
                environ_restore(env)
        except Exception as exc:  # a variable the OS refuses to set or unset
            problems.append(f"RuntimeWarning: pycrew could not restore the worker's environment variables: {_why(exc)}")
        if sys.path != self.path:
            if type(sys.path) is list:
                sys.path[:] = self.path
            else:  # the task replaced the list with something else (a tuple, say)
                sys.path = list(self.path)
        if self.cwd:
            try:
                if os.getcwd() != self.cwd:
                    os.chdir(self.cwd)
            except OSError:  # the task removed the directory it moved to: go back to the original
                try:
                    os.chdir(self.cwd)
                except OSError as exc:  # it removed the original
                    problems.append(self._lost_directory(exc))
        return problems

    def _lost_directory(self, exc: OSError) -> str:
        """The worker's working directory is gone: later tasks start where this one left
        the process (or in ``/`` if that is gone too); the warning says which."""
        lost = self.cwd
        here = _getcwd()
        if not here:
            os.chdir("/")
            here = "/"
        self.cwd = here
        return (
            f"RuntimeWarning: pycrew could not return the worker to its working directory {lost!r} after this task "
            f"({_why(exc)}): did the task remove it? Later tasks on this worker start in {here!r}"
        )


def _getcwd() -> str:
    """The working directory, or ``""`` if it was removed."""
    try:
        return os.getcwd()
    except OSError:
        return ""


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class StandardStreams:
    """The standard streams the worker started with, kept for every task (a worker that owns
    its process).

    A task that replaced one (``sys.stdout = open(path, "w")``, never put back) sent the
    output of every later task there instead of to the worker's log; one that closed one
    (``sys.stdout.close()``) made the next task that printed fail with ``ValueError: I/O
    operation on closed file``, and the worker's own log lines vanish. :meth:`restore`
    (after each task) costs three identity checks and three ``closed`` reads when nothing
    changed.
    """

    def __init__(self) -> None:
        self.streams: tuple[Any, Any, Any] | None = None

    def take(self) -> None:
        """Record the current streams (once)."""
        if self.streams is None:
            self.streams = (sys.stdin, sys.stdout, sys.stderr)

    def restore(self) -> None:
        """Put back replaced streams; open closed ones again on their file descriptors."""
        saved = self.streams
        if saved is None:
            return
        if sys.stdout is not saved[1] or sys.stderr is not saved[2] or sys.stdin is not saved[0]:
            sys.stdin, sys.stdout, sys.stderr = saved
        if saved[1].closed or saved[2].closed or saved[0].closed:
            self.streams = tuple(_reopened(s, fd) if s.closed else s for fd, s in enumerate(saved))
            sys.stdin, sys.stdout, sys.stderr = self.streams
            for handler in logging.getLogger().handlers:  # the worker's log lines went to the closed one
                if isinstance(handler, logging.StreamHandler) and handler.stream in saved:
                    handler.stream = self.streams[saved.index(handler.stream)]  # not setStream: it flushes the closed one


def _reopened(stream: Any, fd: int) -> Any:
    """A new text stream on ``fd`` with the closed ``stream``'s settings (the closed one is
    returned if that fails: the task closed the descriptor too, say)."""
    try:
        raw = io.FileIO(fd, "r" if fd == 0 else "w", closefd=False)  # raises if the descriptor is closed
        buffered = io.BufferedReader(raw) if fd == 0 else io.BufferedWriter(raw)
        return io.TextIOWrapper(
            buffered, encoding=stream.encoding, errors=stream.errors, line_buffering=stream.line_buffering,
            write_through=getattr(stream, "write_through", False),
        )
    except (OSError, ValueError, AttributeError):
        return stream


#: The filter catch_warnings' simplefilter("always") puts first.
_ALWAYS = ("always", None, Warning, None, 0)


class WarningCapture:
    """Records the warnings raised during a task, with the filters put back after it.

    :meth:`start` before a task, :meth:`stop` after it returns the ``"Category: message"``
    of each warning. The capture stays installed between tasks; :meth:`start` reinstalls
    whatever a task replaced (the filters, ``showwarning``, the recording hook).
    """

    def __init__(self) -> None:
        self._log: list[warnings.WarningMessage] = []
        self._append = self._log.append  # one bound method, so that "is" finds it installed
        self._filters: list[Any] = []
        self._module: Any = warnings

    def _install(self) -> None:
        module = self._module
        filters = [_ALWAYS, *(f for f in module.filters if f != _ALWAYS)]
        module.filters[:] = filters
        module._filters_mutated()
        self._filters = list(filters)
        module._showwarnmsg_impl = self._append
        module.showwarning = module._showwarning_orig

    def start(self) -> None:
        """Begin recording a task's warnings."""
        module = self._module
        if (
            module._showwarnmsg_impl is not self._append
            or module.showwarning is not module._showwarning_orig
            or module.filters != self._filters
        ):
            self._install()
        self._log.clear()

    def stop(self) -> list[str]:
        """End recording; the warnings raised since :meth:`start`."""
        log = self._log
        caught = [f"{w.category.__name__}: {w.message}" for w in log] if log else []
        log.clear()
        module = self._module
        if module.filters != self._filters:  # the task changed the filters: put them back
            module.filters[:] = self._filters
            module._filters_mutated()
        return caught
