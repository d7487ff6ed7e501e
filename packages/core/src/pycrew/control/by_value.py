"""Classes a task's arguments refer to by value, pickled once per class: :func:`dumps`.

A task whose arguments hold instances of a class workers cannot import (a dataclass of
the script, a class of a module registered with ``cloudpickle.register_pickle_by_value``)
used to be pickled whole with cloudpickle, which pickles the class by value again for
every task: ~120 us and 4 KB for a small dataclass, and the worker rebuilt the class for
every task too (a map over such arguments ran at half ProcessPoolExecutor's rate).
:func:`dumps` pickles the task with the C pickler and a ``reducer_override`` that carries
each such class, and each function by value among the arguments, as bytes made once
(cloudpickle's): a worker loads them through :func:`pycrew.wire.functions.load_function`,
so it unpickles each class once and every task gets the same class object. A class the
controller finds under its module and name goes back in results by that name
(:class:`pycrew.wire.functions.ResultPickler`), not by value with every result.

Kept bytes are reused while the class (and every class by value in its MRO) still has the
same attributes, identical objects, and each function among them the same code, defaults,
closure cells and globals (as a task's function, see :mod:`pycrew.control.pickling`).
"""

from __future__ import annotations

import io
import pickle
import threading
import weakref
from types import FunctionType
from typing import Any

import cloudpickle

from pycrew.control.pickling import (
    _MAIN,
    FunctionBytes,
    _by_value_modules,
    _Inputs,
    names_beyond,
    shipped_function,
)
from pycrew.fork_safety import free_after_fork
from pycrew.wire.functions import CACHE_BYTES_MAX, class_by_name, load_class, load_function

_by_reference = getattr(cloudpickle.cloudpickle, "_should_pickle_by_reference", None)


def _goes_by_value(cls: type) -> bool:
    """Whether cloudpickle pickles ``cls`` by value (a worker cannot import it)."""
    if _by_reference is not None:
        try:
            return not _by_reference(cls)
        except Exception:  # an odd class: let the pickler decide as it would
            return False
    module = getattr(cls, "__module__", None)
    return module == "__main__" or (isinstance(module, str) and module in _by_value_modules())


def _values(cls: type) -> list[Any]:
    """The attributes of ``cls`` and of every class by value in its MRO."""
    values: list[Any] = []
    for klass in cls.__mro__:
        if klass is not object and _goes_by_value(klass):
            values.extend(vars(klass).values())
    return values


class _KeptClass:
    """A class's cloudpickle bytes and what they were made of."""

    __slots__ = ("by_name", "data", "functions", "mains", "ref", "values")

    def __init__(self, cls: type, data: bytes, ref: weakref.ref[type]) -> None:
        self.ref = ref
        self.data = data
        try:  # results may refer to it by name (see pycrew.wire.functions.ResultPickler)
            self.by_name = "<locals>" not in cls.__qualname__ and class_by_name(cls.__module__, cls.__qualname__) is cls
        except Exception:
            self.by_name = False
        self.mains = data.count(_MAIN)
        self.values = _values(cls)
        functions = (getattr(value, "__func__", value) for value in self.values)  # staticmethod, classmethod
        self.functions = [(fn, _Inputs(fn)) for fn in functions if type(fn) is FunctionType]

    def holds(self, cls: type) -> bool:
        """Whether ``cls`` still is what the bytes were made of."""
        values = _values(cls)
        if len(values) != len(self.values) or any(a is not b for a, b in zip(values, self.values, strict=True)):
            return False
        return all(inputs.hold(fn) for fn, inputs in self.functions)


# id(cls) -> its _KeptClass; an entry leaves when its class is collected.
_kept: dict[int, _KeptClass] = {}
_lock = threading.Lock()
free_after_fork(_lock)  # (a thread may hold it at a fork)


def _forget(key: int, ref: weakref.ref[type]) -> None:
    with _lock:
        entry = _kept.get(key)
        if entry is not None and entry.ref is ref:
            del _kept[key]


def class_bytes(cls: type) -> _KeptClass | None:
    """The kept bytes of a class by value (made now if it changed or is new); ``None`` if
    cloudpickle cannot pickle it, or it pickles larger than a worker keeps."""
    entry = _kept.get(id(cls))
    if entry is not None and entry.ref() is cls and entry.holds(cls):
        return entry
    try:
        data: bytes = cloudpickle.dumps(cls, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return None
    if len(data) > CACHE_BYTES_MAX:
        return None
    key = id(cls)
    entry = _KeptClass(cls, data, weakref.ref(cls, lambda r: _forget(key, r)))
    with _lock:
        _kept[key] = entry
    return entry


class _Pickler(pickle.Pickler):
    """The C pickler, carrying classes and functions by value as their kept bytes; counts
    the ``__main__`` names those bytes bring (the caller checks the pickle holds no other)."""

    def __init__(self, file: io.BytesIO, mains: int) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.mains = mains
        self.kept: list[bytes] = []

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is FunctionType:
            packed = shipped_function(obj)
            if type(packed) is not FunctionBytes:
                return NotImplemented
            self.mains += packed.mains
            self.kept.append(packed.text)
            return (load_function, (packed.data,) if packed.filename is None else (packed.data, packed.filename))
        if isinstance(obj, type) and obj is not object and _goes_by_value(obj):
            entry = class_bytes(obj)
            if entry is None:
                return NotImplemented
            self.mains += entry.mains
            self.kept.append(entry.data)
            return (load_class, (entry.data, entry.by_name))
        return NotImplemented


def dumps(task: tuple[Any, ...], fn: FunctionBytes | None) -> bytes | None:
    """``task`` pickled with classes and functions by value carried as kept bytes, or
    ``None`` if the pickle still names something a worker cannot import (the caller then
    uses cloudpickle for the whole task). ``fn``: the task's function, already kept."""
    buffer = io.BytesIO()
    pickler = _Pickler(buffer, fn.mains if fn is not None else 0)
    try:
        pickler.dump(task)
    except Exception:
        return None
    data = buffer.getvalue()
    if not pickler.kept and fn is None:
        return None  # nothing carried: plain pickle said no already
    kept = [*pickler.kept, *((fn.text,) if fn is not None else ())]
    return None if names_beyond(data, pickler.mains, kept) else data
