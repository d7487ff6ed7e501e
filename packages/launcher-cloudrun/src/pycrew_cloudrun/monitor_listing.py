"""The monitor's listing: :class:`MonitorListing` lists pycrew's executions and workers (tasks).

The monitor lists live tasks (pending, running) of every pycrew execution, and the ended
tasks (failed, succeeded, cancelled) of executions this process launched, until it cancels
them or for :data:`SECONDS_ENDED_KEEP` after they completed: with the task's ``Completed``
condition message and ``last_attempt_result`` (status message, exit code), so that core
fails a launch whose task could not start (a missing image, a missing interpreter) at once.
"""

from __future__ import annotations

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
from pycrew_cloudrun.retry import call_api

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
        after they completed (see the module docstring). Listed at most once per
        ``seconds_poll`` (launches and terminations refresh it).

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
        for execution, found in self._pycrew_executions(controller_id, include_done=bool(launched)):
            mine = execution.name in launched
            if execution_done(execution):
                completed = timestamp(execution.completion_time) if "completion_time" in execution else None
                if not mine:
                    continue
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
        with self._lock:
            self._listing[controller_id] = (now, result)
        return list(result)

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
