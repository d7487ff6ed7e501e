"""Task pickling: functions by value pickled once per function object, and loaded once per worker."""

from __future__ import annotations

import io
import pickle
import subprocess
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


@pytest.fixture
def main_probe() -> Iterator[Any]:
    """A function ``__main__.pycrew_probe`` (returning 7) in this process's ``__main__``; a test
    deletes it from there to play a worker, whose ``__main__`` is not this process's."""
    main = sys.modules["__main__"]

    def probe() -> int:
        return 7

    probe.__module__, probe.__qualname__ = "__main__", "pycrew_probe"
    main.pycrew_probe = probe  # type: ignore[attr-defined]
    try:
        yield probe
    finally:
        if hasattr(main, "pycrew_probe"):
            del main.pycrew_probe


def define(module: types.ModuleType, source: str) -> Any:
    """Run ``source`` in ``module`` and return its function ``f``."""
    exec(compile(source, f"<{module.__name__}>", "exec"), module.__dict__)
    return module.__dict__["f"]


def loaded(payload: bytes) -> tuple[Any, ...]:
    """A task payload as a worker unpickles it."""
    return functions.load_task(payload)


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


def test_a_function_by_reference_travels_as_its_plain_pickle_made_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from os.path import join

    shipped = shipped_function(join)
    assert type(shipped) is bytes and shipped is shipped_function(join)  # kept: pickled once
    assert pickle.loads(shipped) is join  # by reference: the worker imports it
    dumps = []
    real = pickling.pickle.dumps
    monkeypatch.setattr(pickling.pickle, "dumps", lambda *a, **k: dumps.append(a[0]) or real(*a, **k))
    payload = pack_task("t", join, ("a", "b"), {}, None)
    assert [type(obj) for obj in dumps] == [tuple] and dumps[0][0] is shipped  # not join, looked up again
    assert b"cloudpickle" not in payload and b"load_function" not in payload
    assert loaded(payload)[0] is join
    assert loaded(payload)[0]("a", "b") == join("a", "b")


def test_a_task_loads_its_function_by_reference_once_per_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    from os.path import join

    monkeypatch.setattr(functions, "_cache", type(functions._cache)())
    payloads = [pack_task(f"t{i}", join, ("a", str(i)), {}, None) for i in range(3)]
    assert [loaded(p)[1] for p in payloads] == [("a", "0"), ("a", "1"), ("a", "2")]
    assert functions.cached_functions() == 1


def test_a_c_modules_function_travels_as_its_plain_pickle_made_once() -> None:
    import math

    for fn in (abs, math.sqrt):
        shipped = shipped_function(fn)
        assert type(shipped) is bytes and shipped is shipped_function(fn)
        assert pickle.loads(shipped) is fn
    fn, args, *_ = loaded(pack_task("t", math.sqrt, (16.0,), {}, None))
    assert fn is math.sqrt and fn(*args) == 4.0
    # a C method bound to an object is not a module's function: it travels with its object
    items = [3, 1, 2]
    assert type(shipped_function(items.sort)) is not bytes
    fn, args, *_ = loaded(pack_task("t", items.copy, (), {}, None))
    assert fn() == [3, 1, 2]


def test_registering_a_module_by_value_later_changes_the_kept_decision() -> None:
    module = types.ModuleType("pycrew_scratch_late")
    sys.modules[module.__name__] = module
    try:
        f = define(module, "def f():\n    return 5\n")
        assert pickle.loads(shipped_function(f)) is f  # importable here: by reference
        cloudpickle.register_pickle_by_value(module)
        try:
            assert type(shipped_function(f)) is FunctionBytes
        finally:
            cloudpickle.unregister_pickle_by_value(module)
        assert pickle.loads(shipped_function(f)) is f
    finally:
        del sys.modules[module.__name__]


def test_arguments_from_main_still_go_by_value(scratch: types.ModuleType, main_probe: Any) -> None:
    f = define(scratch, "def f(g):\n    return g()\n")
    packed = shipped_function(f)
    assert type(packed) is FunctionBytes and packed.mains == 0
    task = (packed, (main_probe,), {}, None, "t", None)
    assert plain_dumps(task, packed) is None  # by reference to __main__: a worker could not load it
    payload = pack_task("t", f, (main_probe,), {}, None)
    del sys.modules["__main__"].pycrew_probe  # as in a worker, where __main__ is not this process's
    fn, args, *_ = loaded(payload)
    assert fn(*args) == 7


