"""A task's arguments are checked where they are given: a mistake gets an error that says
what to write, before anything is pushed (not a task that fails, or runs wrongly, on a worker)."""

from __future__ import annotations

import math
import re
import time
from typing import Any

import pytest

import pycrew
from pycrew.control.arguments import keywords, positional, walk_names
from pycrew.errors import OptionsError


@pytest.fixture(params=["local", "sequential"])
def controller(request: pytest.FixtureRequest) -> Any:
    """A controller of either kind; the local one is never started (the checks come first)."""
    c = pycrew.controller(request.param, workers=1)
    yield c
    c.terminate()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("abc", "got str 'abc'; for a single argument write args=('abc',)"),  # would run len("a", "b", "c")
        (b"ab", "got bytes b'ab'; for a single argument write args=(b'ab',)"),
        (5, "got int 5; for a single argument write args=(5,)"),
        ({"x": 1}, "got a mapping; pass keyword arguments as kwargs="),  # would run fn("x")
    ],
)
def test_push_refuses_args_that_are_not_a_sequence_of_arguments(controller: Any, args: Any, expected: str) -> None:
    with pytest.raises(TypeError, match=r"^push\(\): args must be a tuple, a list or another iterable") as caught:
        controller.push(len, args)
    assert expected in str(caught.value)
    assert controller.collect() == []


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ([1], "kwargs must be a dict of keyword arguments (name: value), got list [1]"),
        ("ab", "kwargs must be a dict of keyword arguments (name: value), got str 'ab'"),
        ({1: 2}, "kwargs' names must be strings, got int 1"),  # failed on the worker: "keywords must be strings"
    ],
)
def test_push_refuses_kwargs_that_are_not_named_arguments(controller: Any, kwargs: Any, expected: str) -> None:
    with pytest.raises(TypeError) as caught:
        controller.push(abs, (1,), kwargs)
    assert str(caught.value) == f"push(): {expected}"


def test_submit_task_checks_its_arguments_too() -> None:
    c = pycrew.controller("local", workers=1)
    try:
        with pytest.raises(TypeError, match=r"^submit_task\(\): args must be .* write args=\(5,\)"):
            c.submit_task(abs, 5)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"^submit_task\(\): kwargs' names must be strings"):
            c.submit_task(abs, (1,), {2: 3})  # type: ignore[dict-item]
    finally:
        c.terminate()


def test_a_boolean_time_limit_is_refused(controller: Any) -> None:
    if isinstance(controller, pycrew.Controller):
        with pytest.raises(OptionsError, match="seconds_timeout must be a number > 0 or None, got True"):
            controller.push(abs, (1,), seconds_timeout=True)
        with pytest.raises(OptionsError, match="got nan"):
            controller.push(abs, (1,), seconds_timeout=math.nan)


def test_an_empty_task_name_is_refused() -> None:
    c = pycrew.controller("local", workers=1)
    try:
        with pytest.raises(OptionsError, match=r"name must be a non-empty string .* got ''"):
            c.push(abs, (1,), name="")  # before: accepted, a task named ''
        with pytest.raises(ValueError, match="every name must be a non-empty string"):
            c.walk(abs, [1, 2], names=["a", ""])
        with pytest.raises(OptionsError, match="seconds_timeout must be"):
            c.push(abs, (1,), seconds_timeout=-1)
        assert c.summary().controller.workers_launching == 0 and not c._started, "bad input started the controller"
    finally:
        c.terminate()


@pytest.mark.parametrize(("seed", "shown"), [(1.5, "float 1.5"), (True, "bool True"), ("7", "str '7'")])
def test_every_call_refuses_a_seed_that_is_not_an_integer(controller: Any, seed: Any, shown: str) -> None:
    """On df48133 map and walk took seed=1.5 as 1 and seed=True as 1 (int()), and said
    "invalid literal for int()" for a string; the sequential controller's push took any
    seed and any name."""
    expected = re.escape(f"seed must be an int or None, got {shown}")
    with pytest.raises(OptionsError, match=expected):
        controller.push(abs, (1,), seed=seed)
    with pytest.raises(OptionsError, match=expected):
        controller.walk(abs, [1, 2], seed=seed)
    with pytest.raises(OptionsError, match=expected):
        list(controller.map(abs, [1, 2], seed=seed))
    with pytest.raises(OptionsError, match="name must be a non-empty string"):
        controller.push(abs, (1,), name=5)
    assert controller.collect() == []
    if isinstance(controller, pycrew.Controller):
        assert not controller._started, "bad input started the controller"


