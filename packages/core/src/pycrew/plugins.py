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

Who may register which launcher name is :mod:`pycrew.plugin_checks`' rule: an entry point
of ``pycrew.launchers`` registers exactly the launcher it names, so that no plugin can take
over another's name, whatever the order they are loaded in; a plugin that breaks a rule
has none of its launchers registered.

The plugin manager is the one piece of global mutable state in pycrew.
"""

from __future__ import annotations

import logging
import os
import threading
from importlib import metadata
from typing import Any

import pluggy

from pycrew import hookspecs
from pycrew.errors import LauncherNotFoundError, PluginError
from pycrew.fork_safety import free_after_fork
from pycrew.hookspecs import RegisterLauncher
from pycrew.launcher_plugin import LauncherPlugin
from pycrew.plugin_api import LauncherSpec
from pycrew.plugin_checks import (
    ALLOW_ENV,
    BLOCK_ENV,
    LAUNCH_HOOKS,
    LAUNCHER_GROUP,
    PLUGIN_GROUP,
    UNKNOWN_PLUGIN,
    checked_spec,
    describe_entry_point,
    filter_problems,
    missing_hooks,
    name_problem,
    only_entry_point,
    why_no_launcher,
)

log = logging.getLogger(__name__)



#: pycrew's extras that are no launcher.
_NOT_LAUNCHERS = frozenset({"all", "joblib", "plot"})


def install_hint(name: str) -> str:
    """How to install launcher ``name``: pycrew's extra when there is one by that name, else its plugin's package."""
    try:
        extras = set(metadata.metadata("pycrew").get_all("Provides-Extra") or ()) - _NOT_LAUNCHERS
    except metadata.PackageNotFoundError:
        extras = set()
    if name in extras:
        return f'pip install "pycrew[{name}]"'
    return (f"pip install the package of the plugin that provides it (pycrew's own launchers: "
            f'pip install "pycrew[NAME]" for NAME in {", ".join(sorted(extras)) or "none"})')


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
        self.broken: list[str] = []  # observer plugins that failed to load, and why
        if load_entry_points:
            for ep in metadata.entry_points(group=PLUGIN_GROUP):
                if self._permitted(ep.name):
                    try:
                        self._register_entry_point(ep)
                    except PluginError as exc:  # one broken observer stopped every launcher and `pycrew launchers`
                        self.broken.append(str(exc))
                        log.error("%s; pycrew goes on without it", exc)

    # -- discovery -------------------------------------------------------------------

    def _permitted(self, name: str) -> bool:
        if name in self._block:
            return False
        return self._allow is None or name in self._allow

    def launcher_entry_points(self) -> dict[str, list[metadata.EntryPoint]]:
        """The entry points of ``pycrew.launchers`` by name (several if distributions clash)."""
        found: dict[str, list[metadata.EntryPoint]] = {}
        if self._load_entry_points:
            for ep in metadata.entry_points(group=LAUNCHER_GROUP):
                found.setdefault(ep.name, []).append(ep)
        return found

    def _register_entry_point(self, ep: metadata.EntryPoint) -> object:
        try:
            plugin = ep.load()
        except (Exception, SystemExit) as exc:  # a plugin's sys.exit must not end the user's program
            raise PluginError(
                f"plugin {ep.name!r} ({describe_entry_point(ep)}) failed to import: {type(exc).__name__}: {exc}; "
                f"reinstall it, or set {BLOCK_ENV}={ep.name} to skip it"
            ) from exc
        dist = ep.dist
        self._add(plugin, ep.name, dist.name if dist else None, dist.version if dist else None, ep)
        return plugin

    def installed_launchers(self) -> list[str]:
        """Names of every launcher available: registered ones and entry points not yet loaded."""
        with self._lock:
            names = set(self._launchers)
            names.update(n for n in self.launcher_entry_points() if self._permitted(n))
            return sorted(names)

    def filter_problems(self) -> list[str]:
        """What ``PYCREW_PLUGINS``/``PYCREW_BLOCK_PLUGINS`` do that may be a mistake: unknown names, launchers
        left out (see :func:`pycrew.plugin_checks.filter_problems`); empty when neither is set."""
        if not self._load_entry_points or (self._allow is None and not self._block):
            return []
        others = {ep.name for ep in metadata.entry_points(group=PLUGIN_GROUP)}
        return filter_problems(self._allow, self._block, self.launcher_entry_points(), others)

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
                launcher name clashes: another plugin registered it, or an installed entry point
                declares it (see :mod:`pycrew.plugin_checks`). Then none of its launchers is registered.
        """
        label = name or getattr(plugin, "__name__", None) or f"{type(plugin).__name__}-{id(plugin):x}"
        return self._add(plugin, label, distribution, version, None)

    def _add(
        self,
        plugin: object,
        label: str,
        distribution: str | None,
        version: str | None,
        entry_point: metadata.EntryPoint | None,
    ) -> list[LauncherSpec]:
        """:meth:`register`, for a plugin loaded from ``entry_point`` (``None``: registered in code)."""
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
                done = self._checked(specs, plugin, label, distribution, version, entry_point)
            except PluginError:
                self.pm.unregister(plugin)  # none of its launchers is registered: all or nothing
                raise
            for full in done:
                self._launchers[full.name] = full
            return done

    def _checked(
        self,
        specs: list[LauncherSpec],
        plugin: object,
        label: str,
        distribution: str | None,
        version: str | None,
        entry_point: metadata.EntryPoint | None,
    ) -> list[LauncherSpec]:
        """The launchers a plugin registered, as core keeps them, after checking every one.

        Raises:
            PluginError: see :meth:`register`; also an entry point of ``pycrew.launchers``
                that registered no launcher of its name, or another name (see
                :func:`pycrew.plugin_checks.name_problem`).
        """
        eps = self.launcher_entry_points() if specs else {}
        for spec in specs:
            installed = [describe_entry_point(ep) for ep in eps.get(spec.name, []) if self._permitted(ep.name)]
            problem = name_problem(
                spec.name, label, entry_point, self._owner(spec.name, plugin), " and ".join(installed) or None
            )
            if problem is not None:
                raise PluginError(problem)
        if entry_point is not None and entry_point.group == LAUNCHER_GROUP and not specs:
            raise PluginError(
                f"the entry point {entry_point.name!r} ({entry_point.value}) in group {LAUNCHER_GROUP!r} registered "
                f"no launcher named {entry_point.name!r}: {why_no_launcher(plugin, entry_point.name, entry_point.value)}"
            )
        checked = [checked_spec(spec, plugin, label, distribution, version) for spec in specs]
        implemented = {caller.name for caller in self.pm.get_hookcallers(plugin) or []}
        for spec in checked:
            needed = ["pycrew_list_workers"] if "monitor" in spec.capabilities else []
            if (problem := missing_hooks(f"plugin {label!r}", spec, implemented, needed, "its 'monitor' capability promises")):
                raise PluginError(problem)
        return checked

    def launchable(self, name: str) -> LauncherSpec:
        """:meth:`launcher`, for a controller: its plugin must implement the launch and
        terminate hooks (a monitor needs neither).

        Raises:
            PluginError: naming the hook missing.
        """
        spec = self.launcher(name)
        implemented = {caller.name for caller in self.pm.get_hookcallers(spec.plugin) or []}
        problem = missing_hooks(self.provider(spec), spec, implemented, LAUNCH_HOOKS, "a controller needs to launch workers")
        if problem is not None:
            raise PluginError(problem)
        return spec

    def _owner(self, name: str, plugin: object) -> str | None:
        """Which other plugin registered launcher ``name``, in words (``None``: none)."""
        other = self._launchers.get(name)
        return None if other is None or other.plugin is plugin else self.provider(other)

    def provider(self, spec: LauncherSpec) -> str:
        """Which plugin serves ``spec``, in words for an error message: its name and distribution."""
        of = f" of distribution {spec.distribution} {spec.version or ''}".rstrip() if spec.distribution else ""
        return f"plugin {self.pm.get_name(spec.plugin) or spec.plugin!r}{of}"

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
            PluginError: its entry point failed to load or broke the naming rule, or two
                distributions declare it (naming both).
        """
        if not isinstance(name, str) or not name:
            raise LauncherNotFoundError(f"launcher must be a non-empty string, got {name!r}")
        with self._lock:
            if name in self._launchers:
                return self._launchers[name]
            eps = self.launcher_entry_points()
            if name in eps and self._permitted(name):
                self._register_entry_point(only_entry_point(name, eps[name]))
                return self._launchers[name]  # there: _checked made sure the entry point registered it
            installed = self.installed_launchers()
            hint = f"To add it: {install_hint(name)}"
            blocked = ""
            if name in eps:
                blocked = f" (installed but not loaded: see {ALLOW_ENV}/{BLOCK_ENV})"
                hint = f"To load it: take it out of {BLOCK_ENV}, or add it to {ALLOW_ENV} when that is set"
                hint += "".join(f"; {problem}" for problem in self.filter_problems() if UNKNOWN_PLUGIN in problem)
            raise LauncherNotFoundError(
                f"no launcher named {name!r}{blocked}; installed: {', '.join(installed) or 'none'}. {hint}"
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
free_after_fork(_registry_lock)  # (a thread may hold it at a fork)


def get_registry() -> PluginRegistry:
    """The process-wide plugin registry, built on first use (a name ``PYCREW_PLUGINS`` or
    ``PYCREW_BLOCK_PLUGINS`` gives that no installed plugin has is logged then: a typo would
    otherwise block, or load, nothing without a word)."""
    global _registry
    with _registry_lock:
        if _registry is None:
            _registry = PluginRegistry()
            for problem in _registry.filter_problems():
                if UNKNOWN_PLUGIN in problem:
                    log.warning("%s", problem)
        return _registry


def reset_registry() -> None:
    """Forget the registry (tests; after changing ``PYCREW_PLUGINS`` and friends)."""
    global _registry
    with _registry_lock:
        _registry = None


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
