"""Task functions, unpickled once per worker: :func:`load_function`, :func:`load_task`.

A function that workers cannot import (defined in ``__main__``, a notebook, a lambda, a
closure, or a module registered with ``cloudpickle.register_pickle_by_value``) travels
as its own cloudpickle bytes inside each task. The controller pickles it once (see
:mod:`pycrew.control.pickling`) and the task's pickle calls :func:`load_function` with
those bytes, so a worker unpickles each such function once and reuses it for the tasks
after: unpickling a small function by value costs ~13 us per task, a lookup here < 1 us.
A function workers import travels the same way, as its plain pickle (its module and
name, a few dozen bytes), which :func:`load_task` loads through the same cache: the
controller pickles it once instead of looking its module up for every task.

Consequences, as with functions imported from modules: the globals a cached function
uses live on in the worker between tasks (a task that changes them changes them for the
tasks after it on that worker), and a function with the same bytes is one object.

A function pickled by value carries its own copy of the globals it uses: two such
functions from one script do not share them in a worker. The worker's initializer is the
exception users rely on (``global MODEL; MODEL = load()`` in it, ``MODEL`` in the tasks):
:func:`share_globals` takes the globals it used, and every function of the same module
loaded by value after it gets those values in place of its own copies.
"""

from __future__ import annotations

import importlib
import pickle
import re
import sys
import threading
import weakref
from collections import OrderedDict
from functools import partial
from types import CodeType, FunctionType
from typing import Any

#: Functions a worker keeps, the most recently used first to stay.
CACHE_ENTRIES = 32
#: Functions pickled larger than this (a function that captures a large object) are
#: unpickled for each task instead of kept.
CACHE_BYTES_MAX = 1 << 20

#: The file name cloudpickle gives the code it ships (so that its bytes do not depend on
#: where a function was defined).
DYNAMIC_CODE = "<dynamic-code>"

#: pickle's own functions, taken when pycrew is imported (as :mod:`pycrew.wire.clock` takes the
#: clocks): a task that replaces ``pickle.dumps`` or ``pickle.loads`` (a mock left running)
#: would otherwise break the tasks and results of every later task on its worker.
pickle_dumps = pickle.dumps
pickle_loads = pickle.loads

_cache: OrderedDict[bytes, Any] = OrderedDict()
#: Module name -> the globals the worker's initializer (pickled by value) used, as it left them.
_shared: dict[str, dict[str, Any]] = {}
_lock = threading.Lock()  # worker loops that share a process (test harnesses) share the cache


def load_function(data: bytes, filename: str | None = None) -> Any:
    """The function (or class: see :mod:`pycrew.control.by_value`) pickled in ``data``:
    unpickled the first time, from the cache after.

    Called by ``pickle.loads`` of a task (a ``FunctionBytes`` reduces to this call);
    whatever unpickling raises propagates, and the task fails with it. ``filename``: the
    file the function was defined in, which its code (and that of the functions defined
    in it, and of its module's functions it calls) gets back for tracebacks.
    """
    with _lock:
        fn = _cache.get(data)
        if fn is not None:
            _cache.move_to_end(data)
            return fn
    fn = pickle_loads(data)
    if filename is not None and type(fn) is FunctionType:
        _name_file(fn, filename)
    if _shared and type(fn) is FunctionType:
        _adopt_shared(fn)
    if type(fn) is FunctionType:  # the classes of its module it uses, under their own names, came by value with it
        module = fn.__module__
        for name, value in list(fn.__globals__.items()):
            if isinstance(value, type) and value.__module__ == module and value.__qualname__ == name:
                _shipped_classes[id(value)] = value
    if len(data) <= CACHE_BYTES_MAX:
        with _lock:
            _cache[data] = fn
            while len(_cache) > CACHE_ENTRIES:
                _cache.popitem(last=False)
    return fn


#: id -> class, for the classes :func:`load_function` loaded by value, alone or as globals of
#: a function of their module: the controller that sent one has it under its own module and
#: name, so a result holding its instances refers to it by name (:class:`ResultPickler`)
#: instead of carrying it by value with every result.
_shipped_classes: weakref.WeakValueDictionary[int, type] = weakref.WeakValueDictionary()


