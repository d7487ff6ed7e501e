"""Workers lost while they ran tasks: the platform's word on why, before they are terminated.

A worker whose connection is lost without a goodbye (killed, crashed, out of memory) leaves
the dispatcher knowing only that: "connection lost". The platform usually knows more: the
local launcher saw the signal that killed the process and its last output lines,
Kubernetes says ``OOMKilled``, SLURM ``OUT_OF_MEMORY`` or ``NODE_FAIL``. So when a worker
is lost, and its launcher has a monitor (capability ``monitor``), the monitor is asked
(``pycrew_list_workers``, in the pool) what became of it before it is terminated: asked
again for up to :data:`~pycrew.control.launch_watch.SECONDS_SETTLE` until it reports the
worker ended, since a process killed a moment ago may not be reaped yet. What it says (and
the end of the worker's output, read as for a failed launch when the reason does not
quote it) is logged, and quoted in the :class:`~pycrew.TaskCrashError` of a task that lost its last
allowed worker there (the dispatcher holds such a task until then: see
:mod:`pycrew.control.crash_hold`). Workers lost together are asked about in one call;
those lost while a call is in flight wait for the next.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pycrew.control import last_termination
from pycrew.control.launch_reports import describe_worker
from pycrew.control.launch_watch import SECONDS_SETTLE
from pycrew.plugin_api import LauncherInfo, LauncherSpec, WorkerInfo

if TYPE_CHECKING:
    from pycrew.control.dispatcher import Dispatcher
    from pycrew.plugins import PluginRegistry

log = logging.getLogger("pycrew.control.scaler")

#: While a lost worker is not reported ended yet, the monitor is asked again after this long.
SECONDS_ASK_AGAIN = 0.1
#: While a busy worker stays silent (see CrashWatch.silent), the monitor is asked about it this often.
SECONDS_SILENT_ASK = 5.0
#: How a lost worker's explanation starts (it follows the crash's reason in a TaskCrashError).
REPORTS_PREFIX = "the platform reports the worker as "


class CrashWatch:
    """The scaler's handling of workers lost while they ran tasks (mixed into :class:`~pycrew.control.scaler.Scaler`)."""

    spec: LauncherSpec
    info: LauncherInfo
    registry: PluginRegistry
    dispatcher: Dispatcher | None
    handles: dict[str, Any]
    _handles_lock: threading.Lock
    _submit: Callable[..., None]
    terminate_instances: Callable[[Sequence[str], str], None]
    _with_output: Callable[[WorkerInfo], WorkerInfo]  # see LaunchWatch._with_output
    _crashed: dict[str, float]  # instance -> until when to wait for the monitor to report it ended
    _crash_listing: bool  # a monitor call about lost workers is in flight
    _silent: set[str]  # silent workers to ask about (see silent)
    _silent_asked: dict[str, float]  # instance -> when it was last asked about
    _silent_listing: bool  # a monitor call about silent workers is in flight
    slots: list[Any]

    def _init_crash_watch(self) -> None:
        self._crashed = {}
        self._crash_listing = False
        self._silent = set()
        self._silent_asked = {}
        self._silent_listing = False

    def crashed(self, instance: str) -> None:
        """Dispatcher thread: the connection of worker ``instance`` was lost: find out why, then terminate it."""
        if "monitor" not in self.spec.capabilities:  # nobody to ask
            self.terminate_instances([instance], "worker crashed")
            self._explained({instance: ""})
            return
        self._crashed[instance] = time.monotonic() + SECONDS_SETTLE
        self._ask_about_crashed()

    def silent(self, instance: str) -> None:
        """Dispatcher thread: connected worker ``instance`` is silent past its heartbeat timeout
        while its connection still answers, which a task holding the GIL explains, but also a
        process the worker's task forked (a daemon) that keeps its socket open after the worker
        died. The monitor is asked, every :data:`SECONDS_SILENT_ASK` while the silence lasts,
        about every such worker in one listing (one in flight at a time), and a worker the
        platform reports ended is dropped."""
        now = time.monotonic()
        if "monitor" not in self.spec.capabilities or now < self._silent_asked.get(instance, -math.inf) + SECONDS_SILENT_ASK:
            return
        self._silent_asked[instance] = now
        if len(self._silent_asked) > 4 * len(self.slots):  # (those no longer silent: forgotten)
            self._silent_asked = {i: t for i, t in self._silent_asked.items() if now - t < SECONDS_SILENT_ASK}
        self._silent.add(instance)
        self._ask_about_silent()

    def _ask_about_silent(self) -> None:
        if self._silent_listing or not self._silent:
            return
        batch, self._silent = self._silent, set()
        self._silent_listing = True
        try:
            self._submit(self._check_silent, batch, awaited=False)
        except RuntimeError:  # the pool is shut down (terminated)
            self._silent_listing = False

    def _check_silent(self, batch: set[str]) -> None:
        """Pool thread: which of the silent workers ``batch`` the monitor reports ended."""
        ended: dict[str, str] = {}
        try:
            infos = self.registry.call(
                self.spec, "pycrew_list_workers", launcher=self.info, controller_id=self.info.controller_id
            )
            for info in infos or []:
                if isinstance(info, WorkerInfo) and info.ended and info.instance in batch:
                    ended[info.instance] = REPORTS_PREFIX + describe_worker(info)
        except BaseException as exc:  # SystemExit too; the heartbeat rules still apply
            log.debug("launcher %r: asking its monitor about silent workers failed: %s", self.info.name, exc)
        dispatcher = self.dispatcher
        if dispatcher is not None:
            dispatcher.call_soon(lambda: self._silent_checked(ended))

    def _silent_checked(self, ended: dict[str, str]) -> None:
        """Dispatcher thread: drop the silent workers the platform reports ended; ask about the next ones."""
        self._silent_listing = False
        assert self.dispatcher is not None
        for instance, why in ended.items():
            self.dispatcher.drop_instance(instance, f"it went silent, and {why}")
        self._ask_about_silent()

    def _ask_about_crashed(self) -> None:
        """Dispatcher thread: one monitor call about the workers lost so far, unless one is in flight."""
        if self._crash_listing or not self._crashed:
            return
        batch, self._crashed = self._crashed, {}
        self._crash_listing = True
        try:
            self._submit(self._explain_crashed, batch, awaited=False)
        except RuntimeError:  # the pool is shut down (terminated): terminate_all took the handles
            self._crash_listing = False
            self._explained(dict.fromkeys(batch, ""))

    def _explain_crashed(self, batch: dict[str, float]) -> None:
        """Pool thread: what the monitor says of each lost worker (once it reports it ended, or
        its time is up), then terminate them. Only the words go back to the dispatcher thread."""
        said: dict[str, WorkerInfo] = {}
        try:
            while True:
                infos = self.registry.call(
                    self.spec, "pycrew_list_workers", launcher=self.info, controller_id=self.info.controller_id
                )
                for info in infos or []:
                    if isinstance(info, WorkerInfo) and info.ended and info.instance in batch and info.instance not in said:
                        said[info.instance] = info
                now = time.monotonic()
                if all(instance in said or now >= until for instance, until in batch.items()):
                    break
                time.sleep(SECONDS_ASK_AGAIN)
        except BaseException as exc:  # SystemExit too; the explanation is a bonus: the workers are terminated anyway
            log.debug("launcher %r: asking its monitor why workers were lost failed: %s", self.info.name, exc)
        explained = dict.fromkeys(batch, "")
        for instance, info in said.items():
            try:  # (with the end of its output, as for a failed launch, when the platform's reason does not quote it)
                explained[instance] = REPORTS_PREFIX + describe_worker(self._with_output(info))
            except Exception as exc:  # a WorkerInfo of odd field types: the crash goes out unexplained
                log.debug("launcher %r: describing lost worker %s failed: %r", self.info.name, instance, exc)
        with self._handles_lock:
            pairs = [(i, self.handles.pop(i)) for i in batch if i in self.handles]
        if pairs:
            last_termination.terminate_or_keep(self, pairs, "worker crashed")  # type: ignore[arg-type]
        assert self.dispatcher is not None
        self.dispatcher.call_soon(lambda: self._crashes_explained(explained))

    def _crashes_explained(self, explained: dict[str, str]) -> None:
        """Dispatcher thread: the monitor call returned; ask about those lost meanwhile."""
        self._crash_listing = False
        self._explained(explained)
        self._ask_about_crashed()

    def _explained(self, explained: dict[str, str]) -> None:
        """Dispatcher thread: log what the platform said, and let the tasks held for it resolve."""
        assert self.dispatcher is not None
        for instance, why in explained.items():
            if why:
                log.info("worker %s of %r was lost: %s", instance, self.info.controller, why)
            self.dispatcher.crash_explained(instance, why)
