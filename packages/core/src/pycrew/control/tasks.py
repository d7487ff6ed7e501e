"""Tasks on the controller side: the queued record and result decoding (pickling: :mod:`pycrew.control.pickling`)."""

from __future__ import annotations

import pickle
import time
from concurrent.futures import Future
from typing import Any, cast

from pycrew.control.quoting import said
from pycrew.errors import RemoteTraceback, SerializationError
from pycrew.results import Status, TaskResult
from pycrew.wire.records import RESULT_FIELDS, ResultRecord

_SERIALIZATION_ERROR = f"{SerializationError.__module__}.{SerializationError.__qualname__}"


class Task:
    """One task as the dispatcher tracks it (small on purpose: many may be queued)."""

    __slots__ = (
        "attempts",
        "cancel_back",
        "crashes",
        "future",
        "given_name",
        "id",
        "keep",
        "payload",
        "relay",
        "resolved",
        "running",
        "seconds_timeout",
        "seed",
        "submitted",
        "suspect",
    )

    def __init__(
        self,
        id: int,
        name: str | None,
        payload: bytes,
        future: Future[Any] | None,
        keep: bool,
        seed: int | None = None,
        seconds_timeout: float | None = None,
    ) -> None:
        self.id = id
        self.given_name = name  # None: named task_<id> on demand (saves a string per queued task)
        self.payload = payload
        self.future = future
        self.keep = keep
        self.attempts = 0
        self.crashes = 0
        self.seed = seed
        self.seconds_timeout = seconds_timeout
        self.running = False
        self.resolved = False
        # its worker died while it and others were on it, any of which may have killed it: it
        # runs alone on a worker from then on, so that a death there is its own (see Upkeep._requeue)
        self.suspect = False
        self.relay: Any = None
        self.submitted = 0.0  # time.monotonic() at submit, set only while a dashboard measures round trips
        self.cancel_back: str | None = None  # recalled to be cancelled if not started: why (see Recall.recall_to_cancel)

    @property
    def name(self) -> str:
        """The task's name (``task_<id>`` when none was given)."""
        return self.given_name if self.given_name is not None else f"task_{self.id}"


class ById:
    """A predicate: the task with this id; the dispatcher looks it up on the workers before
    it scans the queue (cancelling half of 100,000 futures scanned it 50,000 times)."""

    __slots__ = ("id",)

    def __init__(self, task_id: int) -> None:
        self.id = task_id

    def __call__(self, task: Task) -> bool:
        return task.id == self.id


#: The statuses a worker may report (``crash`` is the controller's verdict, never a worker's).
WORKER_STATUSES = frozenset(("success", "error", "cancel", "timeout"))


def record_problem(fields: Any) -> str | None:
    """What is wrong with an unpickled result record, or ``None`` if it is well formed.

    A worker runs user code and may be anything that proved a token, so nothing in a
    record is trusted: a field of the wrong type would otherwise fail later, on the
    dispatcher's thread, with the task half resolved.
    """
    if type(fields) is not tuple or len(fields) != RESULT_FIELDS:
        got = f"a tuple of {len(fields)} fields" if type(fields) is tuple else f"a {type(fields).__name__}"
        return f"a result record is a tuple of {RESULT_FIELDS} fields, got {got}"
    status, _value, error, error_type, tb, exception, warns, started, finished = fields
    if status not in WORKER_STATUSES:
        return f"status {status!r} is not one of {sorted(WORKER_STATUSES)}"
    for name, text in (("error", error), ("error_type", error_type), ("traceback", tb)):
        if type(text) is not str:
            return f"{name} must be a str, got {type(text).__name__}"
    if exception is not None and type(exception) is not bytes:
        return f"exception must be bytes or None, got {type(exception).__name__}"
    if type(warns) not in (list, tuple) or any(type(w) is not str for w in warns):
        return "warnings must be a list of str"
    for name, moment in (("started", started), ("finished", finished)):
        if not (moment is None and name == "started") and type(moment) not in (float, int):
            return f"{name} must be a number, got {type(moment).__name__}"
    return None


