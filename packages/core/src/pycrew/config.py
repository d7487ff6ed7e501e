"""Named controller profiles: ``pycrew.toml``, ``[tool.pycrew]``, a user file and the environment.

A profile names a launcher and its options, so that ``pycrew.controller("gpu")`` needs no
arguments::

    # pycrew.toml  (or [tool.pycrew] in pyproject.toml, same shape)
    [profiles.gpu]
    launcher = "slurm"
    workers = 8
    seconds_idle = 60
    partition = "gpu"          # launcher options sit beside controller options

    [defaults]                 # optional: applied to every profile, and to
    seconds_launch = 120       # pycrew.controller("<launcher>") with no profile of that name

Where values come from, lowest precedence first:

1. the options' own defaults (:class:`~pycrew.ControllerOptions`, the launcher's options class);
2. the user file: ``$PYCREW_CONFIG`` if set (empty: no user file), else
   ``$XDG_CONFIG_HOME/pycrew/config.toml`` (default ``~/.config/pycrew/config.toml``);
   its ``[defaults]``, then its ``[profiles.<name>]``;
3. the project file: the first directory, from the working directory upwards, holding
   ``pycrew.toml`` or a ``pyproject.toml`` with ``[tool.pycrew]`` (``pycrew.toml`` wins
   when a directory has both); its ``[defaults]``, then its ``[profiles.<name>]``. The
   project file overrides the user file key by key;
4. environment variables ``PYCREW_<PROFILE>_<KEY>`` (e.g. ``PYCREW_GPU_WORKERS=16``; the
   profile's name upper-cased, other characters than letters and digits as ``_``), parsed
   to the key's type: ``true``/``false``, numbers (``inf`` too), ``none`` for optional
   keys, JSON for lists and tables. They override profiles that exist in a file; they do
   not create profiles (one aimed at a launcher's name without a profile, or naming no
   option, is ignored with a WARNING, once);
5. the arguments given to ``pycrew.controller(name, workers, **options)``
   (see :func:`controller_arguments`).

A profile's ``launcher`` defaults to its own name when that is an installed launcher, so
``[profiles.local]`` tunes ``pycrew.controller("local")``: a profile whose name is also a
launcher's name wins only when it is defined in a file. The controller's ``name`` defaults
to the profile's name. Every key is checked when a profile is loaded: a key that is neither
a controller option nor an option of the profile's launcher (``partiton``), or a value of the
wrong type, raises :class:`ConfigError` naming the file, the profile, the key and a close
match. A ``[defaults]`` key that is an option of another installed launcher only is skipped
for profiles whose launcher lacks it (``python`` suits ``local`` and ``slurm``, not every
launcher); so is any unknown ``[defaults]`` key while some profile names a launcher that
is not installed here (its options cannot be known). ``backup`` cannot be configured (it
is a controller object); ``tls`` takes a mode or a table of :class:`~pycrew.TLS` fields;
``initializer`` takes the function's name, ``"package.module:function"``, which each
worker imports (with ``initargs`` a list). A profile whose launcher is ``"sequential"``
(``[profiles.sequential]`` among them) builds a :class:`~pycrew.SequentialController`: it
takes only :data:`SEQUENTIAL_KEYS`, and ``[defaults]`` keys it lacks are skipped.
Only the profile asked for is validated, so a broken profile does not stop the others;
syntax errors and unknown sections in a file fail every profile of that file.

``pycrew.controller(name, ...)`` resolves ``name`` through :func:`controller_arguments`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pycrew.config_env import _env_overrides, spelled_number, unprofiled_overrides, warn_ignored
from pycrew.config_env import env_prefix as env_prefix
from pycrew.config_env import parse_env_value as parse_env_value
from pycrew.config_files import CODE_ONLY, PROJECT_FILE, ConfigFile, _close, origins
from pycrew.config_files import SEQUENTIAL as SEQUENTIAL
from pycrew.config_files import SEQUENTIAL_KEYS as SEQUENTIAL_KEYS
from pycrew.config_files import ConfigError as ConfigError
from pycrew.config_files import config_files as config_files
from pycrew.config_files import profile_names as profile_names
from pycrew.config_files import user_config_path as user_config_path
from pycrew.controller_options import ControllerOptions
from pycrew.errors import LauncherNotFoundError, OptionsError
from pycrew.options import _check_value, _coerce, _type_name
from pycrew.plugins import PluginRegistry, get_registry, install_hint
from pycrew.tls import TLS

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Profile:
    """A resolved, validated profile.

    Attributes:
        name: the profile's name.
        launcher: the launcher's name.
        options: controller and launcher options in one namespace (no ``launcher`` key).
        sources: where each key (``launcher`` included) came from: ``"<path>:profiles.gpu"``,
            ``"<path>:defaults"``, ``"env PYCREW_GPU_WORKERS"``, or ``"default"`` for a
            launcher taken from the profile's name.
        ignored: ``PYCREW_<PROFILE>_<KEY>`` variables aimed at it that name no option, and why.
    """

    name: str
    launcher: str
    options: dict[str, Any]
    sources: dict[str, str]
    ignored: dict[str, str] = dataclasses.field(default_factory=dict)

    def launcher_options(self) -> dict[str, Any]:
        """Only the launcher's own options (for a :class:`pycrew.Monitor`, say)."""
        keys = ControllerOptions.keys()
        return {k: v for k, v in self.options.items() if k not in keys}


