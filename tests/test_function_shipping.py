"""Task functions that travel by value, through real workers (see pycrew.control.pickling).

A function workers cannot import is pickled once per function object on the controller
and unpickled once per worker; its globals then live on in the worker between tasks, as
a module function's do. A rebound global makes the controller pickle it anew.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys

import cloudpickle
import pytest

import pycrew

# The task functions below travel by value (workers cannot import this module).
cloudpickle.register_pickle_by_value(sys.modules[__name__])

CALLS: list[int] = []
OFFSET = 0


def count_calls(x: int) -> tuple[int, int, int]:
    """How many times this worker's copy of the function ran, ``x + OFFSET``, and the pid."""
    CALLS.append(x)
    return len(CALLS), x + OFFSET, os.getpid()


def test_a_worker_unpickles_a_function_once_and_sees_rebound_globals() -> None:
    module = sys.modules[__name__]
    with pycrew.controller("local", workers=1, seconds_idle=60) as c:
        first = list(c.map(count_calls, range(20)))
        assert len({pid for _, _, pid in first}) == 1
        # One copy of the function served every task: its CALLS grew (a copy per task
        # would have answered 1 each time).
        assert [n for n, _, _ in first] == list(range(1, 21))
        assert [v for _, v, _ in first] == list(range(20))

        module.OFFSET = 100  # rebound: the controller pickles the function anew
        try:
            again = list(c.map(count_calls, range(5)))
        finally:
            module.OFFSET = 0
        assert [v for _, v, _ in again] == [100, 101, 102, 103, 104]
        assert [n for n, _, _ in again] == [1, 2, 3, 4, 5]  # the new copy starts afresh
        assert CALLS == []  # the controller's own copy never ran

        # OFFSET is 0 again: the function pickles to the first map's bytes, and the worker
        # still keeps the copy it made of those (submit() goes the same way as map()).
        assert c.submit(count_calls, 1).result(timeout=60)[:2] == (21, 1)


