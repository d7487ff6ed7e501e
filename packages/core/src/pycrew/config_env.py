"""Profile overrides from the environment: ``PYCREW_<PROFILE>_<KEY>`` variables, parsed to
the key's type (see :mod:`pycrew.config`)."""

from __future__ import annotations

import json
import logging
import os
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

from pycrew.config_files import RESERVED_ENV
from pycrew.options import _type_name

log = logging.getLogger("pycrew.config")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_prefix(profile: str) -> str:
    """The prefix of a profile's environment overrides: ``"gpu-a"`` -> ``"PYCREW_GPU_A_"``."""
    return "PYCREW_" + re.sub(r"[^A-Z0-9]", "_", profile.upper()) + "_"


def _env_overrides(name: str, others: typing.Iterable[str]) -> dict[str, tuple[str, str]]:
    """``{key: (variable, text)}`` of the variables aimed at profile ``name``."""
    prefix = env_prefix(name)
    longer = [p for p in map(env_prefix, others) if len(p) > len(prefix) and p.startswith(prefix)]
    out: dict[str, tuple[str, str]] = {}
    for var, text in sorted(os.environ.items()):
        if var.startswith(prefix) and var not in RESERVED_ENV and not any(var.startswith(p) for p in longer):
            out[var[len(prefix) :].lower()] = (var, text)
    return out


_warned: set[str] = set()


def warn_ignored(var: str, why: str) -> None:
    """Log a WARNING that the variable ``var`` is ignored and why, once per variable and process."""
    if var not in _warned:
        _warned.add(var)
        log.warning("ignoring %s: %s", var, why)


def unprofiled_overrides(launcher: str, profiles: typing.Iterable[str]) -> dict[str, str]:
    """``{variable: why}`` for the ``PYCREW_<LAUNCHER>_<KEY>`` variables aimed at a launcher's name that no file
    defines a profile of (``profiles``: the names files define): they override nothing."""
    why = (f"no configuration file defines [profiles.{launcher}], and PYCREW_<PROFILE>_<KEY> variables override "
           f"profiles defined in a file only (they create none); add [profiles.{launcher}] to pycrew.toml to tune "
           f"pycrew.controller({launcher!r})")
    return {var: why for var, _ in _env_overrides(launcher, profiles).values()}


def parse_env_value(text: str, tp: Any) -> Any:
    """Parse an environment variable's text as a value of the annotation ``tp``.

    Raises:
        ValueError: the text is not a value of that type.
    """
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and text.strip().lower() in ("none", "null", ""):
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return parse_env_value(text, arg)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError("; ".join(errors) or f"cannot parse {text!r}")
    if tp is bool:
        lowered = text.strip().lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise ValueError(f"expected true/false (or 1/0, yes/no, on/off), got {text!r}")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"expected a whole number (e.g. 4), got {text!r}") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number (e.g. 2.5, or inf for no limit), got {text!r}") from None
    if tp is str:
        return text
    if origin is Literal:
        for choice in typing.get_args(tp):
            if str(choice) == text:
                return choice
        raise ValueError(f"expected one of {list(typing.get_args(tp))}, got {text!r}")
    if origin in (list, tuple, set, frozenset, dict) or tp in (list, tuple, dict) or origin is Mapping:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"expected JSON for {_type_name(tp)}, got {text!r} ({exc})") from exc
    try:  # Any and other annotations: JSON if it parses, else the text
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def spelled_number(text: str) -> object:
    """``text`` as the number it spells (``"inf"``, ``"2.5"``, ``"4"``), else ``text`` itself
    (a configuration's quoted number is told to lose its quotes)."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text