def _annotations(options_type: type | None) -> dict[str, Any]:
    """Field annotations of ``ControllerOptions`` (and a launcher's options class)."""
    hints = typing.get_type_hints(ControllerOptions)
    out = {f.name: hints.get(f.name, Any) for f in dataclasses.fields(ControllerOptions)}
    if options_type is not None:
        hints = typing.get_type_hints(options_type)
        out.update({f.name: hints.get(f.name, Any) for f in dataclasses.fields(options_type) if f.init})
    return out


def _is_launcher(registry: PluginRegistry, name: str) -> bool:
    try:
        registry.launcher(name)
    except LauncherNotFoundError:
        return False
    return True


def _other_launcher_keys(registry: PluginRegistry, skip: str) -> set[str]:
    """Options of every installed launcher except ``skip`` (loaded only when needed)."""
    keys: set[str] = set()
    for launcher in registry.installed_launchers():
        if launcher == skip:
            continue
        try:
            spec = registry.launcher(launcher)
        except Exception as exc:  # a broken plugin must not hide the real question; say so
            log.warning("could not load launcher %r to check [defaults] keys: %s", launcher, exc)
            continue
        keys.update(f.name for f in dataclasses.fields(spec.options_type) if f.init)
    return keys


def _resolve(files: list[ConfigFile], name: str, registry: PluginRegistry, environment: bool = True) -> Profile:
    """Merge, override from the environment (unless not ``environment``), and validate profile ``name``."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    from_defaults: set[str] = set()
    home = ""  # the most precedent file section defining the profile
    for f in files:
        for section, table in (("defaults", f.defaults), (f"profiles.{name}", f.profiles.get(name))):
            if table is None:
                continue
            if section != "defaults":
                home = f.where(section)
            for key, value in table.items():
                values[key], sources[key] = value, f.where(section)
                if section == "defaults":
                    from_defaults.add(key)
                else:
                    from_defaults.discard(key)

    def fail(key: str | None, detail: str) -> ConfigError:
        where = sources.get(key, home) if key else home
        return ConfigError(f"{where}: profile {name!r}" + (f", key {key!r}" if key else "") + f": {detail}")

    all_names = {n for f in files for n in f.profiles}
    env = _env_overrides(name, all_names - {name}) if environment else {}
    if "launcher" in env:
        var, values["launcher"] = env.pop("launcher")
        sources["launcher"] = f"env {var}"
    launcher = values.pop("launcher", None)
    if launcher is None:
        if name != SEQUENTIAL and not _is_launcher(registry, name):
            raise fail(None, f"no 'launcher' key, and {name!r} is no launcher; add launcher = \"...\" "
                       f"(installed: {', '.join(registry.installed_launchers()) or 'none'})")
        launcher, sources["launcher"] = name, "default"
    if not isinstance(launcher, str) or not launcher:
        raise fail("launcher", f"must be a launcher's name, got {launcher!r}")
    options_type = None
    if launcher != SEQUENTIAL:
        try:
            options_type = registry.launcher(launcher).options_type
        except LauncherNotFoundError as exc:
            raise fail("launcher", str(exc)) from exc
    hints = _annotations(options_type)
    valid = set(SEQUENTIAL_KEYS) if options_type is None else set(hints)
    ignored: dict[str, str] = {}
    for key, (var, text) in env.items():
        if key not in valid:
            if _close(key, valid):
                raise ConfigError(f"env {var}: profile {name!r}: unknown key {key!r}{_close(key, valid)}")
            ignored[var] = (f"{key!r} is no option of profile {name!r} (launcher {launcher!r}), nor close to one; "
                            f"`pycrew config show {name} --defaults` lists them")
            warn_ignored(var, ignored[var])
            continue
        try:
            values[key] = parse_env_value(text, hints[key])
        except ValueError as exc:
            raise ConfigError(f"env {var}: profile {name!r}, key {key!r}: {exc}") from exc
        sources[key] = f"env {var}"
        from_defaults.discard(key)
    others: set[str] | None = None
    unknown: list[str] = []  # every one is named: a typo in [defaults] hid another in the profile
    for key in list(values):
        if key in CODE_ONLY:
            raise fail(key, f"cannot be set in a configuration: {CODE_ONLY[key]}")
        if key in valid:
            continue
        if key in from_defaults:
            controller_keys = ControllerOptions.keys()
            if options_type is None and key in controller_keys:  # one the sequential controller does without
                del values[key], sources[key]
                continue
            others = _other_launcher_keys(registry, launcher) if others is None else others
            named = {p.get("launcher", p_name) for f in files for p_name, p in f.profiles.items()}
            missing = {n for n in named if isinstance(n, str)} - {*registry.installed_launchers(), SEQUENTIAL}
            if key in others or missing:  # an option of another launcher (maybe one not installed here)
                del values[key], sources[key]
                continue
        unknown.append(key)
    if unknown:
        owner = "no option of the sequential controller (it runs every task in this process, without workers)" if (
            options_type is None) else f"neither a controller option nor an option of the {launcher!r} launcher"
        settable = valid - set(CODE_ONLY)  # (backup, ...: named in code only, see CODE_ONLY)
        more = "".join(f"; and key {k!r} ({sources[k]}) too{_close(k, settable)}" for k in unknown[1:])
        raise fail(unknown[0], f"unknown key: {owner}{_close(unknown[0], settable)}{more}; valid keys: "
                   f"{', '.join(sorted(settable))}")
    for key, value in list(values.items()):
        if key == "tls" and isinstance(value, dict):
            try:
                value = TLS(**value)
            except (TypeError, OptionsError) as exc:
                fields = ", ".join(f.name for f in dataclasses.fields(TLS))
                raise fail(key, f"a tls table takes {fields}: {exc}") from exc
        value = _coerce(value, hints[key])
        if not _check_value(value, hints[key]):
            unquote = isinstance(value, str) and _check_value(spelled_number(value), hints[key])
            raise fail(key, f"must be {_type_name(hints[key])}, got {value!r} ({type(value).__name__})"
                       + ("; write the number without quotes (TOML has inf and nan too)" if unquote else ""))
        values[key] = value
    try:
        keys = ControllerOptions.keys()
        ControllerOptions(**{k: v for k, v in values.items() if k in keys})
        if options_type is not None:
            options_type.from_mapping({k: v for k, v in values.items() if k not in keys})
    except OptionsError as exc:
        found = re.search(r"option '([A-Za-z_]\w*)'", str(exc))
        culprit = found.group(1) if found else "tls" if str(exc).startswith("tls") else None
        culprit = culprit if culprit in sources else None
        raise fail(culprit, str(exc) + origins(str(exc), values, sources, skip=culprit)) from exc
    return Profile(name=name, launcher=launcher, options=values, sources=sources, ignored=ignored)


def load_profile(
    name: str, cwd: str | os.PathLike[str] | None = None, *, registry: PluginRegistry | None = None
) -> Profile | None:
    """The profile ``name`` from the configuration files, or ``None`` if no file defines it.

    Args:
        name: the profile's name.
        cwd: where the search for the project file starts (default: the working directory).
        registry: the plugin registry that knows the launchers (default: the global one).

    Raises:
        ConfigError: a file is malformed, or a key of this profile is unknown or invalid
            (the message names the file or variable, the profile and the key).
    """
    files = config_files(cwd)
    if not any(name in f.profiles for f in files):
        return None
    return _resolve(files, name, registry or get_registry())


def launcher_defaults(
    launcher: str, cwd: str | os.PathLike[str] | None = None, *, registry: PluginRegistry | None = None
) -> dict[str, Any]:
    """The configuration files' ``[defaults]`` that apply to ``pycrew.controller(launcher)`` when
    no file defines a profile of that name: filtered to the launcher's options and validated as
    a profile's (the environment's overrides apply to profiles defined in a file only).

    Raises:
        ConfigError: as :func:`load_profile`.
    """
    files = config_files(cwd)
    if not any(f.defaults for f in files):
        return {}
    return _resolve(files, launcher, registry or get_registry(), environment=False).options


def profiles(
    cwd: str | os.PathLike[str] | None = None, *, registry: PluginRegistry | None = None
) -> dict[str, Profile]:
    """Every profile defined in the configuration files, resolved and validated.

    Raises:
        ConfigError: as :func:`load_profile`, for the first profile that fails.
    """
    files = config_files(cwd)
    names = sorted({n for f in files for n in f.profiles})
    return {n: _resolve(files, n, registry or get_registry()) for n in names}


def check_name(name: str, cwd: str | os.PathLike[str] | None = None, *, registry: PluginRegistry | None = None) -> None:
    """Make sure ``name`` is a profile's, an installed launcher's or ``"sequential"``.

    Raises:
        LauncherNotFoundError: it is none: the message gives a close match among the launchers and
            profiles, lists both, and says how to define the profile or install the launcher (or,
            for a launcher that ``PYCREW_PLUGINS``/``PYCREW_BLOCK_PLUGINS`` leaves out, how to load it).
    """
    registry = registry or get_registry()
    if name == SEQUENTIAL or name in profile_names(cwd):
        return
    try:
        registry.launcher(name)
    except LauncherNotFoundError as exc:
        if "installed but not loaded" in str(exc):  # blocked (PYCREW_PLUGINS, PYCREW_BLOCK_PLUGINS): not a profile matter
            raise
        installed, names = registry.installed_launchers(), profile_names(cwd)
        raise LauncherNotFoundError(
            f"no launcher or profile named {name!r}{_close(name, {*installed, *names})}; launchers: "
            f"{', '.join(installed) or 'none'}; profiles: {', '.join(names) or 'none'}. Define "
            f"[profiles.{name}] in {PROJECT_FILE}, or install the launcher: {install_hint(name)}"
        ) from exc


def controller_arguments(
    name: str,
    workers: int | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
    registry: PluginRegistry | None = None,
) -> tuple[str, int | None, dict[str, Any]]:
    """Turn ``pycrew.controller(name, workers, **options)`` into a launcher and its options.

    If a configuration file defines profile ``name``, the result is the profile's launcher,
    and its options overridden by the explicit ``workers`` and ``options``; the controller's
    ``name`` defaults to the profile's. Otherwise ``name`` must be an installed launcher (or
    ``"sequential"``) and the arguments come back with the files' ``[defaults]`` under them
    (:func:`launcher_defaults`; none for ``"sequential"``).

    Args:
        name: a profile's or a launcher's name.
        workers: the ``workers`` argument, ``None`` when the caller did not give one.
        options: the other keyword arguments.
        cwd: where the search for the project file starts (default: the working directory).
        registry: the plugin registry (default: the global one).

    Returns:
        ``(launcher, workers, options)``; ``workers`` is ``None`` if neither the caller nor
        the profile set it (use the default of :class:`~pycrew.ControllerOptions`).

    Raises:
        OptionsError: ``name`` is not a non-empty string.
        ConfigError: the profile is invalid (naming file, profile and key).
        LauncherNotFoundError: ``name`` is neither a profile nor an installed launcher.

    Example (how :func:`pycrew.controller` uses it; its ``workers`` defaults to ``None``)::

        launcher, workers, options = controller_arguments(name, workers, options)
        if launcher == "sequential":
            return SequentialController(name=options.pop("name", None), **options)
        return Controller(launcher, 1 if workers is None else workers, **options)
    """
    registry = registry or get_registry()
    if not isinstance(name, str) or not name.strip():
        launchers = ", ".join(registry.installed_launchers()) or "none"
        raise OptionsError(
            f"pycrew.controller() argument 'launcher' must be the name (a non-empty str) of an installed launcher "
            f"or of a profile, got {name!r} ({type(name).__name__}); installed launchers: {launchers}, and "
            f"{SEQUENTIAL!r}. Example: pycrew.controller('local', workers=2)"
        )
    explicit = dict(options or {})
    profile = load_profile(name, cwd, registry=registry)
    if profile is None:
        if name != SEQUENTIAL:
            check_name(name, cwd, registry=registry)
        for var, why in unprofiled_overrides(name, profile_names(cwd)).items():
            warn_ignored(var, why)
        if name != SEQUENTIAL:
            defaults = launcher_defaults(name, cwd, registry=registry)
            default_workers = defaults.pop("workers", None)
            return name, workers if workers is not None else default_workers, {**defaults, **explicit}
        return name, workers, explicit
    merged = {**profile.options, **explicit}
    merged.setdefault("name", profile.name)
    profile_workers = merged.pop("workers", None)
    return profile.launcher, workers if workers is not None else profile_workers, merged
