"""Helpers every ``pycrew`` subcommand shares: error display, tables, values, ``-o KEY=VALUE``."""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import click

from pycrew.config_env import parse_env_value
from pycrew.errors import PycrewError
from pycrew.tls import hide_private_keys

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
    """A value as TOML would spell it, roughly (PEM private keys hidden: a ``tls`` table may hold one)."""
    return hide_private_keys(_spelled(value))


def _spelled(value: Any) -> str:
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


def _json_safe(value: Any) -> Any:
    """``value`` with its infinite and NaN floats as the strings ``"inf"``, ``"-inf"`` and ``"nan"``, and PEM private
    keys in its strings hidden (a ``tls`` table may hold one)."""
    if isinstance(value, str):
        return hide_private_keys(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _json(data: Any) -> str:
    """``--json`` output: strict JSON (RFC 8259 has no Infinity or NaN: they are written as strings)."""
    return json.dumps(_json_safe(data), indent=2, default=str, allow_nan=False)


_NON_FINITE = frozenset({"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity", "nan"})
_OPTION_HINT = "'-o' / '--option'"


def _option_types(target: str) -> dict[str, Any]:
    """The annotation of every option of ``target`` (a launcher's or a profile's name), to parse ``-o`` values by.

    A profile's launcher is read from the files as they are (they are validated later, where the
    command reports errors); a name that is neither gives the controller options only.
    """
    from pycrew.config import _annotations
    from pycrew.config_env import env_prefix
    from pycrew.config_files import SEQUENTIAL, config_files
    from pycrew.plugins import get_registry

    launcher: Any = target
    try:
        for f in config_files():
            launcher = f.profiles.get(target, {}).get("launcher", launcher)
    except PycrewError:  # a broken file: the command itself says so
        pass
    launcher = os.environ.get(env_prefix(target) + "LAUNCHER", launcher)
    options_type = None
    if isinstance(launcher, str) and launcher != SEQUENTIAL:
        try:
            options_type = get_registry().launcher(launcher).options_type
        except PycrewError:
            pass
    return _annotations(options_type)


def _parse_option(text: str, types: Mapping[str, Any] | None = None) -> tuple[str, Any]:
    """``-o KEY=VALUE`` as a key and a value, parsed by the key's type in ``types`` as a ``PYCREW_<PROFILE>_<KEY>``
    variable is (so ``partition=123`` is the text "123"); a key not in ``types``: JSON if it parses, ``inf``/``nan``
    as floats, else the text."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise click.BadParameter(f"expected KEY=VALUE (e.g. -o seconds_idle=60), got {text!r}", param_hint=_OPTION_HINT)
    if types is not None and key in types:
        try:
            return key, parse_env_value(value, types[key])
        except ValueError as exc:
            raise click.BadParameter(f"{key}={value!r}: {exc}", param_hint=_OPTION_HINT) from None
    if value.strip().lower() in _NON_FINITE:  # JSON has no inf or nan: seconds_idle=inf means the number
        return key, float(value)
    return key, parse_env_value(value, Any)


def _parse_options(texts: Sequence[str], target: str) -> dict[str, Any]:
    """Every ``-o KEY=VALUE`` of a command about ``target`` (a launcher's or a profile's name)."""
    types = _option_types(target) if texts else {}
    return dict(_parse_option(t, types) for t in texts)
