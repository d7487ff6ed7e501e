"""What ``pycrew config show`` adds to the profiles: the ``[defaults]`` tables, checked as
``pycrew.controller("<launcher>")`` applies them, the view of a launcher's name that no file
makes a profile of, and the ``PYCREW_*`` variables that override nothing (see :mod:`pycrew.config`)."""

from __future__ import annotations

import os
import re
from typing import Any

from pycrew.config import SEQUENTIAL, Profile, _annotations, _resolve
from pycrew.config_env import unprofiled_overrides
from pycrew.config_files import CODE_ONLY, ConfigFile, _close, config_files
from pycrew.controller_options import ControllerOptions
from pycrew.errors import OptionsError, PycrewError
from pycrew.options import _check_value, _coerce, _type_name
from pycrew.plugins import PluginRegistry, get_registry


def merged_defaults(files: list[ConfigFile]) -> tuple[dict[str, Any], dict[str, str]]:
    """The files' ``[defaults]`` merged (the project's over the user's), and where each key came from."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for f in files:
        for key, value in f.defaults.items():
            values[key], sources[key] = value, f.where("defaults")
    return values, sources


def defaults_problem(files: list[ConfigFile], registry: PluginRegistry | None = None) -> str | None:
    """The first ``[defaults]`` key that no launcher can take: one that is neither a controller option nor an option
    of an installed launcher (a typo), a value of the wrong type, or a controller option's value that the
    controller refuses; ``None`` if there is none. Profiles report the keys they take themselves."""
    values, sources = merged_defaults(files)
    if not values:
        return None
    registry = registry or get_registry()
    hints = _annotations(None)
    launcher_hints: dict[str, Any] = {}
    for launcher in registry.installed_launchers():
        try:
            options_type = registry.launcher(launcher).options_type
        except PycrewError:  # a broken plugin: `pycrew launchers` says so; it is no [defaults] matter
            continue
        launcher_hints = {**_annotations(options_type), **launcher_hints}
    named = {p.get("launcher", n) for f in files for n, p in f.profiles.items()}
    missing = {n for n in named if isinstance(n, str)} - {*registry.installed_launchers(), SEQUENTIAL}
    checked: dict[str, Any] = {}
    for key, value in values.items():
        where = f"{sources[key]}: key {key!r}"
        if key in CODE_ONLY:
            return f"{where}: cannot be set in a configuration: {CODE_ONLY[key]}"
        hint = hints.get(key, launcher_hints.get(key))
        if hint is None:
            if missing:  # an option of a launcher not installed here, maybe
                continue
            known = {*hints, *launcher_hints}
            return (f"{where}: unknown key: neither a controller option nor an option of an installed launcher"
                    f"{_close(key, known)}")
        value = _coerce(value, hint)
        if not (key == "tls" and isinstance(value, dict)) and not _check_value(value, hint):
            return f"{where}: must be {_type_name(hint)}, got {value!r} ({type(value).__name__})"
        if key in hints and key != "tls":
            checked[key] = value
    try:
        ControllerOptions(**checked)
    except OptionsError as exc:
        found = re.search(r"option '([A-Za-z_]\w*)'", str(exc))
        return f"{sources[found.group(1)]}: key {found.group(1)!r}: {exc}" if found and found.group(1) in sources else str(exc)
    return None


def launcher_view(
    launcher: str, cwd: str | os.PathLike[str] | None = None, *, registry: PluginRegistry | None = None
) -> Profile:
    """What ``pycrew.controller(launcher)`` gets when no file defines a profile of that name: the ``[defaults]``
    that apply to it, with their sources (none for ``"sequential"``), and the variables that override nothing.

    Raises:
        ConfigError: as :func:`pycrew.config.launcher_defaults`.
    """
    files = config_files(cwd)
    names = {n for f in files for n in f.profiles}
    ignored = unprofiled_overrides(launcher, names)
    if launcher == SEQUENTIAL or not any(f.defaults for f in files):
        return Profile(launcher, launcher, {}, {"launcher": "default"}, ignored)
    found = _resolve(files, launcher, registry or get_registry(), environment=False)
    return Profile(launcher, launcher, found.options, found.sources, ignored)


def ignored_variables(files: list[ConfigFile], registry: PluginRegistry | None = None) -> dict[str, str]:
    """``{variable: why}`` of the ``PYCREW_<LAUNCHER>_<KEY>`` variables aimed at a launcher's name that no file
    makes a profile of (profiles' own ignored variables are in :attr:`Profile.ignored`)."""
    names = {n for f in files for n in f.profiles}
    out: dict[str, str] = {}
    for launcher in [*(registry or get_registry()).installed_launchers(), SEQUENTIAL]:
        if launcher not in names:
            out.update(unprofiled_overrides(launcher, names))
    return out
