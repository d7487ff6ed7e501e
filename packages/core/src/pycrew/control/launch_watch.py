"""Failed launches: asking the monitor which launching workers ended, and saying why.

While workers are launching, the launcher's monitor (``pycrew_list_workers``) is asked
about once a second (one call in flight at most, backing off while it fails) which of
them have ended. A launching worker that the monitor reports ended (``failed``, ``done``
or ``cancelled``: it could not start, or exited before it connected) is a failed launch at
once, with the platform's reason, exit code and output in the message, instead of after
``seconds_launch``. After ``launch_max`` failed launches in a row on a slot, the
controller's :class:`~pycrew.LaunchError` says what was tried and why it failed, and
fails the tasks waiting for a worker: unless other workers are connected. Then the
platform starts some workers and not others (a quota, a full partition, a node that
cannot run them): the slot is *parked* (tried again every :data:`SECONDS_RETRY_PARKED`,
with a warning) and the tasks run on the workers that did start. When a parked slot's
worker connects, the other parked slots are tried at once. A parked slot that fails
again while no worker is connected raises the error.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pycrew.control import last_termination
from pycrew.control.launch_reports import (
    HOOK_FAILED,
    UNREACHABLE_MARK,
    describe_worker,
    explain_ended,
    launch_error_message,
    same_handle,
    tls_note,
)
from pycrew.control.quoting import said
from pycrew.control.slots import CONNECTED, IDLE, LAUNCHING
from pycrew.errors import LaunchError
from pycrew.monitor import worker_logs
from pycrew.plugin_api import LauncherInfo, LauncherSpec, WorkerCall, WorkerInfo

if TYPE_CHECKING:
    from pycrew.control.dispatcher import Dispatcher
    from pycrew.control.slots import Slot, SlotCensus
    from pycrew.controller_options import ControllerOptions
    from pycrew.plugins import PluginRegistry

log = logging.getLogger("pycrew.control.scaler")

#: While workers are launching, the monitor is asked this often which of them ended.
SECONDS_POLL = 1.0
#: ... and this soon after a batch was launched (a worker that cannot start ends at once).
SECONDS_FIRST_POLL = 0.2
#: Longest wait between monitor calls while they fail (the interval doubles per failure).
SECONDS_POLL_MAX = 30.0
#: A slot whose launch failed is retried after this long, doubled per failure in a row ...
SECONDS_RETRY_FIRST = 0.25
#: ... up to this long.
SECONDS_RETRY_MAX = 10.0
#: A slot that reached ``launch_max`` failures while other workers were connected is
#: tried again after this long (a quota or a partition may free up), not raised.
SECONDS_RETRY_PARKED = 60.0
#: After ``launch_max`` failed launches, the monitor has this long to say why the last one
#: failed; the LaunchError goes out without its reason if it has not answered by then (a
#: hung platform API, or a pool whose threads all wait on one).
SECONDS_EXPLAIN = 10.0
#: A worker whose connection was lost before it was admitted is usually exiting: the monitor
#: is asked again for up to this long until it reports the worker ended (with its exit code
#: and last output), instead of the "running" of a process not reaped yet.
SECONDS_SETTLE = 2.0
#: How many of its last output lines a worker that exited before connecting has quoted.
OUTPUT_LINES = 20


class LaunchWatch:
    """The scaler's handling of failed launches (mixed into :class:`~pycrew.control.scaler.Scaler`)."""

    spec: LauncherSpec
    info: LauncherInfo
    registry: PluginRegistry
    options: ControllerOptions
    url: str
    dispatcher: Dispatcher | None
    slots: list[Slot]
    census: SlotCensus
    by_instance: dict[str, Slot]
    handles: dict[str, Any]
    _handles_lock: threading.Lock
    error: LaunchError | None
    error_pending: bool
    error_due: tuple[float, int, str]
    last_launch_error: str
    _polling: bool
    _poll_due: float
    _poll_soon: bool
    _poll_failures: int
    #: When launches began to fail with transient errors, with no launch through since (None: none failing).
    unreachable_since: float | None = None
    _submit: Callable[..., None]
    terminate_instances: Callable[[Sequence[str], str], None]
    _terminate: Callable[[list[Any], str], bool]
    call: Callable[..., WorkerCall]
    #: The scaler's clock. ``scale(demand, now)`` is given its readings; what happens between
    #: two ``scale`` calls (a launch hook failed, the monitor answered) reads it, so that
    #: backoffs and monitor polls are on the same time line as ``now`` (a test sets its own).
    clock: Callable[[], float] = time.monotonic
    #: Called (dispatcher thread) with the LaunchError just before it is set: the
    #: controller fails the tasks waiting for a worker with it.
    on_error: Callable[[LaunchError], None] | None = None

    # -- the monitor: launching workers that ended -----------------------------------------

    def _poll_monitor(self, now: float) -> None:
        """Dispatcher thread: ask the monitor (in the pool) about launching workers, if due."""
        if self._polling or now < self._poll_due:
            return
        if not any(s.handle_known for s in self.census.launching.values()):
            return
        self._polling = True
        self._poll_due = math.inf  # set again when the call returns
        launching = frozenset(s.instance for s in self.census.launching.values() if s.handle_known and s.instance)
        self._submit(self._list_launching, launching, awaited=False)

    def _list_launching(self, launching: frozenset[str]) -> None:
        """Pool thread: one monitor call; its ended workers go back to the dispatcher thread.

        Everything the plugin returned is read here, where its oddities cannot hurt the
        dispatcher: only ``(instance, handle, reason)`` of ended workers are passed on.
        """
        ended: list[tuple[str, Any, str]] = []
        failed = ""
        try:
            infos = self.registry.call(
                self.spec, "pycrew_list_workers", launcher=self.info, controller_id=self.info.controller_id
            )
            for info in infos or []:
                if isinstance(info, WorkerInfo) and info.ended and isinstance(info.instance, str) and info.instance:
                    # (only launching ones: a monitor lists the workers that ended minutes ago too)
                    told = self._with_output(info) if info.instance in launching else info
                    ended.append((info.instance, info.handle, explain_ended(told)))
        except BaseException as exc:  # SystemExit too; the monitor is a shortcut, seconds_launch bounds every launch
            failed = said(exc)
        assert self.dispatcher is not None
        self.dispatcher.call_soon(lambda: self._launching_listed(ended, failed))

    def _with_output(self, info: WorkerInfo) -> WorkerInfo:
        """Pool thread: ``info`` of a worker that exited before connecting, with the end of its
        output (:meth:`_output_tail`) added to its reason, unless the reason quotes its output
        already or it exited with status 0.

        A batch job's state says only that it failed (``FAILED``, exit code 1), or only that
        it ended (SGE keeps no exit status in its queue); the log says why (a working
        directory missing on the node, an interpreter not found, an import that failed), and
        the LaunchError should quote it.
        """
        if info.exit_code == 0:
            return info
        reason = info.reason.strip()
        tail = self._output_tail(info.handle, reason)
        if not tail:
            return info
        return replace(info, reason=f"{reason}; its output ends with:\n{tail}" if reason else f"its output ends with:\n{tail}")

    def _output_tail(self, handle: Any, reason: str) -> str:
        """Pool thread: the last :data:`OUTPUT_LINES` lines of a worker's output (the launcher's
        ``pycrew_worker_logs``), or ``""``: none to read, or ``reason`` quotes them already."""
        if "\n" in reason:  # a multi-line reason is the worker's output (the local launcher's)
            return ""
        try:
            text = worker_logs(self.registry, self.spec, self.info, handle, OUTPUT_LINES, "a launching worker")
        except BaseException:  # SystemExit too; no logs (none kept, not readable, not started): nothing to add
            return ""
        tail = "\n".join(line.rstrip() for line in text.strip().splitlines()[-OUTPUT_LINES:])
        return "" if not tail or tail.splitlines()[-1].strip() in reason else tail

    def _launching_listed(self, ended: list[tuple[str, Any, str]], failed: str) -> None:
        """Dispatcher thread: fail the launches whose workers ended before connecting."""
        self._polling = False
        if failed:
            self._poll_failures += 1
            delay = min(SECONDS_POLL * 2**self._poll_failures, SECONDS_POLL_MAX)
            level = logging.WARNING if self._poll_failures == 1 else logging.DEBUG
            log.log(level, "launcher %r: listing its workers failed (%s); next try in %g s, failed launches are "
                    "noticed after seconds_launch until it works", self.info.name, failed, delay)
        else:
            self._poll_failures = 0
            delay = SECONDS_FIRST_POLL if self._poll_soon else SECONDS_POLL
        self._poll_soon = False
        now = self.clock()
        self._poll_due = now + delay
        for instance, handle, reason in ended:
            if self.error is not None or self.error_pending:
                return
            slot = self.by_instance.get(instance)
            # A worker that connected meanwhile (or left after running) is not a failed launch;
            # nor is another process started under the same instance id (an impostor).
            if (
                slot is not None
                and slot.instance == instance
                and slot.state == LAUNCHING
                and slot.handle_known
                and same_handle(handle, slot.handle)
            ):
                self._launch_failed(slot, reason, now, explain=False)

    def refused(self, instance: str, reason: str, explain: bool = False) -> None:
        """The dispatcher refused a worker that proved its token, or its initializer failed (dispatcher thread).

        Its reason (it runs another pycrew version, its initializer raised) will not go away
        by waiting: the launch fails at once, as one whose worker ended does, and the worker
        is terminated. ``explain``: the worker was lost, so the monitor is asked what became
        of it (its exit code and last output lines) first.
        """
        slot = self.by_instance.get(instance)
        if slot is not None and slot.instance == instance and slot.state == LAUNCHING:
            self._launch_failed(slot, reason, self.clock(), explain=explain, settle=SECONDS_SETTLE if explain else 0.0)

    def _batch_failed(self, calls: list[WorkerCall], message: str, transient: bool = False) -> None:
        self.last_launch_error = message
        now = self.clock()
        failed = [(c.instance, s) for c in calls if (s := self.by_instance.get(c.instance)) and s.instance == c.instance]
        for instance, slot in failed:
            if slot.state == CONNECTED:  # its worker came before the hook's error: it serves (dropping it crashed its task)
                log.warning("worker %d of %r: the launch hook failed after its worker connected, which is kept: %s",
                            slot.index, self.info.controller, message)
            elif slot.instance == instance:
                self._launch_failed(slot, f"{HOOK_FAILED}{message}", now, terminate=False, transient=transient)
            else:  # ended by the LaunchError the batch's failure before it raised: it failed all the same
                slot.launch_failures += 1

    def _launch_failed(
        self, slot: Slot, reason: str, now: float, terminate: bool = True, explain: bool = True, settle: float = 0.0,
        transient: bool = False,
    ) -> None:
        """Count a failed launch at ``now`` (on :attr:`clock`); on a timeout (``explain``), ask the platform why
        (``settle``: for up to this long, until it reports the worker ended). A ``transient`` failure (the
        platform unreachable) is final only once launches have failed so for ``seconds_unreachable``. The slot
        is retried after a backoff: SECONDS_RETRY_FIRST, doubled per failure in a row, up to SECONDS_RETRY_MAX.
        """
        assert self.dispatcher is not None and slot.instance is not None
        instance = self._end_launch(slot)
        slot.failures += 1
        slot.launch_failures += 1
        slot.retry_after = now + min(SECONDS_RETRY_FIRST * 2 ** (slot.failures - 1), SECONDS_RETRY_MAX)
        final = slot.failures >= self.options.launch_max
        if transient:
            self.unreachable_since = now if self.unreachable_since is None else self.unreachable_since
            down = now - self.unreachable_since
            if final and down < self.options.seconds_unreachable:
                final = False
                reason += (f" (the platform could not be reached, or was unavailable: trying again until it has been so for "
                           f"{self.options.seconds_unreachable:g} s (seconds_unreachable), {down:.0f} s so far)")
            elif final:
                reason += f" {UNREACHABLE_MARK}{down:.0f} s; seconds_unreachable={self.options.seconds_unreachable:g})"
        head = ""  # the warning, logged with the platform's reason once known (see _explain_and_terminate)
        if final and self.census.counts[CONNECTED]:  # parked (see the module docstring)
            final = False
            self._park(slot, reason, now)
        else:
            past = slot.failures > self.options.launch_max  # kept trying: the platform unreachable, or parked
            why = "the platform was unreachable" if transient else "it was parked while other workers served"
            head = (f"worker {slot.index} of {self.info.controller!r}: failed launch {slot.failures} "
                    + (f"(past launch_max={self.options.launch_max}: {why})" if past else f"of {self.options.launch_max}"))
            if not (terminate and explain):
                log.warning("%s: %s", head, reason)
        if terminate and explain:
            # The platform may know why (an image pull error, an unschedulable pod, a held
            # job): its monitor is asked before the worker is terminated and that reason is gone.
            if final:
                self.error_pending = True
                self.error_due = (now + SECONDS_EXPLAIN, slot.index, reason)
            self._submit(self._explain_and_terminate, instance, slot.index, reason, final, settle, head, awaited=False)
            return
        if terminate:  # the reason is known already: clean up what the platform keeps of it
            self.last_launch_error = reason
            self.terminate_instances([instance], "worker ended before it connected")
        if final:
            self._set_error(slot.index, reason)

    def _end_launch(self, slot: Slot) -> str:
        """Free a launching slot: its token revoked, its instance forgotten (no disconnect
        follows a launch that never connected to remove it). Returns that instance."""
        assert self.dispatcher is not None and slot.instance is not None
        instance = slot.instance
        self.dispatcher.revoke(instance)
        if self.by_instance.get(instance) is slot:
            del self.by_instance[instance]
        slot.state = IDLE
        slot.instance = None
        return instance

    def _park(self, slot: Slot, reason: str, now: float) -> None:
        """Try ``slot`` again after SECONDS_RETRY_PARKED, not raise: other workers are connected.
        (Its workers that reached ``seconds_wall`` before a first task count as failed launches:
        ``slot.failures`` does not count them.)"""
        slot.retry_after = now + SECONDS_RETRY_PARKED
        log.warning(
            "worker %d of %r: %d failed launches in a row (launch_max=%d): carrying on with the %d connected "
            "worker(s), and trying this one again every %g s (a LaunchError if it fails while none is "
            "connected); last reason: %s", slot.index, self.info.controller, max(slot.failures, self.options.launch_max),
            self.options.launch_max, self.census.counts[CONNECTED], SECONDS_RETRY_PARKED, reason,
        )

    def unpark(self) -> None:
        """A parked slot's worker connected: the platform has room again, so the other parked
        slots are tried at once instead of at their next minute (dispatcher thread)."""
        for slot in self.slots:
            if slot.state == IDLE and slot.failures >= self.options.launch_max:
                slot.retry_after = 0.0

    def _explain_and_terminate(
        self, instance: str, slot: int, reason: str, final: bool, settle: float = 0.0, head: str = ""
    ) -> None:
        """Pool thread: add the platform's reason to a timed-out launch (and to its warning, ``head``), then terminate it."""
        settled = time.monotonic() + settle
        try:
            while True:
                infos = self.registry.call(
                    self.spec, "pycrew_list_workers", launcher=self.info, controller_id=self.info.controller_id
                )
                found = next((i for i in infos or [] if isinstance(i, WorkerInfo) and i.instance == instance), None)
                if (found is not None and found.ended) or time.monotonic() >= settled:
                    break
                time.sleep(0.1)
            if found is not None:
                reason = f"{reason}; the platform reports the worker as {describe_worker(found)}"
        except BaseException as exc:  # SystemExit too; the explanation is a bonus: never let it block the error
            log.debug("listing workers of %r to explain a failed launch failed: %s", self.info.name, exc)
        if head:
            log.warning("%s: %s", head, reason)
        with self._handles_lock:
            handle = self.handles.get(instance)
        if handle is not None:  # the worker's own words (a controller it cannot reach, an import that hangs)
            tail = self._output_tail(handle, reason)
            if tail:
                reason = f"{reason}; the end of its output is quoted below\n{tail}"
        with self._handles_lock:
            handle = self.handles.pop(instance, None)
        if handle is not None:
            last_termination.terminate_or_keep(self, [(instance, handle)], "launch timed out")  # type: ignore[arg-type]
        assert self.dispatcher is not None
        self.last_launch_error = reason
        if final:  # (a monitor or a termination that hangs: see SECONDS_EXPLAIN)
            self.dispatcher.call_soon(lambda: self._set_error(slot, reason))

    def _explanation_overdue(self) -> None:
        """Dispatcher thread: the monitor did not say within SECONDS_EXPLAIN why the last launch failed."""
        _, slot, reason = self.error_due
        log.warning("launcher %r: its monitor did not answer within %g s; the launch error goes out without "
                    "the platform's reason", self.info.name, SECONDS_EXPLAIN)
        self._set_error(slot, f"{reason} (the launcher's monitor did not say why within {SECONDS_EXPLAIN:g} s)")

    def worker_python(self) -> str | None:
        """The interpreter the launcher runs workers with: its ``python`` option, if it has one."""
        python = getattr(self.info.options, "python", None)
        return python if isinstance(python, str) and python else None

    def _set_error(self, slot: int, reason: str) -> None:
        if self.error is not None:  # the first error stands (an explanation that came back after its deadline)
            return
        if self.census.counts[CONNECTED]:  # a worker connected while the platform was asked why: park instead
            self.error_pending = False
            self._park(self.slots[slot - 1], reason, self.clock())
            return
        example = self.call(worker=slot, instance="<instance>", url=self.url).command_line(self.worker_python())
        failures = self.slots[slot - 1].failures or None  # (past launch_max while the platform was unreachable)
        reason += tls_note(getattr(self.dispatcher, "server", None))
        error = LaunchError(launch_error_message(self.info.name, self.info.controller, self.options, reason, example, self.url, failures))
        if self.on_error is not None:  # the waiting futures fail before any caller can see the error
            try:
                self.on_error(error)
            except Exception:  # the error must still go out
                log.exception("launcher %r: failing the waiting tasks with its LaunchError failed", self.info.name)
        self.error = error
        self.error_pending = False
        self._stop_launches(f"its launch was stopped: launcher {self.info.name!r} raised a LaunchError (worker {slot})")

    def _stop_launches(self, reason: str) -> None:
        """After the LaunchError no more launches are watched and no task goes to a worker: the
        other slots' launches still under way end now (terminated, a handle that comes later
        as it comes: see ``_batch_launched``), so that none stays launching for good, nor
        runs on, nor connects later for nothing."""
        assert self.dispatcher is not None
        stopped = []
        for slot in list(self.census.launching.values()):
            instance = self._end_launch(slot)
            slot.exit_reason = reason
            stopped.append(instance)
            log.info("worker %d of %r: %s", slot.index, self.info.controller, reason)
        if stopped:
            self.terminate_instances(stopped, "the controller stopped launching (LaunchError)")

