"""A task's result and the exception it raised, pickled for the controller (worker side).

Plain pickle first (fast); the controller's classes by name (see
:class:`pycrew.wire.functions.ResultPickler`); cloudpickle for what neither can do. The
functions are bound at import, out of a task's reach (a task that mocks ``pickle.dumps``
cannot garble its worker's results).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable

from pycrew.wire import functions
from pycrew.wire.exceptions import ByState
from pycrew.wire.functions import ResultPickler, pickle_dumps, pickle_loads
from pycrew.wire.records import ResultRecord

_cloudpickle_dumps: Callable[..., bytes] | None = None


def _cloudpickle(value: object) -> bytes:
    """``cloudpickle.dumps``, imported when first needed (a worker starts faster without it)
    and kept from then on, out of a task's reach like :data:`pickle_dumps`."""
    global _cloudpickle_dumps
    if _cloudpickle_dumps is None:
        import cloudpickle

        _cloudpickle_dumps = cloudpickle.dumps
    return _cloudpickle_dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def dumps(value: object) -> bytes:
    """Pickle a value: plain pickle first (fast), then with the controller's classes by name
    (see :class:`ResultPickler`), cloudpickle for what neither can do."""
    try:
        return pickle_dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # lambdas, local classes, ...: cloudpickle handles them by value
        if functions._shipped_classes:
            buffer = io.BytesIO()
            try:
                ResultPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
                return buffer.getvalue()
            except Exception:
                pass
        return _cloudpickle(value)


_UNLOADABLE = object()


def exception_bytes(exc: BaseException) -> bytes | None:
    """An exception pickled for the controller, or None if it does not travel.

    One that pickles but does not unpickle (an ``__init__`` with other arguments than its
    ``args``) travels by its state (see :mod:`pycrew.wire.exceptions`).
    """
    try:
        data = _cloudpickle(exc)
    except BaseException:  # its __reduce__ may raise anything (SystemExit too); the text fields describe it
        return None
    try:
        back = pickle_loads(data)
    except BaseException:  # rebuilt by calling its class with its args, which it does not take
        back = _UNLOADABLE
    # A __reduce__ may rebuild it as any object at all: only an exception travels as one.
    if isinstance(back, BaseException):
        return data
    if back is not _UNLOADABLE:
        return None
    try:
        data = _cloudpickle(ByState(exc))
        back = pickle_loads(data)
    except BaseException:  # an attribute that does not pickle, a class that cannot be made: the text fields say it
        return None
    return data if type(back) is type(exc) else None


def pack_result(record: ResultRecord) -> bytes:
    """A result record pickled as the plain tuple the wire carries (see :mod:`pycrew.wire.records`)."""
    return dumps(tuple(record))
