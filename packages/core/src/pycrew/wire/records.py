"""Records inside the frames: what a worker reports about one task.

A RESULTS frame (see :mod:`pycrew.wire.protocol`) carries ``(task id, payload)`` records;
each payload is a pickled :class:`ResultRecord`. The worker pickles it as a plain
tuple (``tuple(record)``), so that the controller needs no pycrew class to read the
outer structure and the pickle stays as small and fast as a bare tuple; the controller
turns it back with :meth:`ResultRecord.from_wire`. Nothing here pickles or unpickles.
"""

from __future__ import annotations

from typing import Any, NamedTuple

#: Fields of a result record, in wire order.
RESULT_FIELDS = 9


class ResultRecord(NamedTuple):
    """The outcome of one task, as a worker sends it (field order is the wire format).

    Attributes:
        status: ``"success"``, ``"error"``, ``"cancel"`` or ``"timeout"``.
        value: the task's return value (``None`` unless ``status`` is ``"success"``).
        error: the error message (``""`` on success).
        error_type: the qualified name of the exception's type (``""`` if none).
        traceback: the worker's formatted traceback (``""`` if none).
        exception: the exception, pickled on its own, if it could be (else ``None``).
        warnings: ``"Category: message"`` of each warning the task raised.
        started: when the task started (``time.time()``), ``None`` if it never did.
        finished: when it ended (``time.time()``).
    """

    status: str
    value: Any = None
    error: str = ""
    error_type: str = ""
    traceback: str = ""
    exception: bytes | None = None
    warnings: list[str] = []  # noqa: RUF012 - NamedTuple defaults are shared; never mutated
    started: float | None = None
    finished: float = 0.0

    @classmethod
    def from_wire(cls, fields: Any) -> ResultRecord:
        """The record of an unpickled payload (a tuple of :data:`RESULT_FIELDS` fields).

        Raises:
            ValueError: ``fields`` is not a tuple of that many fields.
        """
        if type(fields) is not tuple or len(fields) != RESULT_FIELDS:
            got = f"a tuple of {len(fields)} fields" if type(fields) is tuple else f"a {type(fields).__name__}"
            raise ValueError(f"a result record is a tuple of {RESULT_FIELDS} fields, got {got}")
        return _new_tuple(cls, fields)  # what _make does, without its second length check (once per result)


_new_tuple = tuple.__new__
