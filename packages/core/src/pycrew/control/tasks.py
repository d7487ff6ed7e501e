"""Tasks on the controller side: the queued record, pickling and result decoding."""

from __future__ import annotations

import pickle
import time
from concurrent.futures import Future
from typing import Any, cast

import cloudpickle

from pycrew.errors import RemoteTraceback, SerializationError
from pycrew.results import Status, TaskResult
from pycrew.wire.records import ResultRecord

_SERIALIZATION_ERROR = f"{SerializationError.__module__}.{SerializationError.__qualname__}"


class Task:
    """One task as the dispatcher tracks it (small on purpose: many may be queued)."""

    __slots__ = (
        "attempts",
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
        self.relay: Any = None
        self.submitted = 0.0  # time.monotonic() at submit, set only while a dashboard measures round trips

    @property
    def name(self) -> str:
        """The task's name (``task_<id>`` when none was given)."""
        return self.given_name if self.given_name is not None else f"task_{self.id}"


def _describe(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) <= 80 else text[:77] + "..."


def _culprit(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """Find which part of a task does not pickle, for the error message."""
    parts: list[tuple[str, Any]] = [("the function", fn)]
    parts += [(f"argument {i}", a) for i, a in enumerate(args)]
    parts += [(f"keyword argument {k!r}", v) for k, v in kwargs.items()]
    for label, obj in parts:
        try:
            cloudpickle.dumps(obj)
        except Exception as exc:
            return f"{label} ({_describe(obj)}): {type(exc).__name__}: {exc}"
    return "unknown part"


def _plain_dumps(obj: Any) -> bytes | None:
    """Pickle with the C pickler when that is safe for a worker, else ``None``.

    Plain pickle stores functions and classes by reference, which a worker can load only
    if it can import them: anything from ``__main__`` or from a module registered with
    ``cloudpickle.register_pickle_by_value`` must go by value, so those fall back to
    cloudpickle, as does anything plain pickle refuses (lambdas, local functions).
    """
    try:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # not picklable by reference: cloudpickle decides
        return None
    if b"__main__" in data:
        return None
    by_value = getattr(cloudpickle.cloudpickle, "_PICKLE_BY_VALUE_MODULES", ())
    if by_value and any(name.encode() in data for name in by_value):
        return None
    return data


def pack_task(
    name: str,
    fn: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    seed: int | None,
    seconds_timeout: float | None = None,
) -> bytes:
    """Pickle a task for the wire.

    Raises:
        SerializationError: naming the object that cannot be pickled.
    """
    task = (fn, args, kwargs, seed, name, seconds_timeout)
    fast = _plain_dumps(task)
    if fast is not None:
        return fast
    try:
        payload: bytes = cloudpickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)
        return payload
    except Exception as exc:
        raise SerializationError(
            f"task {name!r} cannot be pickled: {_culprit(fn, args, kwargs)}. Tasks travel to "
            "workers with cloudpickle: pass picklable values (create locks, connections and "
            "open files inside the task instead)"
        ) from exc


def decode_result(task: Task, payload: bytes, where: dict[str, Any]) -> TaskResult:
    """Build the :class:`TaskResult` of a task from a worker's result payload.

    ``where`` carries the fields describing the worker (controller, launcher, worker,
    instance, host, pid). A payload that cannot be unpickled here (e.g. the value's
    class is not importable on the controller) becomes an ``error`` result saying so.
    """
    try:
        record = ResultRecord.from_wire(pickle.loads(payload))
    except BaseException as exc:  # SystemExit from a __reduce__ must not end the dispatcher
        return TaskResult(
            name=task.name,
            status="error",
            error=f"the result could not be unpickled on the controller: {type(exc).__name__}: {exc}",
            error_type="pycrew.errors.SerializationError",
            time_end=time.time(),
            attempts=task.attempts,
            seed=task.seed,
            exception=SerializationError(f"result of task {task.name!r} could not be unpickled: {exc}"),
            **where,
        )
    status = cast(Status, record.status)  # the worker sends one of STATUSES
    error, tb, t0, t1 = record.error, record.traceback, record.started, record.finished
    exception: BaseException | None = None
    if record.exception is not None:
        try:
            exception = pickle.loads(record.exception)
        except BaseException:  # the type may not exist here (or its __reduce__ raises); the text fields still say it all
            exception = None
        if exception is not None and tb:
            exception.__cause__ = RemoteTraceback(tb)
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
        seconds=(t1 - t0) if t0 is not None and t1 is not None else 0.0,
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
