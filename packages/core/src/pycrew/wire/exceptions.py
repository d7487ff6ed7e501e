"""Exceptions whose own pickling cannot bring them back, sent by their state (both sides).

Pickle rebuilds an exception by calling its class with its ``args``: one whose
``__init__`` takes other arguments than it passes on to ``Exception.__init__``
(``class E(Exception): def __init__(self, a, b): super().__init__(f"{a}/{b}")``) fails to
unpickle with a ``TypeError``, a long-standing Python limitation
(https://github.com/python/cpython/issues/44791). The worker then sends it as
:class:`ByState`: the controller makes an instance of its class without calling
``__init__``, with its ``args`` and attributes, so that the task's caller still catches the
type it raised.
"""

from __future__ import annotations

from typing import Any


def rebuild(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any] | None) -> BaseException:
    """An instance of ``cls`` with ``args`` and the attributes in ``state``, ``__init__`` not called.

    Raises:
        TypeError: ``cls`` is not an exception class, or cannot be made so.
    """
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        raise TypeError(f"not an exception class: {cls!r}")
    try:
        exc = cls.__new__(cls, *args)
    except Exception:  # a __new__ of its own with other arguments
        exc = BaseException.__new__(cls)
    exc.args = args
    if state:
        exc.__dict__.update(state)
    return exc


class ByState:
    """Pickles as :func:`rebuild` of ``exc``'s class, args and attributes."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __reduce__(self) -> tuple[Any, ...]:
        exc = self.exc
        state = getattr(exc, "__dict__", None)
        return rebuild, (type(exc), tuple(exc.args), dict(state) if state else None)
