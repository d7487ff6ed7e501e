"""The monitor's listing: :class:`MonitorListing` lists pycrew's executions and workers (tasks).

The monitor lists live tasks (pending, running) of every pycrew execution, and the ended
tasks (failed, succeeded, cancelled) of executions this process launched, until it cancels
them or for :data:`SECONDS_ENDED_KEEP` after they completed: with the task's ``Completed``
condition message and ``last_attempt_result`` (status message, exit code), so that core
fails a launch whose task could not start (a missing image, a missing interpreter) at once.
The tasks of such an execution that was deleted from outside pycrew before it ended are
listed as ``cancelled`` (state ``DELETED``), once a read confirms it gone: see
:mod:`pycrew_cloudrun.vanished`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from google.api_core import exceptions as gexc

from pycrew import WorkerInfo
from pycrew_cloudrun import tag
from pycrew_cloudrun.engine_base import EngineBase
from pycrew_cloudrun.records import (
    CloudRunHandle,
    ExecutionInfo,
    completed_condition,
    execution_done,
    execution_info,
    execution_tag,
    task_state,
    timestamp,
)
from pycrew_cloudrun.retry import CloudRunError, call_api
from pycrew_cloudrun.vanished import LaunchedExecution

log = logging.getLogger(__name__)

#: Ended tasks of executions this process launched are listed this long after the execution completed.
SECONDS_ENDED_KEEP = 120.0
_STATUS = {"PENDING": "pending", "RUNNING": "running", "SUCCEEDED": "done", "FAILED": "failed", "CANCELLED": "cancelled"}


class MonitorListing(EngineBase):
    """The monitor part of :class:`~pycrew_cloudrun.cloudrun.CloudRunJobs`: :meth:`executions`, :meth:`workers`."""

    def _list_executions(self) -> list[Any]:
        """Every execution of every job in the region (``jobs/-``), newest first."""
        parent = f"{self.parent}/jobs/-"
        return call_api(
            f"list executions in {self.parent}",
            lambda: list(self.clients.executions.list_executions(
                request={"parent": parent, "page_size": 100}, retry=None, timeout=self._timeout()
            )),
            self.policy, permission="run.executions.list",
        )

    def _pycrew_executions(
        self, controller_id: str | None, include_done: bool, labels: Mapping[str, str] | None = None
    ) -> list[tuple[Any, tag.ExecutionTag]]:
        """pycrew's executions (those with a tag), all or one controller's, with these labels."""
        result = []
        for execution in self._list_executions():
            if labels and any(execution.labels.get(k) != v for k, v in labels.items()):
                continue
            if execution_done(execution):
                self._ended(execution.name)
                if not include_done:
                    continue
            found = execution_tag(execution)
            if found is not None and (controller_id is None or found.controller_id == controller_id):
                result.append((execution, found))
        return result

    def executions(
        self, controller_id: str | None = None, include_done: bool = False, labels: Mapping[str, str] | None = None
    ) -> list[ExecutionInfo]:
        """pycrew's executions in the region, newest first.

        Args:
            controller_id: only this controller's (default: every controller's).
            include_done: also executions that have ended (Cloud Run keeps them for 7 days).
            labels: only executions with these labels (their job's, e.g. ``{"team": "ml"}``).

        Raises:
            CloudRunError: the listing failed.
        """
        return [execution_info(e, t) for e, t in self._pycrew_executions(controller_id, include_done, labels)]

    def cancel_executions(self, names: Sequence[str]) -> None:
        """Cancel whole executions by name (ended or deleted ones are fine).

        Raises:
            CloudRunError: a cancellation failed.
        """
        try:
            for name in names:
                self._cancel(name)
        finally:
            self.forget_listing()

    def _ended(self, execution: str) -> None:
        with self._lock:
            known = execution in self._receipts or execution in self._requested
        if known:
            self._forget(execution)

    def workers(self, controller_id: str | None) -> list[WorkerInfo]:
        """The monitor: pycrew's workers (tasks), all or one controller's.

        Live ones (pending or running tasks) of every pycrew execution, and ended ones of the
        executions this process launched and did not cancel, up to :data:`SECONDS_ENDED_KEEP`
        after they completed, or deleted from outside pycrew (see the module docstring).
        Listed at most once per ``seconds_poll`` (launches and terminations refresh it).

        Raises:
            CloudRunError: the listing failed.
        """
        now = time.monotonic()
        with self._lock:
            cached = self._listing.get(controller_id)
        if cached is not None and now - cached[0] < self.options.seconds_poll:
            return list(cached[1])
        result: list[WorkerInfo] = []
        with self._lock:
            launched = set(self._launched)
        listed: set[str] = set()
        for execution, found in self._pycrew_executions(controller_id, include_done=bool(launched)):
            listed.add(execution.name)
            mine = execution.name in launched
            if execution_done(execution):
                completed = timestamp(execution.completion_time) if "completion_time" in execution else None
                if not mine:
                    continue
                with self._lock:
                    record = self._launched.get(execution.name)
                    if record is not None:
                        record.ended = True  # its deletion later (retention, a cleanup) is no news
                if completed is not None and time.time() - completed > SECONDS_ENDED_KEEP:
                    with self._lock:
                        self._launched.pop(execution.name, None)
                    continue
            try:
                tasks = self._list_tasks(execution.name)
            except gexc.NotFound:
                continue  # deleted since it was listed
            result += [
                self._worker_info(execution, found, t) for t in tasks if mine or task_state(t) in ("PENDING", "RUNNING")
            ]
        if launched:
            result += self._deleted_from_outside(controller_id, launched - listed)
        with self._lock:
            self._listing[controller_id] = (now, result)
        return list(result)

    def _deleted_from_outside(self, controller_id: str | None, missing: set[str]) -> list[WorkerInfo]:
        """The tasks of executions this process launched (of one controller, or all) that a read
        finds deleted, among those ``missing`` from the listing, as ended workers (see
        :mod:`pycrew_cloudrun.vanished`); those reported long enough are forgotten."""
        with self._lock:
            unsure = [r for r in self._launched.values() if r.name in missing and r.gone is None and r.mine(controller_id)]
        for record in unsure:
            if record.ended:  # it ended, then went: its end was listed
                with self._lock:
                    self._launched.pop(record.name, None)
                continue
            try:  # absence from a listing is not enough (it may lag): only NotFound says it is gone
                call_api(
                    f"get execution {record.name}",
                    lambda name=record.name: self.clients.executions.get_execution(  # type: ignore[misc]
                        name=name, retry=None, timeout=self._timeout()
                    ),
                    self.policy, permission="run.executions.get", passthrough=(gexc.NotFound,),
                )
            except gexc.NotFound:
                self._confirm_deleted(record)
            except CloudRunError as exc:  # asked again at the next listing
                log.debug("cloudrun: could not read %s, missing from the listing: %s", record.name, exc)
        now = time.monotonic()
        with self._lock:
            for name in [n for n, r in self._launched.items() if r.expired(now)]:
                del self._launched[name]
            gone = [r for r in self._launched.values() if r.gone is not None and r.mine(controller_id)]
        return [w for r in gone for w in r.deleted_workers(self.launcher_name)]

    def _confirm_deleted(self, record: LaunchedExecution) -> None:
        """A read found ``record``'s execution deleted: report its tasks from now on, destroy its key."""
        with self._lock:
            if self._launched.get(record.name) is not record:
                return  # pycrew cancelled it meanwhile: no news
            record.stopped = frozenset(self._requested.get(record.name, ()))
            record.gone = time.monotonic()
        log.info("cloudrun: execution %s was deleted from outside pycrew", record.name)
        self._forget(record.name)

    def _worker_info(self, execution: Any, found: tag.ExecutionTag, task: Any) -> WorkerInfo:
        """A task as a :class:`pycrew.WorkerInfo` (an ended one with its message and exit code)."""
        instance = found.instance_of(task.index)
        cond = completed_condition(task.conditions)
        state = task_state(task)
        reasons = [cond.message if cond is not None else ""]
        exit_code: int | None = None
        if state in ("SUCCEEDED", "FAILED", "CANCELLED") and "last_attempt_result" in task:
            result = task.last_attempt_result
            reasons.append(result.status.message)
            if result.term_signal:
                exit_code = 128 + result.term_signal
            elif state != "CANCELLED" and (result.exit_code or result.status.code == 0):
                exit_code = result.exit_code  # unset (0) when the container did not exit by itself
        return WorkerInfo(
            id=task.name,
            handle=CloudRunHandle(execution.name, task.index, instance or "", execution.task_count, listed=True),
            launcher=self.launcher_name,
            controller=found.controller or None,
            controller_id=found.controller_id,
            instance=instance,
            worker=found.slot_of(task.index),
            state=state,
            started=timestamp(task.start_time) or timestamp(execution.create_time),
            reason="; ".join(dict.fromkeys(r for r in reasons if r)),
            log=task.log_uri or execution.log_uri or None,
            status=_STATUS.get(state, "unknown"),
            exit_code=exit_code,
        )
