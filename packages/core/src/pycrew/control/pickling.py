"""Pickling a task for the wire: plain pickle where a worker can load it, cloudpickle where not.

A task travels as one pickle of ``(fn, args, kwargs, seed, name, seconds_timeout)``.

- Plain (C) pickle is tried first: it is several times faster than cloudpickle, and
  stores functions and classes by reference, which a worker loads by importing them. A
  task's *function* that goes by reference is pickled once per function object too, and
  travels as those bytes (see :func:`shipped_function`). When every argument is a plain
  int, float, str, bytes, bool or ``None``, or a NumPy array of numbers, the task's pickle
  is not searched for names a worker cannot import (only the function could hold one, and
  it was checked when kept): for a 20 MB argument the search took as long as the pickling.
- Anything a worker cannot import (defined in ``__main__``, lambdas, closures, modules
  registered with ``cloudpickle.register_pickle_by_value``) goes by value, with cloudpickle.
  Classes and functions by value among a task's arguments travel as bytes made once per
  object too (see :mod:`pycrew.control.by_value`); a task is pickled whole with cloudpickle
  only when something else in it names such a module.
- A task's *function* that goes by value is pickled once per function object and kept
  (weakly: as long as the function lives) as :class:`FunctionBytes`, which the worker
  loads through :func:`pycrew.wire.functions.load_function` (unpickled once per worker).
  ``map`` over a function defined in a script thus pickles it once, not once per item
  (cloudpickle takes ~37 us for a small function; a task's whole pickle then ~2 us). A
  ``functools.partial`` of such a function travels as :class:`ShippedPartial`: the
  function as its kept bytes, the partial's arguments plain-pickled with each task.
  Before each reuse the kept bytes are checked against the function as it is now: its
  code, defaults, closure cells and the globals its code names must be the *same objects*
  as when it was pickled (a rebound global, ``f.__defaults__ = ...``, a redefined helper:
  pickled anew). What this cannot see is a global changed *in place* (an item set in a
  module-level dict or list) after the function was first submitted: such values travel
  as they were then. Pass values that change as arguments.
"""

from __future__ import annotations

import base64
import pickle
import threading
import weakref
from collections.abc import Sequence
from functools import partial
from types import BuiltinFunctionType, CodeType, FunctionType, ModuleType
from typing import Any

import cloudpickle

from pycrew.control.quoting import said, shown
from pycrew.errors import SerializationError
from pycrew.fork_safety import free_after_fork
from pycrew.wire.functions import CACHE_BYTES_MAX, DYNAMIC_CODE, call_by_name, load_function

_MAIN = b"__main__"


class FunctionBytes:
    """A task function pickled by value, once; a task's pickle carries it as these bytes,
    with the name of the file the function was defined in (cloudpickle ships code as
    ``<dynamic-code>``; the worker puts the name back, for its tracebacks)."""

    __slots__ = ("data", "filename", "mains", "text")

    def __init__(self, data: bytes, filename: str | None = None) -> None:
        self.data = data
        self.filename = filename
        # what a task's pickle holds of this (see plain_dumps, which counts names in it)
        self.text = data if filename is None else data + filename.encode("utf-8", "surrogatepass")
        self.mains = self.text.count(_MAIN)

    def __reduce__(self) -> tuple[Any, tuple[bytes] | tuple[bytes, str]]:
        return (load_function, (self.data,) if self.filename is None else (self.data, self.filename))


class ShippedPartial:
    """A ``functools.partial`` of a function pickled by value, as a task carries it: the
    partial's function as its kept :class:`FunctionBytes`, so that the task pickles with
    plain pickle (its arguments, a large array say, pickled once, not tried with plain
    pickle and then again with cloudpickle), and a worker loads the function through
    its cache. It unpickles as the partial itself."""

    __slots__ = ("func", "partial")

    def __init__(self, func: FunctionBytes, original: partial[Any]) -> None:
        self.func = func
        self.partial = original

    def plain(self) -> bool:
        """Whether the partial's own arguments are all plain values (see :func:`_plain`)."""
        p = self.partial
        return not p.__dict__ and _plain(p.args, p.keywords)

    def __reduce__(self) -> tuple[Any, ...]:
        p = self.partial  # as partial.__reduce__, with the function's bytes in its place
        return (partial, (self.func,), (self.func, p.args, p.keywords or None, p.__dict__ or None))


