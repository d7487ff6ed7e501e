"""Terminating workers: :class:`Termination` stops tasks when Cloud Run can only cancel whole executions.

Cloud Run cancels whole executions, never one task. So the controller's terminating some
workers of a multi-task execution (with the handles its launches returned) is remembered
(per execution, in this process); the execution is cancelled as soon as every task still
running is one pycrew asked to stop. Until then those workers stop on their own: a worker
whose launch timed out has had its token revoked and exits after ``seconds_launch``; one
that left (idle, wall time, task count) has already exited, which ends its task. A monitor's
request (handles from its listing) is granted at once or refused, never deferred: see
:mod:`pycrew_cloudrun.stopping`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from google.api_core import exceptions as gexc

from pycrew import PycrewError
from pycrew_cloudrun import stopping
from pycrew_cloudrun.engine_base import EngineBase
from pycrew_cloudrun.records import CloudRunHandle, execution_tag, task_state
from pycrew_cloudrun.retry import CloudRunError, call_api
from pycrew_cloudrun.stopping import NotTerminatedError

log = logging.getLogger(__name__)


class Termination(EngineBase):
    """The terminate part of :class:`~pycrew_cloudrun.cloudrun.CloudRunJobs`: :meth:`terminate`."""

    def terminate(self, handles: Sequence[Any]) -> None:
        """Stop the workers behind ``handles``; gone ones are fine (see the module docstring).

        The controller's own handles (from :meth:`launch`) of a task whose execution has
        other live tasks are remembered, and the execution is cancelled once all its live
        tasks were asked to stop. A monitor's handles (from :meth:`workers`) are terminated
        at once by cancelling their execution when every other live task of it is an orphan
        or asked to stop too; otherwise nothing of that execution is cancelled, and
        :class:`~pycrew_cloudrun.stopping.NotTerminatedError` says so.

        Raises:
            ValueError: a handle is not a :class:`CloudRunHandle`.
            NotTerminatedError: some of a monitor's tasks could not be terminated alone (the
                other executions were still handled; the message says which were not).
            CloudRunError: a request failed (the others were still tried).
        """
        bad = [h for h in handles if not isinstance(h, CloudRunHandle)]
        if bad:
            raise ValueError(f"cloudrun handles must be CloudRunHandle objects (from the launch hook or the monitor), got {bad!r}")
        groups: dict[str, tuple[int, set[int], bool]] = {}
        for h in handles:
            count, indexes, listed = groups.get(h.execution, (h.task_count, set(), False))
            groups[h.execution] = (count, indexes | {h.index}, listed or h.listed)
        errors: list[CloudRunError] = []
        try:
            for execution, (count, indexes, listed) in groups.items():
                try:
                    self._terminate_tasks(execution, count, indexes, listed)
                except CloudRunError as exc:
                    errors.append(exc)
        finally:
            self.forget_listing()
        if errors:
            message = "; ".join(str(e) for e in errors)
            refused = [e for e in errors if isinstance(e, NotTerminatedError)]
            if len(refused) == len(errors):
                done = len(groups) - len(refused)
                tail = f" (the tasks of the other {done} execution(s) asked were terminated)" if done else ""
                raise NotTerminatedError(message + tail, [t for e in refused for t in e.tasks])
            raise CloudRunError(message, transient=all(e.transient for e in errors))  # (core logs it so)

    def _terminate_tasks(self, execution: str, count: int, indexes: set[int], listed: bool) -> None:
        """Stop tasks ``indexes`` of ``execution``; ``listed``: a monitor asks (see :meth:`terminate`)."""
        if self._stop_deleted(execution, indexes):
            return
        with self._lock:
            before = set(self._requested.get(execution, ()))
            wanted = before | indexes
            self._requested[execution] = set(wanted)
        if wanted >= set(range(count)):
            self._cancel(execution)
            return
        try:
            tasks = self._list_tasks(execution)
        except gexc.NotFound:
            self._forget(execution)
            return
        live = {t.index: t for t in tasks if task_state(t) in ("PENDING", "RUNNING")}
        if not live:
            self._forget(execution)
        elif set(live) <= wanted:
            self._cancel(execution)
        elif not set(live) & wanted:
            pass  # the tasks asked to stop have ended already
        elif not listed:
            log.info(
                "cloudrun: %s: Cloud Run cancels whole executions and %d other task(s) of it still run, so it is not "
                "cancelled now; the %d worker(s) asked to stop exit by themselves (idle, seconds_launch, wall time) "
                "and the execution is cancelled once all its running tasks were asked to stop",
                execution, len(set(live) - wanted), len(set(live) & wanted),
            )
        else:
            self._stop_for_monitor(execution, live, wanted, indexes, indexes - before)

    def _stop_for_monitor(
        self, execution: str, live: Mapping[int, Any], wanted: set[int], requested: set[int], new: set[int]
    ) -> None:
        """A monitor asked to stop tasks ``requested`` of ``execution`` (``wanted``: with those asked
        before), not all its ``live`` ones: cancel it if the others are orphans, else raise and forget
        the ``new`` requests (refused, not deferred).

        Raises:
            NotTerminatedError: the others belong to a controller that has not ended.
        """
        try:
            orphaned = execution in stopping.orphaned_executions(self.launcher_name, self.options)
            why = "which has not ended as far as this machine's controller records tell (it runs, or it ran elsewhere)"
        except PycrewError as exc:  # cannot tell: do not cancel what may be another controller's work
            orphaned = False
            why = f"and whether that controller has ended could not be told ({exc})"
        if orphaned:
            log.info("cloudrun: cancelling %s: its controller has ended, so its other live task(s) are orphans", execution)
            self._cancel(execution)
            return
        with self._lock:
            if execution in self._requested:
                self._requested[execution] -= new
        controller = "unknown (the execution could not be read)"
        try:
            found = execution_tag(call_api(
                f"get execution {execution}",
                lambda: self.clients.executions.get_execution(name=execution, retry=None, timeout=self._timeout()),
                self.policy, permission="run.executions.get",
            ))
            if found is not None:
                controller = f"{found.controller!r} (id {found.controller_id})"
        except CloudRunError as exc:  # only the message's detail is missing
            log.debug("cloudrun: could not read %s for its controller: %s", execution, exc)
        asked = [live[i].name for i in sorted(live) if i in requested]
        others = [live[i].name for i in sorted(live) if i not in wanted]
        raise NotTerminatedError(
            stopping.not_terminated_message(self.launcher_name, execution, asked, others, controller, why), asked
        )
