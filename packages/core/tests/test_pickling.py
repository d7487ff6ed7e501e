"""Task pickling: functions by value pickled once per function object, and loaded once per worker."""

from __future__ import annotations

import pickle
import sys
import traceback
import types
from collections.abc import Iterator
from typing import Any

import cloudpickle
import pytest

from pycrew.control import pickling
from pycrew.control.pickling import FunctionBytes, pack_task, plain_dumps, shipped_function
from pycrew.wire import functions


@pytest.fixture
def scratch() -> Iterator[types.ModuleType]:
    """A module registered by value (as a script's ``__main__`` is in effect)."""
    module = types.ModuleType("pycrew_scratch_tasks")
    sys.modules[module.__name__] = module
    cloudpickle.register_pickle_by_value(module)
    try:
        yield module
    finally:
        cloudpickle.unregister_pickle_by_value(module)
        del sys.modules[module.__name__]


def define(module: types.ModuleType, source: str) -> Any:
    """Run ``source`` in ``module`` and return its function ``f``."""
    exec(compile(source, f"<{module.__name__}>", "exec"), module.__dict__)
    return module.__dict__["f"]


def loaded(payload: bytes) -> tuple[Any, ...]:
    """A task payload as a worker unpickles it."""
    task: tuple[Any, ...] = pickle.loads(payload)
    return task


