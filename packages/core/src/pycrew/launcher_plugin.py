"""A base class for launcher plugins: :class:`LauncherPlugin`.

A plugin author subclasses it, says what the launcher is in class attributes, and writes
three methods that receive the launcher's options already type-checked::

    class ScriptLauncher(pycrew.LauncherPlugin[ScriptOptions, None]):
        name = "script"
        options_type = ScriptOptions
        summary = "workers are local processes"
        capabilities = frozenset({"monitor", "pid", "host"})

        def launch(self, launcher, options, calls): ...
        def terminate(self, launcher, options, handles): ...
        def list_workers(self, launcher, options, controller_id): ...

    plugin = ScriptLauncher()   # entry point: script = "pycrew_script.plugin:plugin"

The base class implements the launcher hooks of :mod:`pycrew.hookspecs` once: it
registers the launcher its attributes describe, checks that ``launcher.options`` is an
instance of ``options_type`` (one way, one clear :class:`~pycrew.OptionsError`), and forwards
each hook to its method. A plugin that talks to a platform through a client object defines
:meth:`LauncherPlugin.create_client` and calls :meth:`LauncherPlugin.client`, which keeps
one client per distinct options value (a small, thread-safe LRU cache).

The hooks themselves stay the contract: a plugin written with bare ``@pycrew.hookimpl``
functions keeps working, and core treats both the same.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Generic, Self, TypeVar

import pluggy

from pycrew.errors import OptionsError, PluginError
from pycrew.hookspecs import PROJECT, RegisterLauncher
from pycrew.options import LauncherOptions
from pycrew.plugin_api import LauncherInfo, WorkerCall, WorkerInfo

log = logging.getLogger(__name__)

_hookimpl = pluggy.HookimplMarker(PROJECT)

OptionsT = TypeVar("OptionsT", bound=LauncherOptions)
ClientT = TypeVar("ClientT")

#: How many clients (distinct options values) a plugin keeps by default.
CLIENTS_MAX = 8
#: How long a controller's cancelled launches are remembered (they end within its seconds_terminate).
SECONDS_CANCELLED_KEPT = 3600.0


def options_key(value: object) -> Hashable:
    """A hashable value equal for equal options, also when fields hold dicts or lists.

    Hashable values are their own key. Dataclasses, mappings, sequences and sets are
    turned into tuples and frozensets of their keys' parts (tagged with their type); any
    other unhashable value is keyed by its type and ``repr``.
    """
    try:
        hash(value)
    except TypeError:
        pass  # unhashable: build a key from its parts below
    else:
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value), tuple((f.name, options_key(getattr(value, f.name))) for f in dataclasses.fields(value)))
    if isinstance(value, Mapping):
        return (Mapping, frozenset((options_key(k), options_key(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return (type(value), tuple(options_key(v) for v in value))
    if isinstance(value, (set, frozenset)):
        return (frozenset, frozenset(options_key(v) for v in value))
    return (type(value), repr(value))


class LauncherPlugin(abc.ABC, Generic[OptionsT, ClientT]):
    """Base class of a launcher plugin: registration, options check, client cache, hook forwarding.

    Subclass it with the launcher's options class and (optionally) its client class as type
    parameters (``LauncherPlugin[MyOptions, MyClient]``; ``None`` as the client type when
    there is none), set the class attributes, implement :meth:`launch`, :meth:`terminate`
    and :meth:`list_workers` (and :meth:`logs` if the platform keeps workers' output),
    and register an instance: through an entry point in the
    ``pycrew.launchers`` group naming the instance (``myname = "pycrew_my.plugin:plugin"``)
    or with :func:`pycrew.register`.

    Only the ``pycrew_*`` methods are hooks; ``launch`` and the other methods are
    not, whatever their names. Do not decorate them with ``@pycrew.hookimpl``.

    Attributes:
        name: the launcher's name (required), equal to its entry point's name.
        options_type: the launcher's options class, a :class:`~pycrew.LauncherOptions`
            subclass (required).
        summary: one line describing the launcher.
        remote: ``True`` if workers run on other hosts.
        capabilities: names of :data:`pycrew.LAUNCHER_CAPABILITIES` the launcher has.
        seconds_exit_margin: how long after its controller dies the platform needs,
            beyond ``seconds_idle``, until every worker is gone.
        clients_max: how many clients (one per distinct options value) :meth:`client`
            keeps; the least recently used one is dropped beyond that.
    """

    name: str
    options_type: type[OptionsT]
    summary: str = ""
    remote: bool = False
    capabilities: frozenset[str] = frozenset()
    seconds_exit_margin: float = 5.0
    clients_max: int = CLIENTS_MAX

    _clients: OrderedDict[Hashable, ClientT]
    _clients_lock: threading.Lock
    _cancelled: dict[str, float]  # controller id -> when its launches were cancelled

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        # The cache lives here, not in __init__, so that a subclass's __init__ need not call super().
        self = super().__new__(cls)
        self._clients = OrderedDict()
        self._clients_lock = threading.Lock()
        self._cancelled = {}
        return self

    # -- what a subclass implements ------------------------------------------------------

    @abc.abstractmethod
    def launch(self, launcher: LauncherInfo, options: OptionsT, calls: Sequence[WorkerCall]) -> list[Any]:
        """Start one worker per call; return one handle per call, in the same order.

        See :func:`pycrew.hookspecs.pycrew_launch_workers`. ``options`` is
        ``launcher.options``, checked to be an ``options_type``.
        """

    @abc.abstractmethod
    def terminate(self, launcher: LauncherInfo, options: OptionsT, handles: Sequence[Any]) -> None:
        """Terminate the workers behind ``handles``; silently nothing for workers already gone.

        See :func:`pycrew.hookspecs.pycrew_terminate_workers`.
        """

    @abc.abstractmethod
    def list_workers(self, launcher: LauncherInfo, options: OptionsT, controller_id: str | None) -> list[WorkerInfo]:
        """The monitor: this platform's pycrew workers (one controller's, or all for ``None``).

        See :func:`pycrew.hookspecs.pycrew_list_workers`.
        """

    def logs(self, launcher: LauncherInfo, options: OptionsT, handle: Any, lines: int | None) -> str | None:
        """The last ``lines`` lines of the worker's output (``None``: all kept); ``None``: no logs here.

        Override it when the platform keeps workers' output. See
        :func:`pycrew.hookspecs.pycrew_worker_logs`. The default returns ``None``: core then
        tells the user this launcher cannot give logs.
        """
        return None

    def launches_cancelled(self, controller_id: str | None) -> bool:
        """Whether the controller ``controller_id`` (a :class:`~pycrew.WorkerCall`'s) is terminating.

        A launch that waits on the platform after creating its workers (watching them
        start) asks this while it waits, and returns the handles it has once it is true:
        core then terminates those with the controller's other workers at once, instead of
        waiting for the launch (see :func:`pycrew.hookspecs.pycrew_cancel_launches`).
        """
        return controller_id is not None and controller_id in self._cancelled

    def cancel_launches(self, launcher: LauncherInfo, options: OptionsT) -> None:
        """Called when the controller terminates while launches for it run, after
        :meth:`launches_cancelled` turned true for it; override to interrupt a platform call
        in flight. The default does nothing more."""

    def create_client(self, options: OptionsT) -> ClientT:
        """Build the platform client for ``options`` (override to use :meth:`client`).

        Called by :meth:`client` at most once per distinct options value while that client
        stays cached, under the cache's lock: keep it cheap (connect on first use, not here).

        Raises:
            PluginError: the subclass calls :meth:`client` but does not override this method.
        """
        raise PluginError(
            f"{type(self).__name__} (launcher {getattr(self, 'name', '?')!r}) calls client() but does not "
            "define create_client(options); override create_client to build its platform client"
        )

    def client_key(self, options: OptionsT) -> Hashable:
        """What tells clients apart: by default the options value (see :func:`options_key`).

        Override to add what else a client depends on, e.g. an environment variable.
        """
        return options_key(options)

    # -- what the base class provides ----------------------------------------------------

    def client(self, options: OptionsT) -> ClientT:
        """The client for ``options``: built by :meth:`create_client` on first use, then reused.

        One client per distinct :meth:`client_key`, shared by every thread; at most
        ``clients_max`` are kept (least recently used dropped).
        """
        key = self.client_key(options)
        with self._clients_lock:
            if key in self._clients:
                self._clients.move_to_end(key)
                return self._clients[key]
            made = self.create_client(options)
            self._clients[key] = made
            while len(self._clients) > max(1, self.clients_max):
                _, dropped = self._clients.popitem(last=False)
                log.debug("launcher %r dropped its least recently used client %r", self.name, dropped)
            return made

    def clear_clients(self) -> None:
        """Forget every cached client (tests; after credentials or configuration changed)."""
        with self._clients_lock:
            self._clients.clear()

    def options_of(self, launcher: LauncherInfo) -> OptionsT:
        """``launcher.options``, checked to be an instance of ``options_type``.

        Raises:
            OptionsError: they are not, naming the launcher, the expected and the actual type.
        """
        options = launcher.options
        if not isinstance(options, self.options_type):
            raise OptionsError(
                f"launcher {launcher.name!r} ({type(self).__name__}) needs options of type "
                f"{self.options_type.__module__}.{self.options_type.__qualname__}, got "
                f"{type(options).__module__}.{type(options).__qualname__}; build the LauncherInfo with the "
                f"launcher's own options class (core does, from the options_type the launcher registered)"
            )
        return options

    # -- the hooks -----------------------------------------------------------------------

    @_hookimpl
    def pycrew_register_launchers(self, register: RegisterLauncher) -> None:
        """Register the launcher described by the class attributes."""
        name = getattr(self, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(
                f"{type(self).__name__} must set the class attribute 'name' to the launcher's name "
                f"(a short lowercase word, equal to its entry point's name), got {name!r}"
            )
        options_type = getattr(self, "options_type", None)
        if not isinstance(options_type, type) or not issubclass(options_type, LauncherOptions):
            raise PluginError(
                f"{type(self).__name__} (launcher {name!r}) must set the class attribute 'options_type' to its "
                f"options class, a subclass of pycrew.LauncherOptions, got {options_type!r}"
            )
        register(
            name,
            options_type,
            summary=self.summary,
            remote=self.remote,
            capabilities=self.capabilities,
            seconds_exit_margin=self.seconds_exit_margin,
            dial_host=self._dial_host,
        )

    def _dial_host(self, options: LauncherOptions) -> str | None:
        return self.dial_host(self.options_of(LauncherInfo(name=self.name, options=options)))

    def dial_host(self, options: OptionsT) -> str | None:
        """The address workers should dial, from the launcher's options; ``None``: core's default.

        Override it when the platform knows better than "a routable address of this machine"
        (a cluster-internal interface, a VPC address); the controller option ``host`` wins.
        """
        return None

    @_hookimpl
    def pycrew_launch_workers(self, launcher: LauncherInfo, calls: Sequence[WorkerCall]) -> list[Any]:
        """Forward to :meth:`launch` with the checked options."""
        return self.launch(launcher, self.options_of(launcher), calls)

    @_hookimpl
    def pycrew_terminate_workers(self, launcher: LauncherInfo, handles: Sequence[Any]) -> None:
        """Forward to :meth:`terminate` with the checked options."""
        self.terminate(launcher, self.options_of(launcher), handles)

    @_hookimpl
    def pycrew_cancel_launches(self, launcher: LauncherInfo) -> None:
        """Mark the controller's launches cancelled (:meth:`launches_cancelled`), then :meth:`cancel_launches`."""
        now = time.monotonic()
        with self._clients_lock:
            for key in [k for k, t in self._cancelled.items() if now - t > SECONDS_CANCELLED_KEPT]:
                del self._cancelled[key]
            if launcher.controller_id is not None:
                self._cancelled[launcher.controller_id] = now
        self.cancel_launches(launcher, self.options_of(launcher))

    @_hookimpl
    def pycrew_list_workers(self, launcher: LauncherInfo, controller_id: str | None) -> list[WorkerInfo]:
        """Forward to :meth:`list_workers` with the checked options."""
        return self.list_workers(launcher, self.options_of(launcher), controller_id)

    @_hookimpl
    def pycrew_worker_logs(self, launcher: LauncherInfo, handle: Any, lines: int | None) -> str | None:
        """Forward to :meth:`logs` with the checked options."""
        return self.logs(launcher, self.options_of(launcher), handle, lines)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} launcher {getattr(self, 'name', '?')!r}>"
