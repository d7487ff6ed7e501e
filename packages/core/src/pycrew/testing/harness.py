"""Helpers of the conformance suite: waiting for conditions, calling a plugin's hooks directly.

Public API of pycrew only, and no pytest: these are usable from any test framework.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
import typing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import pycrew
from pycrew.testing import tasks

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    timeout: float,
    message: str | Callable[[], str],
    interval: float = 0.05,
) -> T:
    """Poll ``condition`` until it returns a truthy value, and return that value.

    Args:
        condition: called repeatedly; an exception it raises propagates.
        timeout: seconds before giving up.
        message: the failure message (or a function building it, called at the deadline).
        interval: first pause between polls; it grows to 0.5 s.

    Raises:
        AssertionError: with ``message`` when ``timeout`` passes first.
    """
    deadline = time.monotonic() + timeout
    pause = interval
    while True:
        value = condition()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            text = message() if callable(message) else message
            raise AssertionError(f"{text} (waited {timeout:g} s)")
        time.sleep(min(pause, remaining))
        pause = min(pause * 1.5, 0.5)


def unused_port(host: str) -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host.strip("[]"), 0))
        return int(s.getsockname()[1])


def unreachable_url(controller: pycrew.Controller) -> str:
    """A URL on the controller's host at a port nobody listens on: workers dialing it never connect."""
    scheme = "tls+tcp" if controller.tls.enabled else "tcp"
    host = controller.host
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"{scheme}://{shown}:{unused_port(host)}"


def with_worker_arg(call: pycrew.WorkerCall, flag: str, value: str) -> pycrew.WorkerCall:
    """A copy of ``call`` whose worker argument ``flag`` (e.g. ``--seconds-launch``) is ``value``.

    The option is set in the call's :attr:`~pycrew.WorkerCall.command` and the call follows
    it (:meth:`~pycrew.WorkerCall.with_command`): ``args`` and the fields launchers read
    (``seconds_launch`` for ``--seconds-launch``, ...) change together, also for a stand-in.

    Raises:
        ValueError: ``flag`` is no worker option, or ``value`` is not valid for it.
    """
    options = call.command.args()[2:]  # the worker's options, after "-m pycrew.worker"
    return call.with_command(pycrew.WorkerCommand.parse([*options, flag, value]))


def plugin_hook(spec: pycrew.LauncherSpec, hook: str) -> Callable[..., Any]:
    """The function by which the plugin behind ``spec`` implements ``hook``.

    Raises:
        LookupError: the plugin does not implement the hook.
    """
    plugin = spec.plugin
    for attr in dir(plugin):
        candidate = getattr(plugin, attr, None)
        opts = getattr(candidate, "pycrew_impl", None)
        if callable(candidate) and isinstance(opts, dict) and (opts.get("specname") or attr) == hook:
            return typing.cast(Callable[..., Any], candidate)
    raise LookupError(f"the plugin of launcher {spec.name!r} ({spec.plugin!r}) implements no {hook} hook")


def launch_directly(
    spec: pycrew.LauncherSpec, info: pycrew.LauncherInfo, calls: Sequence[pycrew.WorkerCall]
) -> list[Any]:
    """Call the plugin's own ``pycrew_launch_workers``, bypassing core and other plugins.

    Its result is checked as core checks it (a list or tuple of one handle per call): a
    wrong one fails the test with core's message, after the handles that can be taken from
    it (a mapping's values, not its keys) are terminated, as core does.
    """
    returned = plugin_hook(spec, "pycrew_launch_workers")(launcher=info, calls=list(calls))
    handles, wrong = pycrew.received_handles(spec.name, returned, len(calls))
    if wrong is not None:
        if handles:
            try:
                plugin_hook(spec, "pycrew_terminate_workers")(launcher=info, handles=handles)
            except Exception as exc:  # the failure below is the finding; this one is only noted
                wrong += f" (terminating the {len(handles)} handle(s) taken from it failed too: {exc!r})"
        raise AssertionError(wrong)
    return handles


def terminate_handles(monitor: pycrew.Monitor, handles: Sequence[Any]) -> None:
    """Terminate workers by their launch handles through the launcher's terminate hook."""
    name = monitor.spec.name
    infos = [pycrew.WorkerInfo(id=f"handle-{i}", handle=h, launcher=name) for i, h in enumerate(handles)]
    monitor.terminate(infos)