def test_a_function_by_value_is_pickled_once_and_reused(scratch: types.ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    f = define(scratch, "SCALE = 3\ndef f(x):\n    return x * SCALE\n")
    dumps = []
    real = cloudpickle.dumps
    monkeypatch.setattr(pickling.cloudpickle, "dumps", lambda *a, **k: dumps.append(a[0]) or real(*a, **k))
    payloads = [pack_task(f"t{i}", f, (i,), {}, None) for i in range(5)]
    assert dumps == [f]  # the function alone, once; each task's pickle is plain pickle
    shipped = shipped_function(f)
    assert type(shipped) is FunctionBytes and shipped is shipped_function(f)
    for i, payload in enumerate(payloads):
        fn, args, _kwargs, _seed, name, _timeout = loaded(payload)
        assert (fn(*args), name) == (i * 3, f"t{i}")


def test_a_worker_unpickles_a_function_once(scratch: types.ModuleType) -> None:
    f = define(scratch, "def f(x):\n    return x + 1\n")
    first, second = (loaded(pack_task("t", f, (1,), {}, None))[0] for _ in range(2))
    assert first is second and first(1) == 2
    assert first is not f  # unpickled by value, not imported


def test_kept_bytes_follow_rebound_globals_defaults_and_closures(scratch: types.ModuleType) -> None:
    f = define(scratch, "SCALE = 3\ndef f(x, add=0):\n    return x * SCALE + add\n")
    before = shipped_function(f)
    assert loaded(pack_task("t", f, (2,), {}, None))[0](2) == 6
    scratch.SCALE = 10  # rebound: the kept bytes no longer hold
    assert shipped_function(f) is not before
    assert loaded(pack_task("t", f, (2,), {}, None))[0](2) == 20
    f.__defaults__ = (1,)
    assert loaded(pack_task("t", f, (2,), {}, None))[0](2) == 21

    g = define(scratch, "def make():\n    k = 1\n    def f(x):\n        return x + k\n    def bump():\n        nonlocal k\n        k += 1\n    return f, bump\nf = make()\n")
    assert loaded(pack_task("t", g[0], (1,), {}, None))[0](1) == 2
    g[1]()  # the closure's cell now holds another object
    assert loaded(pack_task("t", g[0], (1,), {}, None))[0](1) == 3


def test_a_redefined_helper_is_pickled_anew(scratch: types.ModuleType) -> None:
    f = define(scratch, "def helper():\n    return 'old'\ndef f():\n    return helper()\n")
    assert loaded(pack_task("t", f, (), {}, None))[0]() == "old"
    define(scratch, "def helper():\n    return 'new'\n")
    assert loaded(pack_task("t", f, (), {}, None))[0]() == "new"


def test_a_function_by_reference_travels_as_itself() -> None:
    from os.path import join

    assert shipped_function(join) is join
    payload = pack_task("t", join, ("a", "b"), {}, None)
    assert b"cloudpickle" not in payload and b"load_function" not in payload
    assert loaded(payload)[0] is join


def test_registering_a_module_by_value_later_changes_the_kept_decision() -> None:
    module = types.ModuleType("pycrew_scratch_late")
    sys.modules[module.__name__] = module
    try:
        f = define(module, "def f():\n    return 5\n")
        assert shipped_function(f) is f  # importable here: by reference
        cloudpickle.register_pickle_by_value(module)
        try:
            assert type(shipped_function(f)) is FunctionBytes
        finally:
            cloudpickle.unregister_pickle_by_value(module)
        assert shipped_function(f) is f
    finally:
        del sys.modules[module.__name__]


def test_arguments_from_main_still_go_by_value(scratch: types.ModuleType) -> None:
    f = define(scratch, "def f(g):\n    return g()\n")
    packed = shipped_function(f)
    assert type(packed) is FunctionBytes and packed.mains == 0

    main = sys.modules["__main__"]

    def probe() -> int:
        return 7

    probe.__module__, probe.__qualname__ = "__main__", "pycrew_probe"
    main.pycrew_probe = probe
    try:
        task = (packed, (probe,), {}, None, "t", None)
        assert plain_dumps(task, packed) is None  # by reference to __main__: a worker could not load it
        payload = pack_task("t", f, (probe,), {}, None)
        del main.pycrew_probe  # as in a worker, where __main__ is not this process's
        fn, args, *_ = loaded(payload)
        assert fn(*args) == 7
    finally:
        if hasattr(main, "pycrew_probe"):
            del main.pycrew_probe


def test_main_inside_the_function_bytes_alone_keeps_plain_pickle() -> None:
    packed = FunctionBytes(b"bytes that say __main__ twice: __main__")
    assert packed.mains == 2
    data = plain_dumps((packed, (1, 2), {}, None, "t", None), packed)
    assert data is not None and b"__main__" in data
    # a script run as ``python -m pkg`` is pkg/__main__.py: its name travels with the bytes
    packed = FunctionBytes(b"bytes", "/src/pkg/__main__.py")
    assert packed.mains == 1
    assert plain_dumps((packed, (1, 2), {}, None, "t", None), packed) is not None


def test_a_function_by_value_gets_its_file_name_back_on_the_worker(
    scratch: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(functions, "_cache", type(functions._cache)())
    source = "def helper():\n    return 1 / 0\n\ndef f(x):\n    def inner():\n        return helper()\n    return inner()\n"
    exec(compile(source, "/home/someone/analysis.py", "exec"), scratch.__dict__)
    packed = shipped_function(scratch.f)
    assert type(packed) is FunctionBytes and packed.filename == "/home/someone/analysis.py"
    assert cloudpickle.loads(packed.data).__code__.co_filename == functions.DYNAMIC_CODE  # what cloudpickle alone gives
    fn, args, *_ = loaded(pack_task("t", scratch.f, (1,), {}, None))
    with pytest.raises(ZeroDivisionError) as info:
        fn(*args)
    frames = traceback.extract_tb(info.tb)[-3:]
    assert [(f.filename, f.name) for f in frames] == [("/home/someone/analysis.py", n) for n in ("f", "inner", "helper")]
    assert [f.lineno for f in frames] == [7, 6, 2]


def test_worker_cache_is_bounded_and_skips_large_functions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(functions, "_cache", type(functions._cache)())
    blobs = [cloudpickle.dumps(eval(f"lambda: {i}")) for i in range(functions.CACHE_ENTRIES + 1)]
    fns = [functions.load_function(b) for b in blobs]
    assert functions.cached_functions() == functions.CACHE_ENTRIES
    assert functions.load_function(blobs[-1]) is fns[-1]  # kept
    assert functions.load_function(blobs[0]) is not fns[0]  # the least recently used went first
    monkeypatch.setattr(functions, "CACHE_BYTES_MAX", 10)
    big = cloudpickle.dumps(lambda: "big")
    assert functions.load_function(big) is not functions.load_function(big)


def test_an_unpicklable_function_is_named(scratch: types.ModuleType) -> None:
    import threading

    scratch.LOCK = threading.Lock()
    f = define(scratch, "def f():\n    return LOCK\n")
    from pycrew.errors import SerializationError

    with pytest.raises(SerializationError, match="the function"):
        pack_task("t", f, (), {}, None)


def test_a_kept_function_is_forgotten_when_it_is_collected(scratch: types.ModuleType) -> None:
    import gc

    f = define(scratch, "def f():\n    return 1\n")
    key = id(f)
    assert type(shipped_function(f)) is FunctionBytes
    assert key in pickling._kept
    del f, scratch.__dict__["f"]
    gc.collect()
    assert key not in pickling._kept  # no decision outlives its function (an id may be reused)