def test_cancel_says_what_was_wrong_with_its_names(controller: Any) -> None:
    """On df48133 cancel(names=5) failed with "'int' object is not iterable", a list holding
    a non-string was taken, and names= with all=True cancelled everything."""
    with pytest.raises(TypeError, match=r"^cancel: names must be a task name or a list of them, got int 5"):
        controller.cancel(names=5)
    with pytest.raises(TypeError, match=r"^cancel: every name must be a string, got int 7"):
        controller.cancel(names=["a", 7])
    with pytest.raises(OptionsError, match=r"give names=\.\.\. or all=True, not both"):
        controller.cancel(names=["a"], all=True)
    with pytest.raises(OptionsError, match="all must be True or False, got 'yes'"):
        controller.cancel(all="yes")
    with pytest.raises(OptionsError, match=r"cancel needs names=\.\.\. or all=True"):
        controller.cancel()
    assert controller.cancel(names=iter(["a", "b"])) == 0
    assert controller.cancel(names="a") == 0 and controller.cancel(all=True) == 0


def test_a_group_checks_cancel_once_and_hands_every_member_the_names() -> None:
    a, b = pycrew.controller("local", workers=1, name="a"), pycrew.controller("local", workers=1, name="b")
    group = pycrew.ControllerGroup([a, b])
    try:
        group.push(time.sleep, (30,), name="long", controller="a")
        group.push(time.sleep, (30,), name="long", controller="b")
        with pytest.raises(TypeError, match="every name must be a string"):
            group.cancel(names=["long", None])
        assert group.cancel(names=(n for n in ["long"])) == 2  # a generator, read once for both
        assert group.wait(timeout=60)
        assert sorted((r.controller, r.status) for r in group.collect()) == [("a", "cancel"), ("b", "cancel")]
    finally:
        group.terminate()


def test_a_numpy_integer_is_a_seed() -> None:
    numpy = pytest.importorskip("numpy")
    c = pycrew.controller("sequential")
    try:
        c.push(abs, (1,), seed=numpy.int64(3), name="np")
        assert c.pop().seed == 3
        assert c.walk(abs, [1], seed=numpy.int32(5)) == ["task_2"]
        assert c.pop().seed == pycrew.task_seed(5, 0) == pycrew.task_seed(numpy.uint8(5), 0)
    finally:
        c.terminate()
    with pytest.raises(TypeError, match=r"task_seed: seed must be an int, got float 1\.5"):
        pycrew.task_seed(1.5, 0)  # type: ignore[arg-type]


def test_walk_checks_its_names_before_pushing_anything(controller: Any) -> None:
    with pytest.raises(TypeError, match=r"^walk\(\): names must be a list of task names, one per item, got the string 'ab'"):
        controller.walk(abs, [1, 2], names="ab")
    with pytest.raises(ValueError, match=r"^walk\(\): names has 2 names for 3 items"):
        controller.walk(abs, [1, 2, 3], names=["a", "b"])  # pushed two tasks, then raised StopIteration
    with pytest.raises(TypeError, match=r"^walk\(\): every name must be a string, got int 7"):
        controller.walk(abs, [1], names=[7])
    assert controller.collect() == []


def test_what_was_accepted_before_still_is() -> None:
    assert positional((1, 2), "push()") == (1, 2)
    assert positional([1, 2], "push()") == (1, 2)
    assert positional((x for x in (1, 2)), "push()") == (1, 2)
    assert positional(range(2), "push()") == (0, 1)
    assert keywords(None, "push()") == {}
    assert keywords({"a": 1}, "push()") == {"a": 1}
    assert walk_names(None, 3) is None
    assert walk_names(("a", "b"), 2) == ["a", "b"]


def test_the_sequential_controller_still_runs_what_it_is_given() -> None:
    c = pycrew.controller("sequential")
    try:
        c.push(max, [3, 9], {"key": abs}, name="m")
        assert c.walk(abs, [-1, -2], names=iter(["x", "y"])) == ["x", "y"]
        assert [(r.name, r.result) for r in c.collect()] == [("m", 9), ("x", 1), ("y", 2)]
    finally:
        c.terminate()
