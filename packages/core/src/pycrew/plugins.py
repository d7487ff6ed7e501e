"""The plugin manager: entry-point discovery, launcher lookup by name, hook routing.

Launchers are found through the entry-point group ``pycrew.launchers`` (entry name =
launcher name) and loaded only when asked for by name, so that a slow-to-import cloud SDK
costs nothing until used. Other plugins (observers, hook wrappers) come from the group
``pycrew.plugins`` and are loaded with the manager.

Environment variables, read when the manager is first built:

``PYCREW_PLUGINS``
    Comma-separated allow-list of entry-point names; when set, nothing else is loaded
    from entry points (an empty value loads none).
``PYCREW_BLOCK_PLUGINS``
    Comma-separated entry-point names never to load.

The plugin manager is the one piece of global mutable state in pycrew.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import types
from importlib import metadata
from typing import Any

import pluggy

from pycrew import hookspecs
from pycrew.errors import LauncherNotFoundError, PluginError
from pycrew.hookspecs import RegisterLauncher
from pycrew.launcher_plugin import LauncherPlugin
from pycrew.options import LauncherOptions
from pycrew.plugin_api import LAUNCHER_CAPABILITIES, LauncherSpec

log = logging.getLogger(__name__)

LAUNCHER_GROUP = "pycrew.launchers"
PLUGIN_GROUP = "pycrew.plugins"
ALLOW_ENV = "PYCREW_PLUGINS"
BLOCK_ENV = "PYCREW_BLOCK_PLUGINS"


def _env_names(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {n.strip() for n in raw.split(",") if n.strip()}


class PluginRegistry:
    """pycrew's pluggy manager plus the table of launchers by name."""

    def __init__(self, load_entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self._launchers: dict[str, LauncherSpec] = {}
        self._lock = threading.RLock()
        self._load_entry_points = load_entry_points
        self._allow = _env_names(ALLOW_ENV)
        self._block = _env_names(BLOCK_ENV) or set()
        if load_entry_points:
            for ep in metadata.entry_points(group=PLUGIN_GROUP):
                if self._permitted(ep.name):
                    self._register_entry_point(ep)

    # -- discovery -------------------------------------------------------------------

    def _permitted(self, name: str) -> bool:
        if name in self._block:
            return False
        return self._allow is None or name in self._allow

    def _launcher_entry_points(self) -> dict[str, metadata.EntryPoint]:
        if not self._load_entry_points:
            return {}
        return {ep.name: ep for ep in metadata.entry_points(group=LAUNCHER_GROUP)}

    def _register_entry_point(self, ep: metadata.EntryPoint) -> object:
        try:
            plugin = ep.load()
        except (Exception, SystemExit) as exc:  # a plugin's sys.exit must not end the user's program
            raise PluginError(
                f"plugin {ep.name!r} ({ep.value}) failed to import: {type(exc).__name__}: {exc}; "
                f"reinstall it, or set {BLOCK_ENV}={ep.name} to skip it"
            ) from exc
        dist = ep.dist
        self.register(
            plugin,
            name=ep.name,
            distribution=dist.name if dist else None,
            version=dist.version if dist else None,
        )
        return plugin

    def installed_launchers(self) -> list[str]:
        """Names of every launcher available: registered ones and entry points not yet loaded."""
        with self._lock:
            names = set(self._launchers)
            names.update(n for n in self._launcher_entry_points() if self._permitted(n))
            return sorted(names)

    # -- registration ----------------------------------------------------------------

    def register(
        self,
        plugin: object,
        name: str | None = None,
        distribution: str | None = None,
        version: str | None = None,
    ) -> list[LauncherSpec]:
        """Register a plugin object (module or instance) and the launchers it provides.

        Raises:
            PluginError: a hook implementation does not match its spec (naming plugin and
                hook), a ``pycrew_*`` function matches no hook, a launcher declares a
                capability that is not one of :data:`pycrew.LAUNCHER_CAPABILITIES`, or a
                launcher name clashes.
        """
        label = name or getattr(plugin, "__name__", None) or f"{type(plugin).__name__}-{id(plugin):x}"
        if isinstance(plugin, type) and issubclass(plugin, LauncherPlugin):
            raise PluginError(
                f"plugin {label!r} is the class {plugin.__module__}.{plugin.__qualname__}, not an instance; "
                f"register an instance ({plugin.__qualname__}()), and point an entry point at a module-level "
                f"instance (e.g. \"{plugin.__module__}:plugin\" with plugin = {plugin.__qualname__}())"
            )
        with self._lock:
            try:
                self.pm.register(plugin, name=label)
            except pluggy.PluginValidationError as exc:
                raise PluginError(f"plugin {label!r} has a bad hook implementation: {exc}") from exc
            except ValueError as exc:
                raise PluginError(f"plugin {label!r} could not be registered: {exc}") from exc
            try:
                self.pm.check_pending()
            except pluggy.PluginValidationError as exc:
                self.pm.unregister(plugin)
                raise PluginError(
                    f"plugin {label!r} defines a hook pycrew does not know: {exc}; "
                    f"hooks are: {', '.join(self._hook_names())}"
                ) from exc
            specs: list[LauncherSpec] = []

            def register_launcher(spec_or_name: LauncherSpec | str, options_type: Any = None, **kw: Any) -> None:
                if isinstance(spec_or_name, LauncherSpec):
                    if options_type is not None or kw:
                        raise TypeError(
                            f"register(spec) takes no other arguments, got options_type={options_type!r} and "
                            f"{sorted(kw)}; put them in the LauncherSpec, or call register(name, options_type, ...)"
                        )
                    specs.append(spec_or_name)
                else:
                    specs.append(LauncherSpec(name=spec_or_name, options_type=options_type, **kw))

            register: RegisterLauncher = register_launcher

            caller = self.pm.subset_hook_caller(
                "pycrew_register_launchers",
                remove_plugins=[p for p in self.pm.get_plugins() if p is not plugin],
            )
            try:
                caller(register=register)
            except (Exception, SystemExit) as exc:
                self.pm.unregister(plugin)
                raise PluginError(f"plugin {label!r} failed in pycrew_register_launchers: {type(exc).__name__}: {exc}") from exc
            try:
                done = [self._checked(spec, plugin, label, distribution, version) for spec in specs]
            except PluginError:
                self.pm.unregister(plugin)  # none of its launchers is registered: all or nothing
                raise
            for full in done:
                self._launchers[full.name] = full
            return done

    def _checked(
        self, spec: LauncherSpec, plugin: object, label: str, distribution: str | None, version: str | None
    ) -> LauncherSpec:
        """``spec`` as core keeps it (plugin, distribution filled in), after checking it.

        Raises:
            PluginError: bad options class, options shadowing controller options, unknown
                capabilities, or a name another plugin registered.
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
        capabilities = _checked_capabilities(label, spec)
        if spec.name in self._launchers and self._launchers[spec.name].plugin is not plugin:
            other = self._launchers[spec.name]
            raise PluginError(
                f"launcher name {spec.name!r} is registered twice: by {label!r} and by "
                f"{other.distribution or other.plugin!r}; uninstall one of them"
            )
        return LauncherSpec(
            name=spec.name,
            options_type=spec.options_type,
            summary=spec.summary,
            remote=spec.remote,
            capabilities=capabilities,
            seconds_exit_margin=spec.seconds_exit_margin,
            dial_host=spec.dial_host,
            plugin=plugin,
            distribution=distribution or spec.distribution,
            version=version or spec.version,
        )

    def unregister(self, plugin: object) -> None:
        """Remove a plugin and the launchers it registered."""
        with self._lock:
            for n in [n for n, s in self._launchers.items() if s.plugin is plugin]:
                del self._launchers[n]
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)

    def _hook_names(self) -> list[str]:
        return sorted(n for n in dir(hookspecs) if n.startswith("pycrew_"))

    # -- lookup ----------------------------------------------------------------------

    def launcher(self, name: str) -> LauncherSpec:
        """The launcher registered under ``name``, loading its entry point if needed.

        Raises:
            LauncherNotFoundError: with the installed names and the install hint.
        """
        if not isinstance(name, str) or not name:
            raise LauncherNotFoundError(f"launcher must be a non-empty string, got {name!r}")
        with self._lock:
            if name in self._launchers:
                return self._launchers[name]
            eps = self._launcher_entry_points()
            if name in eps and self._permitted(name):
                loaded = self._register_entry_point(eps[name])
                if name not in self._launchers:
                    raise PluginError(
                        f"the entry point {name!r} ({eps[name].value}) in group {LAUNCHER_GROUP!r} "
                        f"registered no launcher named {name!r}: {_why_no_launcher(loaded, name, eps[name].value)}"
                    )
                return self._launchers[name]
            installed = self.installed_launchers()
            hint = f'pip install "pycrew[{name}]"' if name.isidentifier() else "pip install the plugin"
            blocked = ""
            if name in eps:
                blocked = f" (installed but not loaded: see {ALLOW_ENV}/{BLOCK_ENV})"
            raise LauncherNotFoundError(
                f"no launcher named {name!r}{blocked}; installed: "
                f"{', '.join(installed) or 'none'}. To add it: {hint}"
            )

    def call(self, spec: LauncherSpec, hook: str, **kwargs: Any) -> Any:
        """Call launcher ``hook`` on the plugin that registered ``spec`` only.

        Other launcher plugins are left out; observer plugins, and their hook wrappers,
        are still called.
        """
        others = [s.plugin for s in self._launchers.values() if s.plugin is not spec.plugin]
        caller = self.pm.subset_hook_caller(hook, remove_plugins=others)
        return caller(**kwargs)

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Call an observer hook on every plugin; an observer's exception is logged, not raised."""
        try:
            getattr(self.pm.hook, hook)(**kwargs)
        except BaseException as exc:  # SystemExit too: it would end the dispatcher's thread
            if isinstance(exc, KeyboardInterrupt) and threading.current_thread() is threading.main_thread():
                raise  # Ctrl-C, while an observer ran in the caller's thread
            log.exception("an observer plugin failed in %s", hook)

    def has_observers(self, hook: str) -> bool:
        """Whether any plugin implements ``hook`` (lets core skip building arguments)."""
        return bool(getattr(self.pm.hook, hook).get_hookimpls())


_registry: PluginRegistry | None = None
_registry_lock = threading.Lock()


def get_registry() -> PluginRegistry:
    """The process-wide plugin registry, built on first use."""
    global _registry
    with _registry_lock:
        if _registry is None:
            _registry = PluginRegistry()
        return _registry


def reset_registry() -> None:
    """Forget the registry (tests; after changing ``PYCREW_PLUGINS`` and friends)."""
    global _registry
    with _registry_lock:
        _registry = None


def _why_no_launcher(loaded: object, name: str, value: str) -> str:
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


def _checked_capabilities(label: str, spec: LauncherSpec) -> frozenset[str]:
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


def register(plugin: object, name: str | None = None) -> list[LauncherSpec]:
    """Register a plugin object at run time (e.g. a launcher defined in a script or test)."""
    return get_registry().register(plugin, name=name)


def unregister(plugin: object) -> None:
    """Remove a plugin registered with :func:`register`."""
    get_registry().unregister(plugin)


def installed_launchers() -> list[str]:
    """Names of every launcher that can be chosen."""
    return get_registry().installed_launchers()


def get_launcher(name: str) -> LauncherSpec:
    """The :class:`LauncherSpec` registered under ``name`` (see :meth:`PluginRegistry.launcher`)."""
    return get_registry().launcher(name)
