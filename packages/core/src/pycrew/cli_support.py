"""Helpers every ``pycrew`` subcommand shares: error display, tables, values, ``-o KEY=VALUE``."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from pycrew.config_env import parse_env_value
from pycrew.errors import PycrewError

F = TypeVar("F", bound=Callable[..., Any])


def _errors(fn: F) -> F:
    """Show pycrew's errors as ``Error: <message>`` with exit code 1, not as a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PycrewError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns; the last one is not padded."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])


def _show(value: Any) -> str:
    """A value as TOML would spell it, roughly."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, str):
        return json.dumps(value)
    if value is None:
        return "none"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str)
    return str(value)


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)


_NON_FINITE = frozenset({"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity", "nan"})


def _parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` as a key and a value: JSON if it parses, ``inf``/``nan`` as floats, else the text."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise click.BadParameter(f"expected KEY=VALUE, got {text!r}")
    if value.strip().lower() in _NON_FINITE:  # JSON has no inf or nan: seconds_idle=inf means the number
        return key.strip(), float(value)
    return key.strip(), parse_env_value(value, Any)
