"""Running one task inside a worker: seeding, warnings, hygiene, interruption.

A task runs in the worker's main thread. The worker's communication thread can interrupt
it (a cancel from the controller, or its ``seconds_timeout`` passing) by sending the
process ``SIGUSR1``: the handler raises :class:`Interrupted` inside the task's code, which
ends blocking calls such as ``time.sleep`` too. Code stuck in a C extension that ignores
signals is not interrupted; the controller then replaces the whole worker.
"""

from __future__ import annotations

import gc
import logging
import os
import pickle
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

from pycrew.wire import clock
from pycrew.wire.functions import load_task
from pycrew.wire.protocol import Payload
from pycrew.wire.records import ResultRecord
from pycrew.worker import forks
from pycrew.worker.failures import OVERRAN, exception_text, failure_hint, qualified_name
from pycrew.worker.interpreter import InterpreterSettings
from pycrew.worker.isolation import (
    ProcessBaseline,
    SignalMask,
    StandardStreams,
    WarningCapture,
    restore_handlers,
    signal_dispositions,
)
from pycrew.worker.result_pickling import dumps as _dumps
from pycrew.worker.result_pickling import exception_bytes as _exception_bytes
from pycrew.worker.result_pickling import pack_result
from pycrew.worker.seeding import restore_generators, seed_generators
from pycrew.worker.task_processes import end_task_processes
from pycrew.worker.timers import StrayTimers

INTERRUPT_SIGNAL = signal.SIGUSR1
INITIALIZER_ID = -1  # the id the worker's initializer runs under (task ids are never negative)
#: ``error_type`` of results the worker could not pickle or send; the controller raises
#: :class:`pycrew.SerializationError` for it (the worker imports nothing of the controller).
SERIALIZATION_ERROR = "pycrew.errors.SerializationError"

log = logging.getLogger("pycrew.worker")


class Interrupted(BaseException):
    """Raised inside a task that is cancelled or timed out (a BaseException: tasks rarely catch it)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


WORKER_FILES = {__file__}  # files whose frames a task's traceback leaves out (see format_task_traceback)


def format_task_traceback() -> str:
    """The traceback of the exception being handled, from the task's own first frame: the
    worker's frames above it say nothing about the task (never raises)."""
    try:
        exc = sys.exc_info()[1]
        if exc is None:
            return ""
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename in WORKER_FILES:
            tb = tb.tb_next
        return "".join(traceback.format_exception(type(exc), exc, tb))
    except BaseException as exc:  # the exception's __str__ may raise anything
        return f"<the traceback could not be formatted: {type(exc).__name__}>"


def _cut(text: str, size: int, note: str) -> str:
    return text if len(text) <= size else text[:size] + note


