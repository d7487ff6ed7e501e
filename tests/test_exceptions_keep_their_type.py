"""A task's exception comes back as its own type, even one that plain pickle cannot rebuild.

Pickle rebuilds an exception by calling its class with its ``args``; an ``__init__`` that
takes other arguments fails there with a ``TypeError`` (CPython's issue 44791). Before
pycrew.wire.exceptions, such an exception arrived as a bare ``TaskError`` with its text
(probe G, session 32): ``except TwoArgumentError`` around ``future.result()`` missed it.
"""

from __future__ import annotations

import pickle

import pytest

import pycrew
from helpers import KeywordOnlyError, LockHoldingError, OwnNewError, TwoArgumentError, raise_built
from pycrew.control.tasks import RemoteTraceback


def test_plain_pickle_cannot_rebuild_these():
    with pytest.raises(TypeError):
        pickle.loads(pickle.dumps(TwoArgumentError("a", 1)))
    with pytest.raises(TypeError):
        pickle.loads(pickle.dumps(KeywordOnlyError(code=1)))


@pytest.mark.parametrize(
    ("kind", "cls", "args", "attributes"),
    [
        ("two", TwoArgumentError, ("setup.cfg:7: bad",), {"path": "setup.cfg", "line": 7}),
        ("keyword", KeywordOnlyError, ("code 3",), {"code": 3}),
        ("new", OwnNewError, ("abcd",), {}),
    ],
)
def test_an_exception_whose_init_takes_other_arguments_arrives_as_its_type(make_controller, kind, cls, args, attributes):
    c = make_controller("local", workers=1)
    future = c.submit(raise_built, kind)
    with pytest.raises(cls) as info:
        future.result(timeout=60)
    exc = info.value
    assert type(exc) is cls and exc.args == args, repr(exc)
    assert {name: getattr(exc, name) for name in attributes} == attributes
    assert isinstance(exc.__cause__, RemoteTraceback) and "raise_built" in str(exc.__cause__)
    c.push(raise_built, args=(kind,), name="pushed")
    c.wait(timeout=60)
    result = c.pop()
    assert result.status == "error" and result.error_type.endswith(cls.__qualname__)
    assert type(result.exception) is cls and result.exception.args == args


def test_one_that_travels_neither_way_arrives_as_a_task_error_with_its_text(make_controller):
    c = make_controller("local", workers=1)
    future = c.submit(raise_built, "lock")
    with pytest.raises(pycrew.TaskError, match="LockHoldingError") as info:
        future.result(timeout=60)
    assert not isinstance(info.value, LockHoldingError) and "3" in str(info.value)
    assert c.submit(abs, -4).result(timeout=60) == 4, "the worker and the dispatcher carry on"