_MISSING = object()


def _code_names(code: CodeType) -> set[str]:
    """The names ``code`` (and the code nested in it) looks up: its globals among them."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            names |= _code_names(const)
    return names


def _cell_value(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell
        return _MISSING


class _Inputs:
    """What a function's pickle by value was made of, to tell whether it still holds."""

    __slots__ = ("cells", "code", "defaults", "globals", "kwdefaults")

    def __init__(self, fn: FunctionType) -> None:
        self.code = fn.__code__
        self.defaults = fn.__defaults__
        self.kwdefaults = fn.__kwdefaults__
        self.cells = tuple(_cell_value(c) for c in fn.__closure__ or ())
        scope = fn.__globals__
        self.globals = tuple((name, scope.get(name, _MISSING)) for name in sorted(_code_names(fn.__code__)))

    def hold(self, fn: FunctionType) -> bool:
        """Whether ``fn`` still has these same objects (identity, not equality)."""
        if fn.__code__ is not self.code or fn.__defaults__ is not self.defaults or fn.__kwdefaults__ is not self.kwdefaults:
            return False
        cells = fn.__closure__ or ()
        if len(cells) != len(self.cells) or any(_cell_value(c) is not v for c, v in zip(cells, self.cells, strict=True)):
            return False
        scope = fn.__globals__
        return all(scope.get(name, _MISSING) is value for name, value in self.globals)


_EMPTY: frozenset[str] = frozenset()


def _by_value_modules() -> set[str] | frozenset[str]:
    """The modules registered with ``cloudpickle.register_pickle_by_value`` (cloudpickle's own set)."""
    registry: set[str] | frozenset[str] = getattr(cloudpickle.cloudpickle, "_PICKLE_BY_VALUE_MODULES", _EMPTY)
    return registry


class _Kept:
    """What :func:`shipped_function` decided for one function object."""

    __slots__ = ("inputs", "packed", "ref")

    def __init__(self, ref: weakref.ref[FunctionType], packed: FunctionBytes | bytes, inputs: _Inputs | None) -> None:
        self.ref = ref
        self.packed = packed  # bytes: the function's plain pickle, by reference (inputs None)
        self.inputs = inputs


# id(fn) -> its _Kept, read without a lock on every submit (a WeakKeyDictionary and a lock
# cost ~1.3 us a task; this ~0.2 us); an entry leaves when its function is collected.
_kept: dict[int, _Kept] = {}
_kept_lock = threading.Lock()
free_after_fork(_kept_lock)  # (a thread may hold it at a fork)
_registry_seen: frozenset[str] = _EMPTY  # the by-value modules the kept decisions assumed
# id(fn) -> (fn, its plain pickle) for a C module's functions (abs, math.sqrt): they live as
# long as their module and take no weak references, so they are held (one per function).
_builtins: dict[int, tuple[Any, bytes]] = {}


