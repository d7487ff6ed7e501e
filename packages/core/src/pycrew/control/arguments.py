"""Checking the arguments of a task as ``push``, ``submit_task`` and ``walk`` receive them.

Each returns them in the form the controller packs, or raises an error that names the
call, the argument, what it got and what to write instead (a mistake such as
``push(fn, "text")`` would otherwise run ``fn("t", "e", "x", "t")`` on a worker).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from typing import Any

from pycrew.control.quoting import shown
from pycrew.errors import OptionsError
from pycrew.options import as_seconds


def positional(args: Any, where: str) -> tuple[Any, ...]:
    """``args`` as the tuple of a task's positional arguments, or a TypeError that says what to write.

    A string, bytes or a mapping is refused: ``tuple("abc")`` would run ``fn("a", "b", "c")``
    and ``tuple({"x": 1})`` ``fn("x")``, which is never what was meant.
    """
    if type(args) is tuple:
        return args
    if isinstance(args, Mapping):
        raise TypeError(f"{where}: args must be a tuple, a list or another iterable of positional arguments, got a mapping; pass keyword arguments as kwargs=")
    if not isinstance(args, (str, bytes, bytearray, memoryview)):
        try:
            return tuple(args)
        except TypeError:  # not iterable
            pass
    raise TypeError(
        f"{where}: args must be a tuple, a list or another iterable of the function's positional arguments, got "
        f"{type(args).__name__} {_shown(args)}; for a single argument write args=({_shown(args)},)"
    )


def seed(value: Any) -> int | None:
    """``value`` as a task's seed: ``None``, or an integer (an ``int``, a NumPy integer:
    anything with ``__index__``), else an OptionsError. ``True``/``False`` and floats are
    refused rather than taken as 1, 0 or a truncation."""
    if value is None:
        return None
    if not isinstance(value, bool):
        try:
            return operator.index(value)
        except TypeError:
            pass
    raise OptionsError(f"seed must be an int or None, got {type(value).__name__} {_shown(value)}")


def function(fn: Any) -> None:
    """Check a task's function.

    Raises:
        TypeError: ``fn`` is not callable.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {fn!r}")


def seconds_timeout(value: Any) -> float | None:
    """A task's ``seconds_timeout`` argument, checked (None: the controller's option).

    Raises:
        OptionsError: not a number > 0 or None.
    """
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise OptionsError(f"seconds_timeout must be a number > 0 or None, got {value!r}")
    return float(as_seconds(value))  # (10**400 is no limit: math.inf)


def name(value: Any) -> str | None:
    """``value`` as a task's name: ``None`` (the controller names it ``task_<n>``) or a non-empty string.

    A ``str`` subclass is taken as the plain string it holds: the dispatcher quotes, hashes
    and compares names, and a subclass's ``__repr__``, ``__hash__`` or ``__eq__`` is the
    user's code, which must not run (and fail) there.
    """
    if value is not None and (not isinstance(value, str) or not value):
        raise OptionsError(f"name must be a non-empty string (or None for task_<n>), got {_shown(value)}")
    return None if value is None else plain(value)


def plain(text: str) -> str:
    """The plain ``str`` that ``text`` (a ``str`` or a subclass of it) holds."""
    return str.__str__(text)


def cancel_names(names: Any, all: Any) -> frozenset[str] | None:
    """What ``cancel(names=..., all=...)`` asks for: the set of names, or ``None`` for all.

    Raises:
        OptionsError: neither or both given, or ``all`` is not a bool.
        TypeError: ``names`` is not a string or an iterable of strings.
    """
    if not isinstance(all, bool):
        raise OptionsError(f"cancel: all must be True or False, got {all!r}")
    if all:
        if names is not None:
            raise OptionsError("cancel: give names=... or all=True, not both")
        return None
    if names is None:
        raise OptionsError("cancel needs names=... or all=True")
    if isinstance(names, str):
        return frozenset((plain(names),))
    try:
        wanted = list(names)
    except TypeError:
        raise TypeError(f"cancel: names must be a task name or a list of them, got {type(names).__name__} {_shown(names)}") from None
    for n in wanted:
        if not isinstance(n, str):
            raise TypeError(f"cancel: every name must be a string, got {type(n).__name__} {_shown(n)}")
    return frozenset(plain(n) for n in wanted)


def keywords(kwargs: Any, where: str) -> dict[str, Any]:
    """``kwargs`` as a dict of keyword arguments (str names), or a TypeError that says what was wrong."""
    if kwargs is None:
        return {}
    if not isinstance(kwargs, Mapping):
        raise TypeError(f"{where}: kwargs must be a dict of keyword arguments (name: value), got {type(kwargs).__name__} {_shown(kwargs)}")
    out = dict(kwargs)
    for key in out:
        if type(key) is not str:
            raise TypeError(f"{where}: kwargs' names must be strings, got {type(key).__name__} {_shown(key)}")
    return out


def _shown(value: Any) -> str:
    text = shown(value)
    return text if len(text) <= 60 else text[:57] + "..."


def walk_names(names: Iterable[str] | None, count: int) -> list[str] | None:
    """``walk``'s names, one string per item (checked before any task is pushed)."""
    if names is None:
        return None
    if isinstance(names, str):
        raise TypeError(f"walk(): names must be a list of task names, one per item, got the string {_shown(names)}")
    given = list(names)
    if len(given) != count:
        raise ValueError(f"walk(): names has {len(given)} names for {count} items; give one name per item, or none")
    for name in given:
        if not isinstance(name, str):
            raise TypeError(f"walk(): every name must be a string, got {type(name).__name__} {_shown(name)}")
        if not name:
            raise ValueError("walk(): every name must be a non-empty string, got ''")
    return [plain(name) for name in given]
