"""The options every controller takes, whatever its launcher."""

from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass, field
from typing import Any

from pycrew.errors import OptionsError
from pycrew.options import check_fields, require
from pycrew.tls import TLS
from pycrew.wire.functions import BY_NAME
from pycrew.wire.transport import DEFAULT_TRANSPORT, Transport
from pycrew.worker.command import DEFAULT_SPIN

OWNER = "controller"
#: Most ``workers`` of one controller (20 times the 5,000 the project is tested at).
WORKERS_MAX = 100_000
#: Shortest interval between a worker's CPU and memory samples (``seconds_metrics``): 10 a second.
SECONDS_METRICS_MIN = 0.1


def _check_initargs(initializer: Any, initargs: Any) -> None:
    """Refuse ``initargs`` the initializer cannot be called with, before any worker is launched.

    Without this every worker would fail its initializer in turn, and the controller would
    say so only after ``launch_max`` of them. Callables without a signature Python can read
    (some built-ins) are not checked.
    """
    try:
        signature = inspect.signature(initializer)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*tuple(initargs))
    except TypeError as exc:
        name = getattr(initializer, "__qualname__", None) or repr(initializer)
        raise OptionsError(
            f"controller option initargs={initargs!r} does not fit the initializer {name}{signature}: {exc}; "
            "initargs are its positional arguments, as for ProcessPoolExecutor (each worker calls "
            "initializer(*initargs))"
        ) from None