def _builtin_bytes(fn: Any) -> Any:
    """A C module's function as its plain pickle, made once; anything else as itself."""
    entry = _builtins.get(id(fn))
    if entry is not None and entry[0] is fn:
        return entry[1]
    if type(fn.__self__) is not ModuleType:  # a method bound to an object: pickled with it
        return fn
    try:
        data = pickle.dumps(fn, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # not found by its name: cloudpickle decides (and names the culprit)
        return fn
    with _kept_lock:
        _builtins[id(fn)] = (fn, data)
    return data


def _forget(key: int, ref: weakref.ref[FunctionType]) -> None:
    lock, kept = _kept_lock, _kept
    if lock is None or kept is None:  # the interpreter's exit has cleared this module
        return
    with lock:
        entry = kept.get(key)
        if entry is not None and entry.ref is ref:
            del kept[key]


def _keep(fn: FunctionType, packed: FunctionBytes | bytes, inputs: _Inputs | None) -> None:
    key = id(fn)
    ref = weakref.ref(fn, lambda r: _forget(key, r))
    with _kept_lock:
        _kept[key] = _Kept(ref, packed, inputs)


def plain_dumps(obj: Any, fn: FunctionBytes | None = None) -> bytes | None:
    """``obj`` pickled with the C pickler if a worker can load that, else ``None``.

    Plain pickle stores functions and classes by reference, which a worker can load only
    if it can import them: anything from ``__main__`` or from a module registered with
    ``cloudpickle.register_pickle_by_value`` must go by value, so those return ``None``
    (the caller uses cloudpickle), as does anything plain pickle refuses. ``fn``: a
    function already pickled by value inside ``obj``, whose own bytes may name those.
    """
    try:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # not picklable by reference: cloudpickle decides
        return None
    by_value = _by_value_modules()
    if fn is None:
        if _MAIN in data or (by_value and any(name.encode() in data for name in by_value)):
            return None
        return data
    return None if names_beyond(data, fn.mains, (fn.text,)) else data


def names_beyond(data: bytes, mains: int, kept: Sequence[bytes]) -> bool:
    """Whether the pickle ``data`` names ``__main__`` or a module registered by value more
    often than the kept bytes it carries do (``mains``: their ``__main__`` count; ``kept``:
    their text), that is, somewhere a worker could not load."""
    if data.count(_MAIN) > mains:
        return True
    registry = _by_value_modules()
    return bool(registry) and any(
        data.count(encoded) > sum(text.count(encoded) for text in kept) for encoded in (name.encode() for name in registry)
    )


def shipped_function(fn: Any) -> Any:
    """What a task carries for ``fn``: ``fn`` itself, its plain pickle, or its :class:`FunctionBytes`.

    Only plain Python functions, and a C module's (``abs``, ``math.sqrt``), are kept. One
    that plain pickle stores by reference is carried as that pickle (``bytes``: its module
    and name), made once: pickling a function by reference looks its module up and checks
    that the name leads back to it, ~0.6 us a task (the worker unpickles such bytes once,
    like :class:`FunctionBytes`). Kept :class:`FunctionBytes` are reused while the function
    still has the objects they were made of (see the module's notes). Anything else, and a
    function cloudpickle cannot pickle, is carried as itself, so that :func:`pack_task`
    names the culprit.
    """
    if type(fn) is not FunctionType:
        if type(fn) is partial and type(fn.func) is FunctionType:
            inner = shipped_function(fn.func)
            return ShippedPartial(inner, fn) if type(inner) is FunctionBytes else fn
        return _builtin_bytes(fn) if type(fn) is BuiltinFunctionType else fn
    global _registry_seen
    registry = _by_value_modules()
    if len(registry) != len(_registry_seen) or (registry and registry != _registry_seen):
        with _kept_lock:  # register_pickle_by_value changed what goes by reference
            _kept.clear()
            _registry_seen = frozenset(registry)
    entry = _kept.get(id(fn))
    if entry is not None and entry.ref() is fn:
        if entry.inputs is None or entry.inputs.hold(fn):
            return entry.packed
    by_reference = plain_dumps(fn)
    if by_reference is not None:
        _keep(fn, by_reference, None)
        return by_reference
    inputs = _Inputs(fn)
    try:
        data: bytes = cloudpickle.dumps(fn, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return fn
    filename = fn.__code__.co_filename
    packed = FunctionBytes(data, None if filename == DYNAMIC_CODE else filename)
    if len(data) <= CACHE_BYTES_MAX:  # larger: pickled per task (and not kept by workers)
        _keep(fn, packed, inputs)
    return packed


def _culprit(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """Find which part of a task does not pickle, for the error message."""
    parts: list[tuple[str, Any]] = [("the function", fn)]
    parts += [(f"argument {i}", a) for i, a in enumerate(args)]
    parts += [(f"keyword argument {k!r}", v) for k, v in kwargs.items()]
    for label, obj in parts:
        try:
            cloudpickle.dumps(obj)
        except Exception as exc:
            return _batch_culprit(obj) or f"{label} ({shown(obj)}): {said(exc)}"
    return "unknown part"


def _batch_culprit(batch: Any) -> str | None:
    """In a joblib batch (``BatchedCalls``, the function of a task of pycrew's joblib
    backend), the call and its part that do not pickle: else the message named only the batch."""
    items = getattr(batch, "items", None) if type(batch).__name__ == "BatchedCalls" else None
    for i, item in enumerate(items if isinstance(items, list) else []):
        if isinstance(item, tuple) and len(item) == 3:
            fn, args, kwargs = item
            part = _culprit(fn, tuple(args), dict(kwargs))
            if part != "unknown part":
                return f"call {i} of its joblib batch, {part}"
    return None


#: Types whose pickle names no class or function (exact types: an instance of a subclass
#: is pickled with a reference to its class, which may be in ``__main__``).
_PLAIN_TYPES = frozenset((int, float, str, bytes, bool, type(None)))


def _plain_array(value: Any) -> bool:
    """Whether ``value`` is a NumPy array of plain numbers: its pickle names only NumPy's own
    functions and types (not an array of objects, a structured one, one whose dtype carries
    metadata, or an instance of a subclass, whose pickles may name anything)."""
    kind = type(value)
    if kind.__name__ != "ndarray" or kind.__module__ != "numpy":
        return False
    dtype = value.dtype
    if dtype.hasobject or dtype.fields is not None or dtype.metadata is not None:
        return False
    registry = _by_value_modules()  # NumPy itself registered by value: its names would go too
    return not registry or all(name.partition(".")[0] != "numpy" for name in registry)


def _plain(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether every argument is of a :data:`_PLAIN_TYPES` type (an int, a str, ...) or a
    NumPy array of numbers: then the task's pickle need not be searched for module names
    (a search that costs as much as the pickling itself for a large array)."""
    for value in args:
        if type(value) not in _PLAIN_TYPES and not _plain_array(value):
            return False
    return not kwargs or all(type(value) in _PLAIN_TYPES or _plain_array(value) for value in kwargs.values())


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
    shipped = shipped_function(fn)
    task = (shipped, args, kwargs, seed, name, seconds_timeout)
    plain = _PLAIN_TYPES
    if (
        (
            type(shipped) is bytes
            or type(shipped) is FunctionBytes
            or (type(shipped) is ShippedPartial and shipped.plain())
        )
        and type(name) is str
        and type(seed) in plain
        and type(seconds_timeout) in plain
        and _plain(args, kwargs)
    ):  # nothing but the function (checked when kept) can name a module: no need to look
        return pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)
    inner = shipped.func if type(shipped) is ShippedPartial else shipped
    fast = plain_dumps(task, inner if type(inner) is FunctionBytes else None)
    if fast is not None:
        return fast
    from pycrew.control import by_value  # it imports this module

    kept = by_value.dumps(task, inner if type(inner) is FunctionBytes else None)
    if kept is not None:  # a script's classes among the arguments, as bytes made once
        return kept
    try:
        payload: bytes = cloudpickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)
        return payload
    except Exception as exc:
        raise SerializationError(
            f"task {name!r} cannot be pickled: {_culprit(fn, args, kwargs)}. Tasks travel to "
            "workers with cloudpickle: pass picklable values (create locks, connections and "
            "open files inside the task instead)"
        ) from exc


def pack_initializer(fn: Any, initargs: tuple[Any, ...], seconds_limit: float | None) -> str:
    """The controller's ``initializer`` pickled for the workers' WELCOME, laid out as a task
    (see :mod:`pycrew.worker.initializer`), in base64 (the WELCOME is JSON).

    Raises:
        SerializationError: naming the option and the part that cannot be pickled.
    """
    if isinstance(fn, str):  # "package.module:function": imported by the worker (see call_by_name)
        fn, initargs = call_by_name, (fn, *initargs)
    try:
        return base64.b64encode(pack_task("initializer", fn, initargs, {}, None, seconds_limit)).decode()
    except SerializationError as exc:
        raise SerializationError(
            f"the initializer option cannot be sent to workers: {_culprit(fn, initargs, {}).replace('argument', 'initargs item')}. "
            "It travels with cloudpickle: pass picklable initargs (open files and connections inside the initializer)"
        ) from exc.__cause__
