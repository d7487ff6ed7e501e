"""What every part of :class:`~pycrew_cloudrun.cloudrun.CloudRunJobs` shares: :class:`EngineBase`.

Its settings (options, clients, retry policy, project, job name, key delivery), what it
remembers of executions in this process, and the calls on them that launching,
termination and the monitor all make: cancel an execution, forget it, list its tasks.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from google.api_core import exceptions as gexc

from pycrew import WorkerInfo
from pycrew_cloudrun import jobspec
from pycrew_cloudrun.batchkey import KeyDelivery, PlainEnvKeys, SecretManagerKeys
from pycrew_cloudrun.clients import Clients, resolve_project
from pycrew_cloudrun.options import CloudRunOptions
from pycrew_cloudrun.records import execution_done
from pycrew_cloudrun.retry import CloudRunError, RetryPolicy, call_api
from pycrew_cloudrun.vanished import LaunchedExecution

log = logging.getLogger(__name__)


class EngineBase:
    """The settings, memory and shared calls of :class:`~pycrew_cloudrun.cloudrun.CloudRunJobs` (see there).

    Args:
        options: the launcher's options.
        launcher_name: the registered launcher name, for :class:`pycrew.WorkerInfo`.
    """

    def __init__(self, options: CloudRunOptions, launcher_name: str = "cloudrun") -> None:
        self.options = options
        self.launcher_name = launcher_name
        self.clients = Clients(options)
        self.policy = RetryPolicy(attempts=options.api_attempts_max, seconds_total=options.seconds_api_retry_max)
        self._lock = threading.Lock()
        self._job_lock = threading.Lock()
        self._project: str | None = None
        self._job: str | None = None
        self._container = ""
        self._keys: KeyDelivery | None = None
        self._requested: dict[str, set[int]] = {}
        self._receipts: dict[str, str] = {}
        self._listing: dict[str | None, tuple[float, list[WorkerInfo]]] = {}
        self._launched: dict[str, LaunchedExecution] = {}  # executions this process ran and did not cancel

    # -- basics --------------------------------------------------------------------------

    @property
    def project(self) -> str:
        """The project (the option, or found from the environment / ADC)."""
        if self._project is None:
            self._project = resolve_project(self.options)
        return self._project

    @property
    def parent(self) -> str:
        """``projects/<project>/locations/<region>``."""
        return self.options.parent(self.project)

    @property
    def job_name(self) -> str:
        """The full name of the job the workers run as."""
        return f"{self.parent}/jobs/{jobspec.job_id(self.options)}"

    def _timeout(self) -> float:
        return self.options.seconds_api_timeout

    @property
    def keys(self) -> KeyDelivery:
        """How a run's secret reaches its tasks (``token_delivery``)."""
        with self._lock:
            if self._keys is None:
                o = self.options
                if o.token_delivery == "env":
                    self._keys = PlainEnvKeys()
                else:
                    self._keys = SecretManagerKeys(
                        self.clients.secrets, o.secret_name(self.project), self.policy, create=o.create_secret,
                        labels={jobspec.LAUNCHER_LABEL: "cloudrun"}, timeout=o.seconds_api_timeout,
                    )
            return self._keys

    # -- executions this process remembers --------------------------------------------

    def _cancel(self, execution: str) -> None:
        """Cancel an execution (its pending and running tasks); ended or deleted ones are fine."""
        with self._lock:
            self._launched.pop(execution, None)  # pycrew stops it: its tasks' ends are no news
        client = self.clients.executions
        try:
            call_api(
                f"cancel execution {execution}",
                lambda: client.cancel_execution(name=execution, retry=None, timeout=self._timeout()),
                self.policy, permission="run.executions.cancel",
                passthrough=(gexc.NotFound, gexc.FailedPrecondition, gexc.BadRequest),
            )
        except gexc.NotFound:
            pass  # deleted: nothing runs
        except (gexc.FailedPrecondition, gexc.BadRequest) as exc:  # refused: fine if it has ended
            try:
                current = call_api(
                    f"get execution {execution}",
                    lambda: client.get_execution(name=execution, retry=None, timeout=self._timeout()),
                    self.policy, permission="run.executions.get", passthrough=(gexc.NotFound,),
                )
            except gexc.NotFound:
                current = None
            if current is not None and not execution_done(current):
                raise CloudRunError(f"cancel execution {execution} failed: {type(exc).__name__}: {exc}") from exc
        self._forget(execution)

    def _stop_deleted(self, execution: str, indexes: set[int]) -> bool:
        """If ``execution`` was found deleted from outside pycrew (see :mod:`pycrew_cloudrun.vanished`):
        stop reporting tasks ``indexes`` of it (pycrew stops them: no news), forget it once none is
        left, and return ``True`` (nothing runs, nothing to cancel); else ``False``."""
        with self._lock:
            record = self._launched.get(execution)
            if record is None or record.gone is None:
                return False
            record.stopped |= indexes
            if len(record.stopped) >= len(record.tag.slots):
                del self._launched[execution]
            return True

    def _forget(self, execution: str) -> None:
        """The execution has ended or was cancelled: drop what is remembered, destroy its key."""
        with self._lock:
            self._requested.pop(execution, None)
            receipt = self._receipts.pop(execution, None)
        if receipt is not None:
            self._release(receipt)

    def _release(self, receipt: str) -> None:
        try:
            self.keys.release(receipt)
        except CloudRunError as exc:  # the sweep destroys it later; the run itself is unaffected
            log.warning("cloudrun: could not destroy the secret version %s: %s", receipt, exc)

    def _list_tasks(self, execution: str) -> list[Any]:
        return call_api(
            f"list tasks of {execution}",
            lambda: list(self.clients.tasks.list_tasks(
                request={"parent": execution, "page_size": 1000}, retry=None, timeout=self._timeout()
            )),
            self.policy, permission="run.tasks.list", passthrough=(gexc.NotFound,),
        )

    def forget_listing(self) -> None:
        """Drop the monitor's cached listing (after a launch or a termination)."""
        with self._lock:
            self._listing.clear()
