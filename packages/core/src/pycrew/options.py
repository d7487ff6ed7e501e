"""Typed, validated options: the controller's own and the base class of launchers' options.

A launcher's options are a frozen dataclass deriving from :class:`LauncherOptions`. Each
field is type-checked from its annotation when the object is built, and unknown keys are
rejected with the valid names (and a close match), so that a typo such as ``partiton``
fails at once instead of becoming a silent default.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

from pycrew.errors import OptionsError


def _type_name(tp: Any) -> str:
    """An annotation as a reader would write it: ``dict[str, str]``, ``one of 'a', 'b'``, ``str or None``."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None) or tp is None:
        return "None"
    if origin is not None:
        args = ", ".join("..." if a is Ellipsis else _type_name(a) for a in typing.get_args(tp))
        name = getattr(origin, "__name__", None) or str(origin).replace("typing.", "")
        return f"{name}[{args}]" if args else name
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _got(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _check_value(value: Any, tp: Any) -> bool:
    """Whether ``value`` conforms to the annotation ``tp`` (the subset options use)."""
    if tp is Any or tp is object:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_check_value(value, a) for a in typing.get_args(tp))
    if origin is Literal:
        return value in typing.get_args(tp)
    if tp is type(None) or tp is None:
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (tuple, list, frozenset, set):
        container = {tuple: tuple, list: list, frozenset: frozenset, set: set}[origin]
        if not isinstance(value, container):
            return False
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return all(_check_value(v, args[0]) for v in value) if args else True
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            return False
        args = typing.get_args(tp)
        return all(_check_value(k, args[0]) and _check_value(v, args[1]) for k, v in value.items()) if args else True
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def type_mismatch(value: Any, tp: Any, path: str) -> str | None:
    """Why ``value`` does not conform to the annotation ``tp``, or ``None`` if it does.

    The answer names the offending element by its ``path`` (``env['A'] must be str, got
    1 (int)``), the allowed values of a ``Literal`` (``wire must be one of 'socket', 'nng',
    got 'zmq'``), or the expected type.
    """
    if _check_value(value, tp):
        return None
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not Ellipsis]
    if origin in (tuple, list) and isinstance(value, origin) and args:
        for i, item in enumerate(value):
            inner = type_mismatch(item, args[0], f"{path}[{i}]")
            if inner:
                return inner
    if origin in (frozenset, set) and isinstance(value, (frozenset, set)) and args:
        for item in value:
            if not _check_value(item, args[0]):
                return f"{path} items must be {_type_name(args[0])}, got {_got(item)}"
    if origin in (dict, Mapping) and isinstance(value, Mapping) and len(args) == 2:
        for key, item in value.items():
            if not _check_value(key, args[0]):
                return f"{path} keys must be {_type_name(args[0])}, got {_got(key)}"
            inner = type_mismatch(item, args[1], f"{path}[{key!r}]")
            if inner:
                return inner
    if origin is Literal:
        return f"{path} must be {_type_name(tp)}, got {value!r}"
    return f"{path} must be {_type_name(tp)}, got {_got(value)}"


def as_seconds(value: Any) -> Any:
    """An int beyond a float's range as ``±math.inf`` (a number of seconds that large is no
    limit, and float arithmetic on it would raise ``OverflowError``); anything else unchanged."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    return value


def _coerce(value: Any, tp: Any) -> Any:
    """Turn lists into tuples and mappings into dicts where the annotation asks for them,
    and ints into floats (:func:`as_seconds`)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if float in typing.get_args(tp) and isinstance(value, int) and not isinstance(value, bool):
            return as_seconds(value)
        for arg in typing.get_args(tp):
            if typing.get_origin(arg) is tuple and isinstance(value, list):
                return tuple(value)
            if typing.get_origin(arg) is frozenset and isinstance(value, (list, set, tuple)):
                return frozenset(value)
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(as_seconds(value))
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    if origin is frozenset and isinstance(value, (list, set, tuple)):
        return frozenset(value)
    return value


def check_fields(obj: Any, owner: str) -> None:
    """Type-check every field of dataclass ``obj`` against its annotation.

    Raises:
        OptionsError: naming ``owner``, the field, the expected type and the value.
    """
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        if not f.init:
            continue
        tp = hints.get(f.name, Any)
        value = getattr(obj, f.name)
        coerced = _coerce(value, tp)
        if coerced is not value:
            object.__setattr__(obj, f.name, coerced)
            value = coerced
        wrong = type_mismatch(value, tp, f.name)
        if wrong is None:
            continue
        if wrong.startswith(f"{f.name} must be "):  # the option itself, not an element of it
            raise OptionsError(f"{owner} option {f.name!r} {wrong[len(f.name) + 1 :]}")
        raise OptionsError(f"{owner} option {f.name!r} must be {_type_name(tp)}: {wrong}")


def require(condition: bool, owner: str, name: str, value: Any, must: str) -> None:
    """Raise :class:`OptionsError` ``"<owner> option <name> must <must>, got <value>"`` unless ``condition``."""
    if not condition:
        raise OptionsError(f"{owner} option {name!r} must {must}, got {value!r}")


def unknown_keys_message(owner: str, unknown: Iterable[str], valid: Iterable[str]) -> str:
    """A message naming unknown option keys, the valid ones and the closest match."""
    valid = sorted(valid)
    parts = []
    for key in sorted(unknown):
        close = difflib.get_close_matches(key, valid, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        parts.append(f"{key!r}{hint}")
    return f"unknown {owner} option(s): {', '.join(parts)}; valid options: {', '.join(valid)}"


@dataclass(frozen=True)
class LauncherOptions:
    """Base class of every launcher's options: a frozen, type-checked dataclass.

    Subclasses add fields with annotations and defaults, and may override
    :meth:`validate` for checks beyond types (raise :class:`OptionsError` there).

    Set the class variable ``owner`` (``owner: ClassVar[str] = "slurm"``) to the
    launcher's name: it is not a field and not an option, only the name that the
    :class:`OptionsError` messages about these options start with, so that users see
    which launcher's option is wrong (``slurm option 'cpus' must be ...``, ``unknown
    slurm option(s): ...``, ``slurm option(s) 'queue' have no default ...``). Pass it
    to :func:`pycrew.require` in :meth:`validate` too. Left unset, messages say
    ``launcher option ...``. It changes nothing else: the launcher's name is the one
    its plugin registers.
    """

    #: Name used in error messages; subclasses set it to the launcher's name (e.g. ``"slurm"``).
    owner: ClassVar[str] = "launcher"

    def __post_init__(self) -> None:
        check_fields(self, self.owner)
        self.validate()

    def validate(self) -> None:
        """Check constraints beyond types; raise :class:`OptionsError` on bad values."""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Self:
        """Build from a mapping, rejecting unknown keys with a clear message."""
        valid = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = set(values) - valid
        if unknown:
            raise OptionsError(unknown_keys_message(cls.owner, unknown, valid))
        missing = sorted(
            f.name
            for f in dataclasses.fields(cls)
            if f.init and f.name not in values
            and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        )
        if missing:
            names = ", ".join(repr(m) for m in missing)
            raise OptionsError(
                f"{cls.owner} option(s) {names} have no default and were not given: pass them "
                f"(pycrew.controller(..., {missing[0]}=...), pycrew.Monitor(..., {missing[0]}=...), or "
                f"'pycrew monitor LAUNCHER list -o {missing[0]}=...'), or set them in a profile"
            )
        return cls(**values)

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def is_finite_or_inf(value: float) -> bool:
    """True for any non-negative number, including ``math.inf``; False for NaN."""
    return not math.isnan(value) and value >= 0