def load_class(data: bytes, by_name: bool) -> Any:
    """A class pickled by value (see :mod:`pycrew.control.by_value`), through the cache of
    :func:`load_function`; ``by_name``: the controller finds it under its module and
    qualified name, so results refer to it that way (:class:`ResultPickler`)."""
    cls = load_function(data)
    if by_name and isinstance(cls, type):
        _shipped_classes[id(cls)] = cls
    return cls


def class_by_name(module: str, qualname: str) -> Any:
    """The class ``qualname`` of ``module`` (a result's reference to a class the controller
    sent by value, resolved where the controller runs)."""
    target: Any = sys.modules.get(module) or importlib.import_module(module)
    for name in qualname.split("."):
        target = getattr(target, name)
    return target


class ResultPickler(pickle.Pickler):
    """The C pickler, with the classes a worker got by value from its controller pickled
    as references by name (plain pickle refuses them: the worker's ``__main__`` is not the
    script's). A script's dataclass as a result went through cloudpickle, the class by value
    with every result, and was rebuilt on the controller each time: 8,200 results/s against
    ProcessPoolExecutor's 10,800."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, type) and _shipped_classes.get(id(obj)) is obj and "<locals>" not in obj.__qualname__:
            return (class_by_name, (obj.__module__, obj.__qualname__))
        return NotImplemented


def load_task(payload: bytes | memoryview) -> tuple[Any, Any, Any, Any, Any, Any]:
    """A task's pickle as ``(fn, args, kwargs, seed, name, seconds_timeout)``, as a worker runs it.

    A function the controller pickles by reference travels as that pickle (``bytes``,
    made once per function: see :func:`pycrew.control.pickling.shipped_function`), which
    is loaded here through the cache like a function by value.
    """
    fn, args, kwargs, seed, name, seconds_timeout = pickle_loads(payload)
    if type(fn) is bytes:
        fn = load_function(fn)
    elif _shared and type(fn) is partial and type(fn.func) is FunctionType:  # travels whole, with each task
        _adopt_shared(fn.func)
    return fn, args, kwargs, seed, name, seconds_timeout


#: A function named as text (the ``initializer`` option in a configuration file): ``package.module:function``.
BY_NAME = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


def call_by_name(spec: str, *args: Any) -> Any:
    """Import the function ``spec`` names (``package.module:function``) and call it with ``args``
    (an initializer given by name is imported by the worker that runs it)."""
    module, _, path = spec.partition(":")
    target: Any = importlib.import_module(module)
    for name in path.split("."):
        target = getattr(target, name)
    return target(*args)


def share_globals(fn: Any) -> None:
    """After the worker's initializer ``fn`` ran: if it was pickled by value, the globals it
    used (not its module's dunder names) become those of every function of its module
    loaded by value from now on (see the module's notes)."""
    if type(fn) is not FunctionType:
        return
    namespace = fn.__globals__
    module = namespace.get("__name__")
    if isinstance(module, str) and getattr(sys.modules.get(module), "__dict__", None) is namespace:
        return  # imported from its module: the tasks' functions from there share its globals already
    _shared[_module_key(namespace)] = {k: v for k, v in namespace.items() if not (k.startswith("__") and k.endswith("__"))}


def _module_key(namespace: dict[str, Any]) -> str:
    """The name of the module a function's globals come from ("" if they do not say)."""
    module = namespace.get("__name__")
    return module if isinstance(module, str) else ""


def _adopt_shared(fn: FunctionType) -> None:
    """Give a function loaded by value the initializer's globals of its module, if any."""
    shared = _shared.get(_module_key(fn.__globals__))
    if shared:
        fn.__globals__.update(shared)


def _name_file(fn: FunctionType, filename: str) -> None:
    """Give ``fn``'s code, and its module's functions among its globals, ``filename``."""
    for f in [fn, *(v for v in fn.__globals__.values() if type(v) is FunctionType and v.__module__ == fn.__module__)]:
        if f.__code__.co_filename == DYNAMIC_CODE:
            f.__code__ = _renamed(f.__code__, filename)


def _renamed(code: CodeType, filename: str) -> CodeType:
    consts = tuple(_renamed(c, filename) if type(c) is CodeType and c.co_filename == DYNAMIC_CODE else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def cached_functions() -> int:
    """How many functions this process keeps (for tests and diagnostics)."""
    return len(_cache)