def run_elsewhere(payload: bytes) -> str:
    """Run a task's payload in a fresh Python process (as a worker would); the repr of its value."""
    code = (
        "import sys\n"
        "from pycrew.wire.functions import load_task\n"
        "fn, args, kwargs, *_ = load_task(sys.stdin.buffer.read())\n"
        "print(repr(fn(*args, **kwargs)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True, timeout=60, check=True)
    return done.stdout.decode().strip()


def echo(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A task function workers import (by reference)."""
    return args, kwargs


@pytest.mark.parametrize("where", ["args", "kwargs"])
@pytest.mark.parametrize("by", ["reference", "value"])
def test_a_subclass_of_a_plain_type_from_main_still_goes_by_value(where: str, by: str, scratch: types.ModuleType) -> None:
    # ints, strs and the like skip the search for names a worker cannot import; a subclass
    # of one is pickled with a reference to its class, which may be in __main__
    fn = echo if by == "reference" else define(scratch, "def f(*args, **kwargs):\n    return args, kwargs\n")
    assert type(shipped_function(fn)) is (bytes if by == "reference" else FunctionBytes)
    main = sys.modules["__main__"]

    class Label(str):
        pass

    Label.__module__, Label.__qualname__ = "__main__", "PycrewLabel"
    main.PycrewLabel = Label  # type: ignore[attr-defined]
    try:
        args, kwargs = ((Label("x"), 1), {}) if where == "args" else ((1,), {"label": Label("x")})
        payload = pack_task("t", fn, args, kwargs, None)
        del main.PycrewLabel  # as in a worker, where __main__ is not this process's
        fn_loaded, args_loaded, kwargs_loaded, *_ = loaded(payload)
        value = args_loaded[0] if where == "args" else kwargs_loaded["label"]
        assert value == "x" and type(value).__name__ == "Label"
        assert fn_loaded(*args_loaded, **kwargs_loaded) == (args_loaded, kwargs_loaded)
    finally:
        if hasattr(main, "PycrewLabel"):
            del main.PycrewLabel


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


def test_a_partial_of_a_function_by_value_keeps_its_function_s_bytes(
    scratch: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``map(partial(fit, data), items)`` from a script: the task's pickle is plain pickle
    with the function's kept bytes, not cloudpickle of the whole partial per task (and
    plain arguments are not searched): 100 tasks of a partial holding 20 MB took 2.8 s of
    pickling, now 1.3 s."""
    f = define(scratch, "def f(blob, x, scale=1):\n    return (len(blob) + x) * scale\n")
    blob = b"\0" * 100_000
    task = pickling.partial(f, blob, scale=3)
    dumps: list[Any] = []
    real = cloudpickle.dumps
    monkeypatch.setattr(pickling.cloudpickle, "dumps", lambda *a, **k: dumps.append(a[0]) or real(*a, **k))
    searched: list[bytes] = []
    real_plain = pickling.plain_dumps
    monkeypatch.setattr(pickling, "plain_dumps", lambda *a: (type(a[0]) is tuple and searched.append(a[0])) or real_plain(*a))
    payloads = [pack_task(f"t{i}", task, (i,), {}, None) for i in range(3)]
    assert dumps == [f], "the function alone, once"
    assert searched == [], "plain arguments: nothing to search"
    for i, payload in enumerate(payloads):
        fn, args, kwargs, *_ = loaded(payload)
        assert type(fn) is pickling.partial and fn.keywords == {"scale": 3}
        assert fn(*args, **kwargs) == (100_000 + i) * 3
    assert loaded(payloads[0])[0].func is loaded(payloads[1])[0].func, "a worker unpickles the function once"


def test_a_partial_holding_a_value_from_main_still_goes_by_value(scratch: types.ModuleType, main_probe: Any) -> None:
    f = define(scratch, "def f(g, x):\n    return g() + x\n")
    task = pickling.partial(f, main_probe)
    task.note = "an attribute of the partial"  # type: ignore[attr-defined]
    payload = pack_task("t", task, (1,), {}, None)
    del sys.modules["__main__"].pycrew_probe  # as in a worker, where __main__ is not this process's
    fn, args, *_ = loaded(payload)
    assert fn(*args) == 8 and fn.note == "an attribute of the partial"


def test_numpy_arrays_of_numbers_are_not_searched_but_others_are(monkeypatch: pytest.MonkeyPatch) -> None:
    """Searching a pickle for ``__main__`` took as long as pickling a large array: an array of
    numbers names nothing but NumPy. Arrays that may name anything are still searched."""
    np = pytest.importorskip("numpy")
    searched: list[Any] = []
    real_plain = pickling.plain_dumps
    monkeypatch.setattr(pickling, "plain_dumps", lambda *a: (type(a[0]) is tuple and searched.append(a[0])) or real_plain(*a))
    numbers = np.arange(12.0).reshape(3, 4)
    _fn, args, kwargs, *_ = loaded(pack_task("t", echo, (numbers,), {"also": np.arange(3)}, None))
    assert searched == [] and (args[0] == numbers).all() and list(kwargs["also"]) == [0, 1, 2]
    for other in (
        np.array([object(), 1], dtype=object),
        np.zeros(2, dtype=[("a", "f8"), ("b", "i4")]),
        np.zeros(2, dtype=np.dtype("f8", metadata={"unit": "m"})),
        np.ma.masked_array([1, 2]),
    ):
        searched.clear()
        pack_task("t", echo, (other,), {}, None)
        assert len(searched) == 1, f"{other!r} must be searched"


def test_a_class_by_value_among_the_arguments_is_pickled_once_and_loaded_once(
    scratch: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dataclass of the script as an argument: cloudpickle pickled the class again for
    every task (~120 us) and the worker rebuilt it each time; now the class travels as bytes
    made once, and a worker unpickles it once (every task gets the same class object)."""
    exec(
        "from dataclasses import dataclass\n"
        "@dataclass\n"
        "class Config:\n"
        "    a: int\n"
        "    def score(self):\n"
        "        return self.a * 2\n"
        "def f(cfg):\n"
        "    return cfg.score()\n",
        scratch.__dict__,
    )
    config, f = scratch.Config, scratch.f
    dumps: list[Any] = []
    real = cloudpickle.dumps
    monkeypatch.setattr(pickling.cloudpickle, "dumps", lambda *a, **k: dumps.append(a[0]) or real(*a, **k))
    payloads = [pack_task(f"t{i}", f, (config(i),), {}, None) for i in range(3)]
    assert dumps == [f, config], "the function once, the class once; no task pickled whole"
    loaded_tasks = [loaded(payload) for payload in payloads]
    assert [fn(*args) for fn, args, *_ in loaded_tasks] == [0, 2, 4]
    classes = {type(args[0]) for _, args, *_ in loaded_tasks}
    assert len(classes) == 1, "a worker unpickles the class once: one class object for every task"

    config.score = lambda self: -1  # the class changed: pickled anew, and a worker loads the new one
    fn, args, *_ = loaded(pack_task("t", f, (config(5),), {}, None))
    assert fn(*args) == -1 and len(dumps) == 3


def test_a_class_by_value_whose_method_uses_a_rebound_global_is_pickled_anew(scratch: types.ModuleType) -> None:
    exec(
        "SCALE = 2\n"
        "class Box:\n"
        "    def __init__(self, x):\n"
        "        self.x = x\n"
        "    def scaled(self):\n"
        "        return self.x * SCALE\n"
        "def f(box):\n"
        "    return box.scaled()\n",
        scratch.__dict__,
    )
    # Loaded in another process, as a worker does: cloudpickle, loading a class by value in
    # the process that pickled it, gives back the original class with the loaded methods set on it.
    assert run_elsewhere(pack_task("t", scratch.f, (scratch.Box(3),), {}, None)) == "6"
    scratch.SCALE = 10
    assert run_elsewhere(pack_task("t", scratch.f, (scratch.Box(3),), {}, None)) == "30", (
        "the method's global was rebound: the class's bytes were made again"
    )


def test_a_class_by_value_among_the_arguments_of_an_importable_function(scratch: types.ModuleType) -> None:
    exec("class Point:\n    def __init__(self, x):\n        self.x = x\n", scratch.__dict__)
    nested = define(scratch, "def f(x):\n    return x + 1\n")
    _fn, args, kwargs, *_ = loaded(pack_task("t", echo, (scratch.Point(4),), {"callback": nested}, None))
    assert args[0].x == 4 and kwargs["callback"](1) == 2, "a function by value among the arguments travels kept too"


def test_only_classes_the_controller_finds_by_name_go_back_by_name(scratch: types.ModuleType) -> None:
    """A result refers to a class sent by value by its module and name only if the
    controller finds that very class there; a local class, or one known under another name,
    goes back by value as before."""
    from pycrew.control import by_value

    exec(
        "class Named:\n    pass\n"
        "def make():\n    class Local:\n        pass\n    return Local\n"
        "Local = make()\n"
        "Renamed = type('Elsewhere', (), {})\n",
        scratch.__dict__,
    )
    assert [by_value.class_bytes(c).by_name for c in (scratch.Named, scratch.Local, scratch.Renamed)] == [True, False, False]
    assert functions.class_by_name(scratch.__name__, "Named") is scratch.Named
    named = functions.load_class(by_value.class_bytes(scratch.Named).data, True)
    local = functions.load_class(by_value.class_bytes(scratch.Local).data, False)
    assert functions._shipped_classes.get(id(named)) is named and id(local) not in functions._shipped_classes
    pickler = functions.ResultPickler(io.BytesIO())
    assert pickler.reducer_override(named) == (functions.class_by_name, (scratch.__name__, "Named"))
    assert pickler.reducer_override(local) is NotImplemented