@dataclass(frozen=True)
class ControllerOptions:
    """Controller-wide options (crew's names; times in seconds, counts ``*_max``).

    Attributes:
        name: the controller's name (default: the launcher's name).
        workers: most workers taking tasks at once (at most 100,000). A worker told to end by its platform
            (SIGTERM) takes none from then on and is replaced at once; it may finish its
            running task beside its replacement.
        workers_at_start: workers launched by ``start()`` before any task is pushed, so
            that the first task finds one ready. ``None`` (the default): 1 for launchers
            whose workers run on this machine (``local``), 0 for remote ones (a queued job
            costs queue time or money before there is work). At most ``workers``. They are
            ordinary workers: with a finite ``seconds_idle`` they exit when left idle.
        host: address workers dial; default 127.0.0.1 for launchers whose workers run on
            this machine, a routable address of this machine for remote launchers.
        port: TCP port to listen on; 0 picks a free one.
        tls: ``"none"``, ``"automatic"``, ``"custom"`` or a :class:`pycrew.TLS`.
        wire: the transport between the dispatcher and its workers: ``"socket"``
            (standard-library TCP/TLS sockets, the default and the fastest) or ``"nng"``
            (NNG through pynng); see :mod:`pycrew.wire.transport`.
        seconds_launch: how long a launch may take, twice over: the launch hook to hand
            back the worker's handle (a scheduler's submit), then the worker to connect from
            then on; past either, the launch counts as a failed launch and is terminated (a
            hook that has not returned is waited on, not called again: one failed launch per
            ``seconds_launch`` until it returns).
        launch_max: failed launches in a row (per slot) before a :class:`LaunchError`, which
            fails the tasks waiting for a worker; while other workers are connected, the
            slot is retried every minute instead (with a warning), and the tasks run on them.
        seconds_unreachable: launches that fail because the platform cannot be reached (a
            launch hook exception whose ``transient`` attribute is true: a scheduler daemon
            restarting, an API server down) are tried again until it has been unreachable
            this long; only then do ``launch_max`` of them raise the LaunchError (``0``: at
            once; ``math.inf``: never).
        seconds_idle: a worker exits after this long without a task.
        seconds_wall: a worker exits after this long alive (after its current task).
        tasks_max: a worker exits after this many tasks (``None``: no limit); one cancelled
            after it was sent to the worker, before it started, counts.
        crashes_max: times a task may lose its worker before it resolves as ``crash``.
        seconds_heartbeat: interval of heartbeats both ways; past 500 beats a second (a
            thousand workers at 2 s) it grows with the number of workers (docs/concepts.md).
        seconds_heartbeat_timeout: a link silent this long is dead (worker side and
            dispatcher side), which catches partitions and frozen machines; it grows with
            the interval, in the same ratio.
        seconds_busy_silence: how long a worker running a task may stay silent while its
            machine still acknowledges the connection before it is dropped (a task that
            holds the GIL in one long call into C code cannot send heartbeats; a suspended
            job neither). ``socket`` wire on Linux, where the kernel tells; elsewhere
            ``seconds_heartbeat_timeout`` applies. ``math.inf``: as long as the machine answers.
        processes: threads that run launches and terminations (so ``push`` never waits).
        prefetch_max: most tasks in flight per worker when tasks are short (a worker is
            also sent only about 20 ms of work by the run times seen so far, and at most
            8 MiB of task payloads beyond its first task).
        bytes_max: largest frame accepted from a connection (limits memory per message).
        seconds_terminate: how long ``terminate`` waits for the launcher's termination.
        seconds_timeout: default per-task time limit (``None``: none); a task running
            longer resolves with status ``timeout``.
        garbage_collection: run ``gc.collect()`` on the worker after every task.
        reset_environment: after every task, undo its changes to ``os.environ``,
            ``sys.path``, the working directory and the umask, put back the standard
            streams it replaced or closed, and the interpreter settings it turned (the
            recursion limit, trace and profile functions, ``gc.disable()``, ...), so they
            cannot leak into the next task.
        initializer: a function each worker calls once, before its first task, with
            ``initargs`` (as ``ProcessPoolExecutor``'s): load a model, open a connection,
            configure logging. Or its name, ``"package.module:function"`` (as in a
            configuration file), which each worker imports. What it sets (globals, environment, interpreter settings) is
            the state every task on that worker starts from. If it raises (or outlives
            ``seconds_initializer``), the worker's launch fails with its traceback, and after
            ``launch_max`` failures in a row a :class:`LaunchError` quotes it.
        initargs: the initializer's positional arguments.
        seconds_initializer: how long the initializer may run in a worker (``None``: no
            limit); a worker past it is interrupted, its launch failed.
        backup: a controller that takes over tasks that crashed ``crashes_max`` times here.
        seconds_metrics: workers sample their CPU and memory this often (``None``: off), at
            least 0.1 s apart; see :mod:`pycrew.metrics`.
        metrics_dir: where workers write their samples (on the worker's machine); default:
            the worker's log.
        dashboard: serve a live web page and Prometheus ``/metrics`` from this process:
            ``True`` on a free port, a port number (1-65535) on that port, ``False`` off.
            ``Controller.dashboard_link`` gives its address; see :mod:`pycrew.dashboard`.
        dashboard_host: the address the dashboard listens on; on anything but a loopback
            address it requires the token that ``dashboard_link`` carries.
        seconds_spin: a worker that ran out of tasks polls for the next one this long
            before it sleeps (socket wire). A sleeping process takes tens of microseconds
            to wake (more in a virtual machine), which a caller waiting on each result pays
            every round trip; polling costs up to this much CPU each time a worker runs
            dry. ``0``: never poll.
    """

    name: str | None = None
    workers: int = 1
    workers_at_start: int | None = None
    host: str | None = None
    port: int = 0
    tls: Any = field(default="none")
    wire: Transport = DEFAULT_TRANSPORT
    seconds_launch: float = 30.0
    launch_max: int = 5
    seconds_unreachable: float = 300.0
    seconds_idle: float = math.inf
    seconds_wall: float = math.inf
    tasks_max: int | None = None
    crashes_max: int = 5
    seconds_heartbeat: float = 2.0
    seconds_heartbeat_timeout: float = 20.0
    seconds_busy_silence: float = 600.0
    processes: int = 4
    prefetch_max: int = 4096
    bytes_max: int = 256 * 1024 * 1024
    seconds_terminate: float = 30.0
    seconds_timeout: float | None = None
    garbage_collection: bool = False
    reset_environment: bool = True
    initializer: Any = None
    initargs: tuple[Any, ...] = ()
    seconds_initializer: float | None = None
    backup: Any = None
    seconds_metrics: float | None = None
    metrics_dir: str | None = None
    dashboard: bool | int = False
    dashboard_host: str = "127.0.0.1"
    seconds_spin: float = DEFAULT_SPIN

    def __post_init__(self) -> None:
        check_fields(self, OWNER)
        object.__setattr__(self, "tls", TLS.coerce(self.tls))
        require(self.name is None or bool(self.name.strip()), OWNER, "name", self.name, "be a non-empty string")
        require(self.name != "--", OWNER, "name", self.name, "not be '--' (the workers' command line would read it as the end of its options)")
        require(self.workers >= 1, OWNER, "workers", self.workers, "be >= 1")
        require(
            self.workers <= WORKERS_MAX, OWNER, "workers", self.workers,
            f"be at most {WORKERS_MAX:,} (a controller sets up every worker's slot when it is built: a million "
            f"takes about 400 MiB and seconds before any launch); for more workers, split the tasks over several "
            f"controllers (pycrew.ControllerGroup)",
        )
        require(
            self.workers_at_start is None or 0 <= self.workers_at_start <= self.workers, OWNER, "workers_at_start",
            self.workers_at_start, f"be None or between 0 and workers={self.workers}",
        )
        require(0 <= self.port <= 65535, OWNER, "port", self.port, "be between 0 and 65535")
        for key in ("seconds_launch", "seconds_heartbeat", "seconds_terminate"):  # deadlines: never "no limit"
            value = getattr(self, key)
            require(0 < value < math.inf, OWNER, key, value, "be a finite number of seconds > 0 (for a very long one, say so: 86400 is a day)")
        value = self.seconds_unreachable
        require(value >= 0 and not math.isnan(value), OWNER, "seconds_unreachable", value, "be >= 0 (math.inf: keep trying)")
        value = self.seconds_heartbeat_timeout
        require(value > 0 and not math.isnan(value), OWNER, "seconds_heartbeat_timeout", value, "be > 0 (math.inf: never)")
        for key in ("seconds_idle", "seconds_wall", "seconds_busy_silence"):
            value = getattr(self, key)
            require(value > 0 and not math.isnan(value), OWNER, key, value, "be > 0 (no limit: math.inf in Python, inf in a pycrew.toml file)")
        require(
            self.seconds_timeout is None or (self.seconds_timeout > 0 and not math.isnan(self.seconds_timeout)),
            OWNER,
            "seconds_timeout",
            self.seconds_timeout,
            "be > 0 or None",
        )
        require(
            self.initializer is None or callable(self.initializer)
            or (isinstance(self.initializer, str) and BY_NAME.fullmatch(self.initializer) is not None),
            OWNER, "initializer", self.initializer,
            "be a function each worker calls before its first task, its name as 'package.module:function' "
            "(imported by the workers), or None",
        )
        require(
            self.initializer is not None or not self.initargs, OWNER, "initargs", self.initargs,
            "be empty without an initializer (set initializer= to the function to call with them)",
        )
        if callable(self.initializer):
            _check_initargs(self.initializer, self.initargs)
        require(
            self.seconds_initializer is None or (self.seconds_initializer > 0 and not math.isnan(self.seconds_initializer)),
            OWNER, "seconds_initializer", self.seconds_initializer, "be > 0 or None",
        )
        require(
            type(self.backup).__name__ != "SequentialController", OWNER, "backup", self.backup,
            "be a controller with workers: the sequential controller runs tasks in this process, where a task "
            "that crashed its workers would end the program",
        )
        require(
            self.backup is None or (hasattr(self.backup, "submit_task") and hasattr(self.backup, "name")),
            OWNER,
            "backup",
            self.backup,
            "be another pycrew controller or None",
        )
        require(
            self.seconds_metrics is None or self.seconds_metrics >= SECONDS_METRICS_MIN,
            OWNER,
            "seconds_metrics",
            self.seconds_metrics,
            f"be >= {SECONDS_METRICS_MIN:g} (seconds between a worker's samples: each costs CPU time and a line of "
            "output, and shorter intervals make the worker busy sampling) or None (off)",
        )
        require(
            isinstance(self.dashboard, bool) or 1 <= self.dashboard <= 65535,
            OWNER,
            "dashboard",
            self.dashboard,
            "be True (a free port), False (off) or a port number between 1 and 65535",
        )
        require(
            bool(self.dashboard_host.strip()),
            OWNER,
            "dashboard_host",
            self.dashboard_host,
            "be an address to listen on, such as '127.0.0.1' (this machine only) or '0.0.0.0' (every interface)",
        )
        require(self.launch_max >= 1, OWNER, "launch_max", self.launch_max, "be >= 1")
        require(self.crashes_max >= 1, OWNER, "crashes_max", self.crashes_max, "be >= 1")
        require(self.tasks_max is None or self.tasks_max >= 1, OWNER, "tasks_max", self.tasks_max, "be >= 1 or None")
        require(self.processes >= 1, OWNER, "processes", self.processes, "be >= 1")
        require(self.prefetch_max >= 1, OWNER, "prefetch_max", self.prefetch_max, "be >= 1")
        require(0 <= self.seconds_spin <= 1, OWNER, "seconds_spin", self.seconds_spin, "be from 0 to 1 (seconds; 0: never poll)")
        require(self.bytes_max >= 65536, OWNER, "bytes_max", self.bytes_max, "be >= 65536")
        require(
            self.seconds_heartbeat_timeout > self.seconds_heartbeat,
            OWNER,
            "seconds_heartbeat_timeout",
            self.seconds_heartbeat_timeout,
            f"be greater than seconds_heartbeat ({self.seconds_heartbeat})",
        )

    @classmethod
    def keys(cls) -> set[str]:
        """Names of the controller options."""
        return {f.name for f in dataclasses.fields(cls)}


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split keyword options into (controller options, launcher options)."""
    keys = ControllerOptions.keys()
    own = {k: v for k, v in options.items() if k in keys}
    rest = {k: v for k, v in options.items() if k not in keys}
    return own, rest


def build_controller_options(options: dict[str, Any]) -> ControllerOptions:
    """Build :class:`ControllerOptions`, turning ``TypeError`` into :class:`OptionsError`."""
    try:
        return ControllerOptions(**options)
    except TypeError as exc:
        raise OptionsError(f"bad controller options: {exc}") from exc
