"""Quoting what users and plugins give in messages, when quoting it may itself fail.

A task's name, argument or exception is the user's object: its ``__repr__`` or ``__str__``
may raise (or raise an exception whose own ``__str__`` raises). A message built on the
dispatcher's thread must not fail for that, or the task it was about would never resolve.
"""

from __future__ import annotations


def _kind(value: object) -> str:
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def shown(value: object) -> str:
    """``repr(value)``, cut to 80 characters, for an error message quoting what a plugin or a user gave."""
    try:
        text = repr(value)
    except Exception:  # (its repr is the user's code)
        return f"<{_kind(value)} object whose repr() failed>"
    return text if len(text) <= 80 else f"{text[:77]}..."


def text_of(exc: BaseException) -> str:
    """``str(exc)``, or what it is if its ``__str__`` fails."""
    try:
        return str(exc)
    except Exception:
        return f"<{_kind(exc)} whose str() failed>"


def said(exc: BaseException) -> str:
    """``"<type name>: <message>"`` of an exception, whatever its ``__str__`` does."""
    return f"{type(exc).__name__}: {text_of(exc)}"