class TaskRunner:
    """Runs tasks one at a time and lets another thread interrupt the running one."""

    def __init__(self, reset: bool = True, garbage_collection: bool = False) -> None:
        self.reset = reset
        self.garbage_collection = garbage_collection
        self.current: int | None = None
        self.current_name: str | None = None
        self.deadline: float | None = None  # the running task's time limit (clock.monotonic())
        self.late = False  # the last call ended past its time limit, not interrupted
        #: Called (main thread) with a task's deadline as it starts: the thread that enforces it must see it in time.
        self.on_deadline: Callable[[float], None] | None = None
        self._pending: tuple[int, str, str] | None = None
        self._lock = threading.Lock()
        self.bytes_max: int | None = None
        self.result_max: int | None = None  # see limit_results
        self.installed = False
        self._main = 0  # the main thread's ident, once installed
        self._kept: dict[int, object] = {}  # the worker's signal handlers, put back after every task
        self._dispositions: dict[int, object] = {}  # and these signals' as tasks start from (install, rebase)
        self._baseline = ProcessBaseline()
        self._capture = WarningCapture()
        self._streams = StandardStreams()  # kept only by a worker that owns its process (install)
        self._interpreter = InterpreterSettings()  # likewise
        self._mask = SignalMask()  # likewise
        self._timers = StrayTimers()  # see pycrew.worker.timers (install)
        self._pid = os.getpid()  # a child a task forks is not this worker (see pycrew.worker.forks)

    def install(self) -> None:
        """Install the interrupt handler (main thread only)."""
        handler = self._on_signal  # one bound method, so that "is" finds it installed
        signal.signal(INTERRUPT_SIGNAL, handler)
        self.keep_handlers({INTERRUPT_SIGNAL: handler, **self._timers.install()})
        self._main = threading.get_ident()
        self.installed = True
        self._mask.take(self._kept)
        self._streams.take()
        self._interpreter.take()
        self._dispositions = signal_dispositions()

    def keep_handlers(self, handlers: Mapping[int, object]) -> None:
        """Put these signal handlers (number: handler) back after every task that replaced them
        (and take them away from a child a task forks: see :mod:`pycrew.worker.forks`)."""
        self._kept.update(handlers)
        forks.own_signals(handlers)
        if self.installed:  # the worker's signals must reach it
            self._mask.take(self._kept)

    def interrupt(self, task_id: int, status: str, message: str) -> bool:
        """Ask the running task ``task_id`` to stop (any thread); False if it is not running.

        Also False without the handler (:meth:`install`): the signal would end the process.
        """
        with self._lock:
            if not self.installed or self.current != task_id:
                return False
            self._pending = (task_id, status, message)
        # To the main thread itself: sent to the process, the signal may reach another
        # thread, and a task sleeping in the main thread would not wake before its sleep ends.
        signal.pthread_kill(self._main, INTERRUPT_SIGNAL)
        return True

    def _undelivered(self, task_id: int) -> tuple[str, str] | None:
        """The interrupt asked for while ``task_id`` ran that never reached it, as (status, message).

        The task blocked the signal in the main thread, or replaced its handler: it ran on
        past its cancel or time limit, but it is still cancelled or timed out (a value that
        comes back late does not count). The signal is unblocked for the tasks after (its
        handler is put back with the others after every task).
        """
        with self._lock:
            pending = self._pending
            if pending is None or pending[0] != task_id:
                return None
            self._pending = None
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {INTERRUPT_SIGNAL, *self._kept})
        note = (
            f"; the worker could not interrupt it ({signal.Signals(INTERRUPT_SIGNAL).name} was blocked or its "
            "handler replaced while it ran), so it ran to its end and its result was discarded"
        )
        return pending[1], pending[2] + note

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        pending = self._pending
        if pending is not None and self.current == pending[0]:
            self._pending = None
            raise Interrupted(pending[1], pending[2])

    def invoke_initializer(self, fn: Any, args: Any, kwargs: Any, seconds_limit: float | None, warns: list[str]) -> None:
        """Call the worker's initializer as a task (main thread; see :mod:`pycrew.worker.initializer`):
        warnings to ``warns``, :class:`Interrupted` past ``seconds_limit``."""
        self.deadline = deadline = None if not seconds_limit else clock.monotonic() + seconds_limit
        if deadline is not None and self.on_deadline is not None:
            self.on_deadline(deadline)
        self._call(INITIALIZER_ID, fn, args, kwargs, warns)

    def rebase(self) -> None:
        """Make the process as it is now the state tasks start from (after the initializer),
        but for the worker's signal handlers and interrupt signal (put back, unblocked)."""
        self._pending = None
        if self._kept:
            restore_handlers(self._kept)
        if self.installed:
            self._mask.take(self._kept)
            self._streams.streams = None
            self._streams.take()
            self._interpreter.saved = None
            self._interpreter.take()
            self._dispositions = signal_dispositions()

    def limit_results(self, bytes_max: int, result_max: int) -> None:
        """Make results larger than ``result_max`` bytes pickled error results.

        Args:
            bytes_max: the controller's ``bytes_max`` option (named in the error message).
            result_max: the largest pickled result that fits in one frame under it.
        """
        self.bytes_max = bytes_max
        self.result_max = result_max

    def run(self, task_id: int, payload: Payload) -> bytes:
        """Run one pickled task and return its pickled result tuple (never raises)."""
        try:
            return self._run(task_id, payload)
        except Interrupted as exc:  # arrived after the task's own handler: still this task's
            self.current = None
            return self._pack(ResultRecord(exc.status, error=str(exc), finished=clock.wall()))

    def _run(self, task_id: int, payload: Payload) -> bytes:
        t0 = clock.wall()
        warns: list[str] = []
        self.late = False  # (set as the task's call ends: see _invoke)
        if self.reset:
            self._baseline.take()
        seed_state: Any = None
        loaded = False
        failed: ResultRecord | None = None
        try:
            fn, args, kwargs, seed, name, seconds_timeout = load_task(payload)
            loaded = True
            self.current_name = name
            if seed is not None:
                seed_state = seed_generators(seed)
            if seconds_timeout:
                self.deadline = deadline = clock.monotonic() + seconds_timeout
                if self.on_deadline is not None:  # it sends the results waiting first: not the task's time
                    self.on_deadline(deadline)
                    self.deadline = clock.monotonic() + seconds_timeout
            else:
                self.deadline = None
            try:
                value = self._call(task_id, fn, args, kwargs, warns)
            finally:
                if seed_state is not None:
                    restore_generators(seed_state)
            if self._pending is not None and (late := self._undelivered(task_id)) is not None:
                failed = ResultRecord(late[0], None, late[1], "", "", None, warns, t0, clock.wall())
        except Interrupted as exc:
            failed = ResultRecord(exc.status, None, str(exc), "", format_task_traceback(), None, warns, t0, clock.wall())
        except BaseException as exc:  # the task's failure is the result: report it, keep serving
            t1 = clock.wall()
            text = exception_text(exc)
            if (hint := failure_hint(exc, loaded)) is not None:
                exc.add_note(hint)
                text = f"{text}: {hint}"
            tb = format_task_traceback()
            failed = ResultRecord("error", None, text, qualified_name(type(exc)), tb, _exception_bytes(exc), warns, t0, t1)
        finally:
            self._clean_up(warns)  # what it cannot undo becomes a warning of this task (packed below)
        if self.late and (failed is None or failed.status == "error"):  # it ended (returned or raised) past its limit
            failed = ResultRecord("timeout", None, OVERRAN.format(seconds_timeout), "", "", None, warns, t0, clock.wall())
        if failed is not None:
            if self.installed and failed.status in ("cancel", "timeout"):  # what it started ends too
                warns.extend(end_task_processes(t0))
            return self._pack(failed)
        t1 = clock.wall()
        try:
            # The record's wire tuple built directly (see pack_result): this runs between
            # every two tasks, where each call costs several times its warm time.
            data = _dumps(("success", value, "", "", "", None, warns, t0, t1))
        except BaseException as exc:  # a value's __reduce__ may raise anything (SystemExit too): an error result, not the worker's end
            kind = f"{qualified_name(type(exc))}: {exception_text(exc)}"
            message = (
                f"the task's return value ({type(value).__name__}) cannot be pickled: {kind}. Return picklable "
                "data (leave locks, generators, open files and connections out of the result)"
            )
            cause = _exception_bytes(pickle.PicklingError(kind))
            return self._pack(ResultRecord("error", None, message, SERIALIZATION_ERROR, format_task_traceback(), cause, warns, t0, t1))
        if self.result_max is not None and len(data) > self.result_max:
            message = (
                f"the task's return value ({type(value).__name__}) is {len(data):,} bytes pickled, more than one "
                f"message may carry under the controller's bytes_max={self.bytes_max} (at most {self.result_max:,} "
                "bytes of result); return less, write large data to shared storage and return its path, or raise bytes_max"
            )
            return self._pack(ResultRecord("error", None, message, SERIALIZATION_ERROR, "", None, warns, t0, t1))
        return data

    def _pack(self, record: ResultRecord) -> bytes:
        """Pickle a result record of plain fields, shrunk to fit ``result_max`` if needed."""
        data = pack_result(record)
        limit = self.result_max
        if limit is None or len(data) <= limit:
            return data
        # Error texts, tracebacks and warnings can be huge (a message quoting a large
        # value, thousands of warnings): keep their beginnings, drop the exception object.
        share = max(256, limit // 8)
        note = f" [... cut: the result had to fit in bytes_max={self.bytes_max}]"
        shrunk = record._replace(
            value=None,
            error=_cut(record.error, share, note),
            traceback=_cut(record.traceback, share, note),
            exception=None,
            warnings=[w for w in record.warnings[:64] if len(w) <= share // 64],
        )
        return pack_result(shrunk)

    def _call(self, task_id: int, fn: Any, args: Any, kwargs: Any, warns: list[str]) -> Any:
        """Call the task's function as the running task; its warnings go to ``warns``."""
        if self.installed:  # the worker owns its process: the capture stays installed
            capture = self._capture
            capture.start()
            try:
                return self._invoke(task_id, fn, args, kwargs)
            finally:
                warns.extend(capture.stop())
        # Worker loops sharing a process (a test harness): the warnings state is the process's.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                return self._invoke(task_id, fn, args, kwargs)
            finally:
                warns.extend(f"{w.category.__name__}: {w.message}" for w in caught)

    def _invoke(self, task_id: int, fn: Any, args: Any, kwargs: Any) -> Any:
        self.current = task_id
        try:
            value = fn(*args, **kwargs)
        except BaseException as exc:
            if forks.forked:  # a child the task forked ends here (see pycrew.worker.forks)
                forks.end_if_child(self._pid, exc)
            raise
        finally:
            self.late = self.deadline is not None and clock.monotonic() > self.deadline  # not interrupted in time
            self.current = None
            self.current_name = None
            self.deadline = None
        if forks.forked:
            forks.end_if_child(self._pid, None)
        return value

    def _clean_up(self, warns: list[str]) -> None:
        """Undo what a task changed that would leak into the next one (never raises: what
        cannot be undone is added to ``warns``, the task's warnings, and logged)."""
        try:
            restore_handlers(self._dispositions)
            if self._kept:  # a task may have replaced them: cancels need the interrupt handler (after: they win)
                restore_handlers(self._kept)
            self._mask.restore()  # and their signals unblocked
            if self._timers.notes:
                for note in self._timers.notes:
                    warns.append(note)
                    log.warning("%s", note)
                self._timers.notes.clear()
            if self.reset:
                if problems := self._baseline.restore():
                    warns.extend(problems)
                    for problem in problems:
                        log.warning("%s", problem)
                self._streams.restore()
                self._interpreter.restore()
            if self.garbage_collection:
                gc.collect()
        except Exception as exc:  # the next task must still run, and this one's result go back
            problem = f"RuntimeWarning: pycrew could not undo what the task changed in its worker: {type(exc).__name__}: {exc}"
            warns.append(problem)
            log.warning("%s", problem)