def listed_instances(monitor: pycrew.Monitor, controller_id: str | None) -> set[str | None]:
    """Instance ids the monitor lists for one controller (or all, for ``None``)."""
    return {w.instance for w in monitor.list(controller_id)}


class LogRecords(logging.Handler):
    """Collects log records of WARNING and above (see :func:`capture_logs`)."""

    def __init__(self, thread: int | None) -> None:
        super().__init__(logging.WARNING)
        self.thread = thread
        self.records: list[logging.LogRecord] = []
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if self.thread is None or record.thread == self.thread:
            with self._lock2:
                self.records.append(record)

    def messages(self, contains: str = "") -> list[str]:
        """Formatted messages, optionally only those containing ``contains``."""
        with self._lock2:
            out = [f"{r.name} {r.levelname}: {r.getMessage()}" for r in self.records]
        return [m for m in out if contains in m]


@contextmanager
def capture_logs(logger: str = "", this_thread_only: bool = False) -> Iterator[LogRecords]:
    """Collect WARNING+ records of ``logger`` (root by default) while the block runs."""
    handler = LogRecords(threading.get_ident() if this_thread_only else None)
    target = logging.getLogger(logger)
    old_level = target.level
    target.addHandler(handler)
    if target.getEffectiveLevel() > logging.WARNING:
        target.setLevel(logging.WARNING)
    try:
        yield handler
    finally:
        target.removeHandler(handler)
        target.setLevel(old_level)


CONNECT_HINT = (
    "Check that pycrew_launch_workers starts the worker command [python, *call.args] (or "
    "call.command_line()) with call.environment() in the worker's environment (the token travels "
    "there, never in argv); that the worker can reach the controller's URL (workers on other "
    "machines: register with remote=True, or pass host=/port= in LauncherConfig.controller_options); "
    "that the launcher's Python has pycrew installed; and that LauncherConfig.seconds_timeout covers "
    "this platform's start-up time."
)


def describe(c: pycrew.Controller) -> str:
    """The controller's state, for failure messages."""
    s = c.summary()
    error = s.launcher.get("last_launch_error") or "none"
    return (
        f"\n--- state of controller {c.name!r} ({c.id}) ---\n{s}\n"
        f"launches {s.launcher.get('launches')}, failed {s.launcher.get('launch_failures')}, "
        f"last launch error: {error}"
    )


def same_host(a: str | None, b: str | None) -> bool:
    """Host names equal up to the domain (``node1`` vs ``node1.cluster.local``)."""
    return bool(a) and bool(b) and str(a).split(".")[0].lower() == str(b).split(".")[0].lower()


def wait_online(c: pycrew.Controller, n: int, timeout: float) -> None:
    """Wait until ``n`` workers of ``c`` are online."""
    wait_until(
        lambda: c.summary().controller.workers_online == n,
        timeout,
        lambda: f"{n} worker(s) did not come online. {CONNECT_HINT}{describe(c)}",
    )


def run_one(c: pycrew.Controller, timeout: float, name: str = "informal") -> pycrew.TaskResult:
    """Push one task that reports where it runs, wait for it, and return its (successful) result."""
    c.push(tasks.report_worker, name=name)
    assert c.wait(timeout=timeout), f"the task did not finish within {timeout:g} s. {CONNECT_HINT}{describe(c)}"
    result = c.pop()
    assert result is not None and result.ok, f"the task failed on the worker: {result}"
    return result


def line_reader(stream: Any) -> Callable[[float], str | None]:
    """``read(timeout)`` returning the next line of ``stream`` or ``None`` (a reader thread feeds a queue)."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for raw in stream:
            lines.put(raw.decode(errors="replace").strip())
        lines.put(None)

    threading.Thread(target=pump, name="pycrew-suite-reader", daemon=True).start()

    def read(timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if line is None or line:
                return line
            if time.monotonic() >= deadline:
                return None

    return read


def launched_handle(c: pycrew.Controller, worker: int, timeout: float) -> Any:
    """The handle the launch hook returned for the worker in slot ``worker`` (1-based).

    Hooks run in the controller's pool, so a fast worker can connect and finish a task before
    its launch hook has returned: wait for the hook, then read the handle.
    """
    slot = c.launcher.slots[worker - 1]
    wait_until(
        lambda: slot.handle_known,
        timeout,
        lambda: f"the launch hook of slot {worker} has not returned {timeout:g} s after its worker ran a task"
        f"{describe(c)}",
    )
    return slot.handle