def _unreadable(task: Task, why: str, where: dict[str, Any]) -> TaskResult:
    return TaskResult(
        name=task.name,
        status="error",
        error=why,
        error_type=_SERIALIZATION_ERROR,
        time_end=time.time(),
        attempts=task.attempts,
        seed=task.seed,
        exception=SerializationError(f"task {task.name!r}: {why}"),
        **where,
    )


def decode_result(task: Task, payload: bytes, where: dict[str, Any]) -> TaskResult:
    """Build the :class:`TaskResult` of a task from a worker's result payload.

    ``where`` carries the fields describing the worker (controller, launcher, worker,
    instance, host, pid). A payload that cannot be unpickled here (e.g. the value's
    class is not importable on the controller) or is not a well-formed record becomes an
    ``error`` result with a :class:`~pycrew.SerializationError` saying so; this never raises.
    """
    try:
        fields = pickle.loads(payload)
    except BaseException as exc:  # SystemExit from a __reduce__ must not end the dispatcher
        return unpickling_failed(task, exc, where)
    return decode_fields(task, fields, where)


#: What to do about a result that refers to a module (or a name in one) the controller cannot import.
IMPORT_HINT = (
    "the result refers to a module, or a name in one, that this Python cannot import (one only the workers have, "
    "or another version of it than the workers'): install the same version here, or have the task return plain "
    "values (convert them before it returns)"
)


def unpickling_failed(task: Task, exc: BaseException, where: dict[str, Any]) -> TaskResult:
    """The error result of a task whose result payload raised ``exc`` when unpickled (its cause)."""
    why = f"the result could not be unpickled on the controller: {said(exc)}"
    if isinstance(exc, ImportError) or (isinstance(exc, AttributeError) and "Can't get attribute" in str(exc)):
        why += f"; {IMPORT_HINT}"
    result = _unreadable(task, why, where)
    if result.exception is not None and isinstance(exc, Exception):  # (not a SystemExit or KeyboardInterrupt it raised)
        result.exception.__cause__ = exc.with_traceback(None)  # (its frames would keep the payload alive)
    return result


def decode_fields(task: Task, fields: Any, where: dict[str, Any]) -> TaskResult:
    """:func:`decode_result` after the unpickling: ``fields`` is what the payload held."""
    problem = record_problem(fields)
    if problem is not None:
        return _unreadable(task, f"its worker sent a malformed result record: {problem}", where)
    record = ResultRecord.from_wire(fields)
    status = cast(Status, record.status)
    error, tb, t0, t1 = record.error, record.traceback, record.started, record.finished
    exception: BaseException | None = None
    if record.exception is not None:
        try:
            loaded = pickle.loads(record.exception)
        except BaseException:  # the type may not exist here (or its __reduce__ raises); the text fields still say it all
            loaded = None
        if isinstance(loaded, BaseException):  # anything else (a __reduce__ may return any object) is dropped
            exception = loaded
            if tb:
                try:
                    exception.__cause__ = RemoteTraceback(tb)
                except BaseException:  # an exception type may refuse a cause; the traceback is in the result
                    pass
    if status == "error" and record.error_type == _SERIALIZATION_ERROR and not isinstance(exception, SerializationError):
        # The worker could not pickle or send the result. It names the error by type (it
        # imports nothing of the controller side); the pickling error, when it came along,
        # is the cause, and the worker's traceback the cause's cause.
        cause = exception if exception is not None else (RemoteTraceback(tb) if tb else None)
        exception = SerializationError(f"task {task.name!r}: {error}")
        exception.__cause__ = cause
    return TaskResult(
        name=task.name,
        result=record.value,
        status=status,
        error=error,
        error_type=record.error_type,
        traceback=tb,
        warnings=tuple(record.warnings),
        seconds=(t1 - t0) if t0 is not None else 0.0,
        time_start=t0,
        time_end=t1,
        attempts=task.attempts,
        seed=task.seed,
        exception=exception,
        **where,
    )


def local_result(task: Task, status: Status, error: str, error_type: str, where: dict[str, Any]) -> TaskResult:
    """A result made on the controller (crash, cancel, timeout) rather than by a worker."""
    return TaskResult(
        name=task.name,
        status=status,
        error=error,
        error_type=error_type,
        time_end=time.time(),
        attempts=task.attempts,
        seed=task.seed,
        **where,
    )
