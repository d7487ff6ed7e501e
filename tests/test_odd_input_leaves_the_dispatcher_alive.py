"""User objects the dispatcher handles must not end it nor leave a future unresolved (probe M,
session 33): names that are str subclasses with a ``__repr__``, ``__hash__`` or ``__eq__`` that
raises, a ``seconds_timeout`` beyond a float's range, a ``relay`` that raises, a result whose
unpickling raises an exception whose ``__str__`` raises, ``wait()`` from inside a map's input,
and a task-done observer that terminates the controller."""

from __future__ import annotations

import logging
import os
import threading

import pytest

import pycrew
from helpers import StrRaisesItself, result_unpickling_into_a_broken_error
from pycrew.errors import OptionsError


class BadRepr(str):
    def __repr__(self) -> str:
        raise RuntimeError("repr of the name broke")


class BadHash(str):
    def __hash__(self) -> int:
        raise RuntimeError("hash of the name broke")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("eq of the name broke")


def fails(x: int) -> int:
    raise ValueError(f"bad {x}")


def dies() -> None:
    os._exit(3)


def alive(c: pycrew.Controller) -> None:
    assert c.submit(abs, -7).result(timeout=60) == 7, "the dispatcher carries on"


@pytest.mark.parametrize("name_type", [BadRepr, BadHash])
def test_a_name_whose_repr_hash_or_eq_raises_is_taken_as_the_plain_string(make_controller, name_type):
    c = make_controller("local", workers=1, crashes_max=1)
    failing = c.submit_task(fails, (1,), name=name_type("evil"))
    with pytest.raises(ValueError, match="bad 1"):
        failing.result(timeout=60)
    crashing = c.submit_task(dies, name=name_type("evil-crash"))
    with pytest.raises(pycrew.TaskCrashError, match="evil-crash"):
        crashing.result(timeout=60)
    c.push(fails, args=(2,), name=name_type("pushed"))
    assert c.cancel(names=[name_type("someone-else")]) == 0
    c.wait(timeout=60)
    result = c.pop()
    assert type(result.name) is str and result.name == "pushed" and result.status == "error"
    alive(c)


def test_a_seconds_timeout_beyond_a_floats_range_is_no_limit(make_controller):
    c = make_controller("local", workers=1)
    assert c.submit_task(abs, (-3,), seconds_timeout=10**400).result(timeout=60) == 3
    assert c.wait(timeout=10**400) is True
    alive(c)
    with pytest.raises(OptionsError, match="seconds_launch"):
        pycrew.controller("local", workers=1, seconds_launch=10**400)
    idle = pycrew.controller("local", workers=1, seconds_idle=10**400, seconds_timeout=10**400)
    try:
        assert idle.options.seconds_idle == float("inf") and idle.options.seconds_timeout == float("inf")
    finally:
        idle.terminate()


@pytest.mark.parametrize("raised", [RuntimeError("relay broke"), SystemExit(3)])
def test_a_relay_that_raises_is_logged_and_the_dispatcher_lives(make_controller, caplog, raised):
    c = make_controller("local", workers=1)
    calls: list[str] = []

    def relay(result: pycrew.TaskResult) -> None:
        calls.append(result.status)
        raise raised

    with caplog.at_level(logging.ERROR, logger="pycrew"):
        c.submit_task(abs, (-1,), relay=relay)
        assert c.wait(timeout=60) is True
    assert calls == ["success"]
    assert any("relay of task" in r.getMessage() and "lost" in r.getMessage() for r in caplog.records)
    assert c.summary().controller.running == 0
    alive(c)


def test_a_result_unpickling_into_an_exception_whose_str_raises_resolves_its_future(make_controller):
    c = make_controller("local", workers=1)
    future = c.submit(result_unpickling_into_a_broken_error)
    exc = future.exception(timeout=60)
    assert isinstance(exc, pycrew.SerializationError), repr(exc)
    assert "could not be unpickled" in str(exc) and "StrRaisesItself whose str() failed" in str(exc), str(exc)
    assert not isinstance(exc, StrRaisesItself)
    alive(c)


def test_wait_inside_a_maps_input_does_not_wait_for_that_input(make_controller):
    c = make_controller("local", workers=1)
    waited: list[bool] = []

    def items():
        yield 1
        waited.append(c.wait(timeout=20))
        yield 2

    assert list(c.map(abs, items(), timeout=60)) == [1, 2]
    assert waited == [True], "wait() counted the map whose input called it"


def test_a_task_done_observer_that_terminates_keeps_the_counts_whole(make_controller):
    holder: dict[str, pycrew.Controller] = {}
    done = threading.Event()

    class Observer:
        @pycrew.hookimpl
        def pycrew_task_done(self, result: pycrew.TaskResult) -> None:
            if result.name == "trigger":
                holder["c"].terminate()
                done.set()

    observer = Observer()
    pycrew.register(observer, name="test-terminating-observer")
    try:
        c = holder["c"] = make_controller("local", workers=1).start()
        c.push(abs, args=(-1,), name="trigger")
        assert done.wait(60)
        s = c.summary().controller
        assert (s.pushed, s.resolved, s.abandoned, s.running, s.queued) == (1, 1, 0, 0, 0), s
    finally:
        pycrew.unregister(observer)
