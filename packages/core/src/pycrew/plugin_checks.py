"""What a plugin registers, checked before any of it is kept: options, capabilities, and whose name it is.

The naming rule (:func:`name_problem`), so that which plugin serves a launcher name never
depends on the order plugins happen to be loaded in:

- A plugin loaded from an entry point of group ``pycrew.launchers`` registers exactly one
  launcher: the one its entry point names (entry name = launcher name).
- A plugin loaded from group ``pycrew.plugins`` (observers, hook wrappers) registers none.
- A plugin registered in code (:func:`pycrew.register`) may register any name that no
  other plugin has registered and no installed entry point of ``pycrew.launchers`` declares.
- Two distributions declaring the same launcher entry point are an error when that
  launcher is asked for (:func:`only_entry_point`), never a silent choice by ``sys.path`` order.

A plugin that breaks a rule has none of its launchers registered (all or nothing).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
from collections.abc import Collection, Sequence
from importlib import metadata
from typing import Any

from pycrew.errors import PluginError
from pycrew.options import LauncherOptions
from pycrew.plugin_api import LAUNCHER_CAPABILITIES, LauncherSpec

LAUNCHER_GROUP = "pycrew.launchers"
PLUGIN_GROUP = "pycrew.plugins"
BLOCK_ENV = "PYCREW_BLOCK_PLUGINS"
ALLOW_ENV = "PYCREW_PLUGINS"
#: In a :func:`filter_problems` message about a name that no installed plugin has.
UNKNOWN_PLUGIN = "which no installed plugin is"


def filter_problems(
    allow: set[str] | None, block: set[str], launchers: Collection[str], plugins: Collection[str]
) -> list[str]:
    """What ``PYCREW_PLUGINS`` and ``PYCREW_BLOCK_PLUGINS`` do that their user may not mean: names that no
    installed entry point has (a typo: a close match is suggested), and launchers an allow-list leaves out.

    Args:
        allow: the names ``PYCREW_PLUGINS`` lists (``None``: unset).
        block: the names ``PYCREW_BLOCK_PLUGINS`` lists.
        launchers: the entry-point names of group ``pycrew.launchers``.
        plugins: the entry-point names of group ``pycrew.plugins``.
    """
    known = sorted({*launchers, *plugins})
    out = []
    for var, names in ((ALLOW_ENV, allow or set()), (BLOCK_ENV, block)):
        for name in sorted(names - set(known)):
            close = difflib.get_close_matches(name, known, n=1)
            out.append(f"{var} names {name!r}, {UNKNOWN_PLUGIN}" + (f" (did you mean {close[0]!r}?)" if close else "")
                       + f"; installed: {', '.join(known) or 'none'}")
    hidden = sorted(n for n in launchers if n not in block) if allow is not None else []
    hidden = [n for n in hidden if n not in (allow or set())]
    if hidden:
        out.append(f"{ALLOW_ENV}={os.environ.get(ALLOW_ENV, '')!r} leaves out the installed launcher(s) {', '.join(hidden)}: "
                   f"when set, only the plugins it names are loaded; add them to it, or unset it to load every one")
    return out


def distribution_of(ep: metadata.EntryPoint) -> str:
    """The distribution that declares ``ep``, as ``name version`` (``"an unknown distribution"`` if none)."""
    dist = ep.dist
    return f"{dist.name} {dist.version}" if dist is not None else "an unknown distribution"


def describe_entry_point(ep: metadata.EntryPoint) -> str:
    """``ep`` in words: its line in the distribution's metadata, the distribution and the group."""
    return f'the {ep.group} entry point {ep.name} = "{ep.value}" of distribution {distribution_of(ep)}'


def only_entry_point(name: str, eps: Sequence[metadata.EntryPoint]) -> metadata.EntryPoint:
    """The one entry point declaring launcher ``name``.

    Several entry points naming the same object are one (the same module is imported
    whichever is used).

    Raises:
        PluginError: distributions declare ``name`` with different objects, naming each.
    """
    if len({ep.value for ep in eps}) <= 1:
        return eps[0]
    claims = " and ".join(f'{distribution_of(ep)} ({ep.name} = "{ep.value}")' for ep in eps)
    raise PluginError(
        f"launcher {name!r} is declared in group {LAUNCHER_GROUP!r} by {len(eps)} installed distributions: {claims}; "
        "pycrew does not pick one by sys.path order: pip uninstall all but the one you want"
    )


def name_problem(
    name: str, label: str, entry_point: metadata.EntryPoint | None, owner: str | None, installed: str | None
) -> str | None:
    """Why a plugin may not register launcher ``name``, or ``None`` if it may.

    Args:
        name: the launcher name the plugin registered.
        label: the plugin's name in the registry.
        entry_point: the entry point the plugin was loaded from (``None``: registered in code).
        owner: who else registered ``name`` already, in words (``None``: nobody).
        installed: the permitted entry points of ``pycrew.launchers`` declaring ``name``, in words (``None``: none).
    """
    drop = "; none of its launchers was registered"
    if entry_point is not None:
        where = f"plugin {entry_point.name!r} ({describe_entry_point(entry_point)})"
        skip = f"until it is fixed, uninstall that distribution or set {BLOCK_ENV}={entry_point.name}"
        if entry_point.group != LAUNCHER_GROUP:
            return (
                f"{where} tried to register launcher {name!r}, but a plugin of group {entry_point.group!r} (observers, "
                f"hook wrappers) may register no launcher: declare it in group {LAUNCHER_GROUP!r} as "
                f'{name} = "{entry_point.value}"; {skip}{drop}'
            )
        if name != entry_point.name:
            taken = owner or installed
            return (
                f"{where} tried to register launcher {name!r}, but an entry point of group {LAUNCHER_GROUP!r} may "
                f"register only the launcher of its own name, {entry_point.name!r}; "
                + (f"{name!r} belongs to {taken}" if taken else f"no other plugin owns {name!r}")
                + f". Its pycrew_register_launchers hook must call register({entry_point.name!r}, ...) only "
                f"(a LauncherPlugin: set name = {entry_point.name!r}); {skip}{drop}"
            )
    elif installed is not None and owner is None:
        return (
            f"plugin {label!r} (registered in code) tried to register launcher {name!r}, which belongs to "
            f"{installed}; choose another name, or set {BLOCK_ENV}={name} to use yours instead{drop}"
        )
    if owner is not None:
        return f"launcher name {name!r} is registered twice: by {label!r} and by {owner}; uninstall one of them{drop}"
    return None


