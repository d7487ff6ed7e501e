"""The pluggy hook specifications of pycrew.

A launcher plugin implements ``pycrew_register_launchers`` and the three launcher hooks
(``pycrew_launch_workers``, ``pycrew_terminate_workers``, ``pycrew_list_workers``; optionally
``pycrew_worker_logs``), either directly or by subclassing :class:`pycrew.LauncherPlugin`,
which implements them all. Core
calls each launcher hook only on the plugin that registered the launcher's name, so a
plugin never has to ask "is this call for me?". Other plugins may implement the observer
hooks (``pycrew_worker_launched``, ``pycrew_worker_terminated``, ``pycrew_task_done``), or
wrap the launcher hooks with ``@hookimpl(wrapper=True)`` to see every launch and
termination (for logging, accounting or metrics).

Every launcher hook runs in the launcher's thread pool, never on the dispatcher's path,
so a slow platform API does not delay tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any, Protocol, overload

import pluggy

from pycrew.options import LauncherOptions
from pycrew.plugin_api import LauncherInfo, LauncherSpec, WorkerCall, WorkerInfo

PROJECT = "pycrew"
hookspec = pluggy.HookspecMarker(PROJECT)


class RegisterLauncher(Protocol):
    """The ``register`` callback that ``pycrew_register_launchers`` receives.

    Call it once per launcher the plugin provides, either with the launcher's name, its
    options class and keyword arguments::

        register("script", ScriptOptions, summary="workers are local processes",
                 capabilities={"monitor", "pid"}, seconds_exit_margin=5.0)

    or with a complete :class:`~pycrew.LauncherSpec`: ``register(spec)``. The keyword
    arguments are the fields of :class:`~pycrew.LauncherSpec`: ``summary`` (one line),
    ``remote`` (workers run on other hosts), ``capabilities`` (names of
    :data:`pycrew.LAUNCHER_CAPABILITIES`), ``seconds_exit_margin``, ``dial_host`` (a
    function of the launcher's options returning the address its workers should dial, or
    ``None`` for core's default; the controller also listens there, and its option
    ``host`` wins), and, for a plugin registered in code, ``distribution`` and ``version``.

    Registration fails with :class:`~pycrew.PluginError` when ``options_type`` is no
    :class:`~pycrew.LauncherOptions` subclass, an option shadows a controller option, a
    capability is unknown, or the name is taken by another plugin.
    """

    @overload
    def __call__(self, spec: LauncherSpec, /) -> None: ...

    @overload
    def __call__(
        self,
        name: str,
        /,
        options_type: type[LauncherOptions],
        *,
        summary: str = "",
        remote: bool = False,
        capabilities: Collection[str] = (),
        seconds_exit_margin: float = 5.0,
        dial_host: Callable[[LauncherOptions], str | None] | None = None,
        distribution: str | None = None,
        version: str | None = None,
    ) -> None: ...


@hookspec
def pycrew_register_launchers(register: RegisterLauncher) -> None:
    """Register the launchers this plugin provides.

    Call ``register(name, options_type, summary="", remote=False, capabilities=(),
    seconds_exit_margin=5.0, dial_host=None)`` once per launcher, or ``register(spec)``
    with a :class:`~pycrew.LauncherSpec` (see :class:`RegisterLauncher`). The name must equal the
    plugin's entry point name in the ``pycrew.launchers`` group. Capabilities must be names
    of :data:`pycrew.LAUNCHER_CAPABILITIES`.

    A plugin built on :class:`pycrew.LauncherPlugin` does not write this hook: the base
    class registers the launcher its class attributes describe.
    """


@hookspec(firstresult=True)
def pycrew_launch_workers(launcher: LauncherInfo, calls: Sequence[WorkerCall]) -> list[Any]:
    """Start one worker per call and return one handle per call, in the same order.

    ``calls`` is a batch: every worker one scaling round needs, so that a platform can
    submit them as one job array or one API request. A handle is any picklable value
    that ``pycrew_terminate_workers`` accepts (a pid, a job id, an array element).

    Raise an exception if the workers could not be started: core counts the batch as
    failed launches and reports the error. Never block on the worker connecting back.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def pycrew_terminate_workers(launcher: LauncherInfo, handles: Sequence[Any]) -> None:
    """Terminate the workers behind ``handles`` (returned earlier by the launch hook).

    Must be idempotent: a worker that is already gone is not an error, and no warning is
    emitted for it. Must reach workers that never connected (queued jobs, pending pods,
    processes stuck before dialing).
    """


@hookspec(firstresult=True)
def pycrew_cancel_launches(launcher: LauncherInfo) -> None:
    """The controller ``launcher.controller_id`` is terminating while launch hook calls for it still run.

    Optional. Make those calls return soon, with the handles of the workers they have
    started so far (core terminates them with the others): a launch that waits on the
    platform after creating its workers (watching them start, say) should stop waiting.
    Without it, core waits for them for up to ``seconds_terminate``, and what a call
    starts after that is terminated only if the process still runs when it returns.
    Called on the terminating thread while those calls run: set what they check, never
    block. :class:`pycrew.LauncherPlugin` implements it: its launch code asks
    :meth:`~pycrew.LauncherPlugin.launches_cancelled`.
    """


@hookspec(firstresult=True)
def pycrew_list_workers(launcher: LauncherInfo, controller_id: str | None) -> list[WorkerInfo]:
    """The monitor: list this platform's pycrew workers.

    With ``controller_id``, only that controller's workers; with ``None``, every pycrew
    worker of this launcher that the platform holds (so orphans of dead controllers can be
    found). Never list anything that is not a pycrew worker.

    List also the workers known to have ended recently (``WorkerInfo.status`` ``done``,
    ``failed`` or ``cancelled``, with ``exit_code`` and the platform's ``reason``) until they
    are terminated: while workers launch, core calls this hook about once a second and fails
    a launch whose worker ended before it connected at once, with that reason.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def pycrew_worker_logs(launcher: LauncherInfo, handle: Any, lines: int | None) -> str | None:
    """Return the output (stdout and stderr) of the worker behind ``handle``: its last ``lines``.

    ``handle`` was returned by the launch hook or listed in :attr:`WorkerInfo.handle`, or
    it is a worker id (a ``str``) that :meth:`pycrew.Monitor.logs` found no listed worker
    for (a job that has left the queue's listing): check a handle's type and shape, and
    raise :class:`~pycrew.LogsUnavailableError` for one that is not this launcher's.
    ``lines`` is how many lines from the end to return (``None``: all the launcher keeps).
    Called by :meth:`pycrew.Controller.logs`, :meth:`pycrew.Monitor.logs` and ``pycrew
    monitor LAUNCHER logs ID``, never on the dispatcher's path.

    Return ``None`` when this launcher cannot give logs at all (core then raises
    :class:`~pycrew.LogsUnavailableError` naming the launcher); raise
    :class:`~pycrew.LogsUnavailableError` yourself, saying why, when it can but has none
    for this worker (expired, never written, started elsewhere). An empty string means
    the worker wrote nothing.
    """


@hookspec
def pycrew_worker_launched(launcher: LauncherInfo, call: WorkerCall, handle: Any) -> None:
    """Observer: a worker was launched (its launch hook returned ``handle``)."""


@hookspec
def pycrew_worker_terminated(launcher: LauncherInfo, handle: Any, reason: str) -> None:
    """Observer: core asked the launcher to terminate a worker, and why."""


@hookspec
def pycrew_task_done(result: Any) -> None:
    """Observer: a task resolved; ``result`` is its :class:`~pycrew.TaskResult`.

    Runs on the dispatcher's thread: keep it fast and never raise.
    """