def test_a_task_from_a_module_the_worker_cannot_import_says_what_to_do(make_controller, tmp_path, monkeypatch) -> None:
    (tmp_path / "only_on_the_controller.py").write_text("def double(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # this process only: the workers' Python cannot import it
    import importlib

    module = importlib.import_module("only_on_the_controller")
    try:
        # Local workers get the controller's sys.path (pycrew.worker.import_path): without
        # it, as remote workers whose machines lack the module.
        c = make_controller("local", workers=1, inherit_sys_path=False).start()
        with pytest.raises(ModuleNotFoundError) as info:
            c.submit(module.double, 2).result(timeout=60)
        notes = "".join(getattr(info.value, "__notes__", []))
        assert "could not load the task" in notes and "register_pickle_by_value" in notes, notes
        assert "script_lines=" in notes, "a hint the HPC launchers can follow (they have no env= option)"
        c.push(module.double, args=(3,), name="pushed")
        assert c.wait(timeout=60)
        result = c.pop()
        assert result.status == "error" and result.error_type == "ModuleNotFoundError"
        assert result.error.startswith("No module named 'only_on_the_controller': the worker") and "PYTHONPATH" in result.error
        cloudpickle.register_pickle_by_value(module)  # what the hint says does it
        try:
            assert c.submit(module.double, 4).result(timeout=60) == 8
        finally:
            cloudpickle.unregister_pickle_by_value(module)
    finally:
        sys.modules.pop("only_on_the_controller", None)


def fails_here() -> None:
    raise ValueError("raised by a function sent by value")


def test_the_remote_traceback_of_a_function_sent_by_value_names_its_file_and_line(make_controller) -> None:
    c = make_controller("local", workers=1).start()
    with pytest.raises(ValueError) as info:
        c.submit(fails_here).result(timeout=60)
    remote = info.value.__cause__
    assert isinstance(remote, pycrew.RemoteTraceback)
    assert f'File "{__file__}", line {fails_here.__code__.co_firstlineno + 1}, in fails_here' in remote.tb, remote.tb
    assert 'raise ValueError("raised by a function sent by value")' in remote.tb, "the worker shows the source line"
    assert remote.tb.startswith(f'Traceback (most recent call last):\n  File "{__file__}"'), "starts at the task's own frame"


def offset_by(blob: bytes, x: int) -> tuple[int, int, int]:
    """``count_calls`` through a partial holding ``blob`` (a large argument)."""
    if x < 0:
        raise ValueError("raised through a partial")
    n, value, pid = count_calls(x)
    return n, value + len(blob), pid


def test_a_partial_of_a_function_by_value_reuses_the_worker_s_copy_and_names_its_file(make_controller) -> None:
    """``map(partial(fn, data), items)`` from a script: the partial's function travels as its
    kept bytes, so the worker unpickles it once (before, cloudpickle pickled the whole
    partial for every task, and the worker made a fresh copy of the function each time)."""
    c = make_controller("local", workers=1).start()
    blob = b"\0" * 1_000_000
    results = list(c.map(functools.partial(offset_by, blob), range(10)))
    assert [v for _, v, _ in results] == [x + len(blob) for x in range(10)]
    assert [n for n, _, _ in results] == list(range(1, 11)), "one copy of the function served every task"
    with pytest.raises(ValueError) as info:
        c.submit(functools.partial(offset_by, blob), -1).result(timeout=60)
    remote = info.value.__cause__
    assert isinstance(remote, pycrew.RemoteTraceback)
    assert f'File "{__file__}", line {offset_by.__code__.co_firstlineno + 3}, in offset_by' in remote.tb, remote.tb


@dataclasses.dataclass
class Settings:
    """A class workers cannot import (this module goes by value), as a script's dataclass."""

    a: int

    def doubled(self) -> int:
        return 2 * self.a


def use_settings(settings: Settings) -> tuple[int, int, int]:
    """The settings' value, the id of their class in this worker, and the pid."""
    return settings.doubled(), id(type(settings)), os.getpid()


def test_a_class_by_value_among_the_arguments_is_pickled_once(make_controller, monkeypatch) -> None:
    """A script's dataclass as the argument: before, every task was pickled whole by
    cloudpickle, the class again each time; a map over 5,000 of them ran at half
    ProcessPoolExecutor's rate (5,440 against 10,768 tasks/s), 25,659 tasks/s now."""
    pickled: list[object] = []
    real = cloudpickle.dumps
    monkeypatch.setattr(cloudpickle, "dumps", lambda obj, *a, **k: pickled.append(obj) or real(obj, *a, **k))
    c = make_controller("local", workers=1).start()
    results = list(c.map(use_settings, [Settings(i) for i in range(20)]))
    assert [o for o in pickled if not isinstance(o, tuple)] == [use_settings, Settings], "each once"
    assert not [o for o in pickled if isinstance(o, tuple)], "no task was pickled whole"
    assert [v for v, _, _ in results] == [2 * i for i in range(20)]
    assert len({(cls, pid) for _, cls, pid in results}) == 1, "one class object served every task on the worker"


def echo_settings(settings: Settings) -> Settings:
    """Its argument, back."""
    return settings


def make_settings(a: int) -> Settings:
    """A new :class:`Settings` (the class travels as a global of this function)."""
    return Settings(a)


def test_results_holding_a_class_sent_by_value_refer_to_it_by_name(make_controller, monkeypatch) -> None:
    """Before, such results went through cloudpickle on the worker, the class by value with
    every result, and the controller rebuilt the class from each (8,200 results/s of a
    script's dataclass against ProcessPoolExecutor's 10,800; ~35,000-39,000 now)."""
    rebuilt: list[object] = []
    real = cloudpickle.cloudpickle._make_skeleton_class
    monkeypatch.setattr(cloudpickle.cloudpickle, "_make_skeleton_class", lambda *a, **k: rebuilt.append(a) or real(*a, **k))
    c = make_controller("local", workers=1).start()
    back = list(c.map(echo_settings, [Settings(i) for i in range(10)]))  # the class came with the arguments
    made = list(c.map(make_settings, range(10)))  # the class came with the function
    assert back == made == [Settings(i) for i in range(10)]
    assert all(type(s) is Settings for s in back + made), "the controller's own class"
    assert rebuilt == [], f"the controller rebuilt the class from {len(rebuilt)} result(s)"