def checked_spec(
    spec: LauncherSpec, plugin: object, label: str, distribution: str | None, version: str | None
) -> LauncherSpec:
    """``spec`` as core keeps it (plugin, distribution filled in), after checking it.

    Raises:
        PluginError: bad options class, options shadowing controller options, or unknown capabilities.
    """
    if not isinstance(spec.options_type, type) or not issubclass(spec.options_type, LauncherOptions):
        raise PluginError(
            f"plugin {label!r} registered launcher {spec.name!r} with options_type "
            f"{spec.options_type!r}; it must be a subclass of pycrew.LauncherOptions"
        )
    shadowed = sorted(_controller_option_names() & {f.name for f in dataclasses.fields(spec.options_type)})
    if shadowed:
        raise PluginError(
            f"plugin {label!r} registered launcher {spec.name!r} whose options "
            f"{', '.join(map(repr, shadowed))} are also controller options, so users could "
            "never set them; rename them in the launcher's options class"
        )
    return LauncherSpec(
        name=spec.name,
        options_type=spec.options_type,
        summary=spec.summary,
        remote=spec.remote,
        capabilities=checked_capabilities(label, spec),
        seconds_exit_margin=spec.seconds_exit_margin,
        dial_host=spec.dial_host,
        plugin=plugin,
        distribution=distribution or spec.distribution,
        version=version or spec.version,
    )


def why_no_launcher(loaded: object, name: str, value: str) -> str:
    """What to fix when an entry point registered no launcher of its name."""
    if hasattr(loaded, "pycrew_register_launchers"):
        return f"its pycrew_register_launchers hook must call register({name!r}, ...)"
    holders = [
        attr
        for attr, obj in sorted(vars(loaded).items())
        if not isinstance(obj, type) and hasattr(obj, "pycrew_register_launchers")
    ] if isinstance(loaded, types.ModuleType) else []
    if holders:
        return (
            f"{value} is a module whose hooks are methods of {', '.join(holders)}; point the entry point at "
            f"the object with the module:object form, e.g. {name} = \"{value}:{holders[0]}\""
        )
    return (
        f"{value} has no pycrew_register_launchers hook; the entry point must name the module or object "
        f"(module:object) that implements it, and that hook must call register({name!r}, ...)"
    )


def checked_capabilities(label: str, spec: LauncherSpec) -> frozenset[str]:
    """The launcher's capabilities as a frozenset of known names.

    Raises:
        PluginError: not a collection of names, or names that :data:`LAUNCHER_CAPABILITIES` lacks.
    """
    declared: Any = spec.capabilities
    if isinstance(declared, str):
        raise PluginError(
            f"plugin {label!r} registered launcher {spec.name!r} with capabilities={declared!r}, a string; "
            f"capabilities must be a collection of names, e.g. capabilities={{{declared!r}}}"
        )
    try:
        names = frozenset(declared)
    except TypeError:
        raise PluginError(
            f"plugin {label!r} registered launcher {spec.name!r} with capabilities={declared!r}; "
            "capabilities must be a collection of names of pycrew.LAUNCHER_CAPABILITIES"
        ) from None
    unknown = sorted(map(repr, names - LAUNCHER_CAPABILITIES.keys()))
    if unknown:
        raise PluginError(
            f"plugin {label!r} registered launcher {spec.name!r} with unknown capabilit"
            f"{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}; known capabilities: "
            f"{', '.join(sorted(LAUNCHER_CAPABILITIES))} (pycrew.LAUNCHER_CAPABILITIES says what each promises). "
            "Remove the unknown ones: the conformance suite tests only known capabilities, and a misspelt one "
            "would skip its tests silently"
        )
    return names


def _controller_option_names() -> set[str]:
    from pycrew.controller_options import ControllerOptions  # here: it imports much of pycrew

    return ControllerOptions.keys()


#: Hooks a controller needs of its launcher's plugin (a monitor alone needs none of them).
LAUNCH_HOOKS = ("pycrew_launch_workers", "pycrew_terminate_workers")


def missing_hooks(who: str, spec: LauncherSpec, implemented: set[str], needed: Sequence[str], why: str) -> str | None:
    """What is wrong with a plugin that lacks hooks its launcher needs (``None``: nothing).
    Without the check, a plugin with no launch hook failed each launch with "returned None",
    blaming the platform, and one that declared ``monitor`` without a list hook listed nothing."""
    missing = [hook for hook in needed if hook not in implemented]
    if not missing:
        return None
    return (
        f"{who} of launcher {spec.name!r} implements no {' and no '.join(missing)} hook, which {why}: "
        "implement it with @pycrew.hookimpl (check the name of the function and of each argument against "
        "pycrew.hookspecs), or subclass pycrew.LauncherPlugin"
    )
