"""The frameworks ``bench_compare.py`` measures, each behind one small interface.

One :class:`Pool` subclass per column of the table: pycrew (socket and NNG wire),
:class:`concurrent.futures.ProcessPoolExecutor`, dask.distributed, Ray, loky and
joblib. Each adapter imports its framework in its constructor (not timed), creates
the pool in :meth:`Pool.open` (timed by the "first result" measure) and says which
measures do not fit its programming model (:attr:`Pool.not_applicable`).
"""

from __future__ import annotations

import abc
import concurrent.futures
import importlib.util
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import tasks

#: Column order of the table, the JSON and the plot.
FRAMEWORKS: tuple[str, ...] = ("pycrew", "pycrew-nng", "ppe", "dask", "ray", "loky", "joblib")
LABELS: dict[str, str] = {
    "pycrew": "pycrew",
    "pycrew-nng": "pycrew (nng)",
    "ppe": "ProcessPool",
    "dask": "dask",
    "ray": "Ray",
    "loky": "loky",
    "joblib": "joblib",
}


class Pool(abc.ABC):
    """A pool of ``workers`` worker processes; one adapter per framework.

    The constructor imports the framework (not timed); :meth:`open` creates the pool
    (timed by "first result").
    """

    name: ClassVar[str] = ""
    #: Import name whose absence skips the column, and the install hint for the note.
    module: ClassVar[str | None] = None
    install: ClassVar[str] = ""
    #: Measures (``"memory"``) or single numbers (``"throughput:submit_per_s"``) that do
    #: not fit the framework's model, with the reason printed instead of a number.
    not_applicable: ClassVar[dict[str, str]] = {}
    #: Numbers that are measured but mean something different for this framework.
    caveats: ClassVar[dict[str, str]] = {}

    def __init__(self, workers: int) -> None:
        self.workers = workers
        #: ``time.perf_counter()`` when :meth:`open` called the framework's own start, for a
        #: framework whose pool is built and started in two calls (``None``: one call).
        self.started_at: float | None = None

    @classmethod
    def missing(cls) -> str | None:
        """Why the framework cannot run here (not importable), or ``None`` if it can."""
        if cls.module is None:
            return None
        try:
            found = importlib.util.find_spec(cls.module) is not None
        except ModuleNotFoundError:  # a parent package is missing
            found = False
        return None if found else f"{cls.module} is not importable ({cls.install})"

    @abc.abstractmethod
    def open(self) -> None:
        """Create the pool (and whatever it needs to run tasks)."""

    @abc.abstractmethod
    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Submit ``fn(*args)``; returns the framework's future."""

    def result(self, future: Any) -> Any:
        """Wait for one future's value."""
        return future.result()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """One round trip: submit ``fn(*args)`` and wait for its value."""
        return self.result(self.submit(fn, *args))

    def gather(self, futures: Sequence[Any]) -> list[Any]:
        """Wait for every future's value (in order)."""
        return [f.result() for f in futures]

    def run_batch(self, fn: Callable[..., Any], n: int, *args: Any) -> tuple[float | None, float]:
        """Run ``n`` calls ``fn(*args)``: submit one by one, then gather.

        Returns:
            (seconds of the submit loop or ``None`` if the framework has no separate
            submit, seconds from the first submit to the last result).
        """
        submit = self.submit
        t0 = time.perf_counter()
        futures = [submit(fn, *args) for _ in range(n)]
        t1 = time.perf_counter()
        self.gather(futures)
        t2 = time.perf_counter()
        return t1 - t0, t2 - t0

    def count_done(self, futures: Sequence[Any]) -> int:
        """How many of ``futures`` have finished."""
        return sum(1 for f in futures if f.done())

    def online(self) -> int | None:
        """Workers connected, if the framework says; ``None`` if it does not."""
        return None

    def queued(self) -> int | None:
        """Tasks waiting in the client for a worker, if the framework says."""
        return None

    @abc.abstractmethod
    def close(self, cancel: bool = False) -> None:
        """Shut the pool down; with ``cancel``, drop queued tasks instead of running them."""

    def warm_up(self, timeout: float) -> None:
        """Run tasks until every worker is up and has imported ``tasks``."""
        deadline = time.monotonic() + timeout
        while True:
            self.gather([self.submit(tasks.sleep, 0.05) for _ in range(2 * self.workers)])
            online = self.online()
            if online is None or online >= self.workers:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: only {online}/{self.workers} workers online after {timeout:g} s")
        self.gather([self.submit(tasks.noop) for _ in range(4 * self.workers)])


class PycrewPool(Pool):
    """pycrew's ``local`` launcher with ``workers`` workers."""

    name = "pycrew"
    module = "pycrew"
    install = "pip install -e packages/core -e packages/launcher-local"
    transport = "socket"

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        import pycrew
        import pycrew.control.controller  # "import excluded" (as for the others): `import pycrew` is lazy

        self._pycrew = pycrew
        self.controller: Any = None

    def open(self) -> None:
        """Build the controller and start it (the first worker launches at ``start()``)."""
        self.controller = self._pycrew.controller("local", workers=self.workers, wire=self.transport)
        self.started_at = time.perf_counter()
        self.controller.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Submit through the Executor API (``Controller.submit``)."""
        return self.controller.submit(fn, *args)

    def online(self) -> int | None:
        """Workers connected, from the controller summary."""
        return int(self.controller.summary().controller.workers_online)

    def queued(self) -> int | None:
        """Tasks in the controller queue, from the controller summary."""
        return int(self.controller.summary().controller.queued)

    def close(self, cancel: bool = False) -> None:
        """Terminate (cancels queued futures); without ``cancel``, wait for tasks first."""
        if not cancel:
            self.controller.wait("all")
        self.controller.terminate()


class PycrewNngPool(PycrewPool):
    """pycrew with ``wire="nng"``: workers talk to the dispatcher through pynng."""

    name = "pycrew-nng"
    module = "pynng"
    install = "pip install pynng"
    transport = "nng"


class ProcessPool(Pool):
    """:class:`concurrent.futures.ProcessPoolExecutor` (default start method)."""

    name = "ppe"

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        self.executor: concurrent.futures.ProcessPoolExecutor | None = None

    def open(self) -> None:
        """Create the executor (it starts its processes at the first submit)."""
        self.executor = concurrent.futures.ProcessPoolExecutor(self.workers)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Submit through ``ProcessPoolExecutor.submit``."""
        assert self.executor is not None
        return self.executor.submit(fn, *args)

    def close(self, cancel: bool = False) -> None:
        """Shut down; ``cancel`` cancels the futures still pending."""
        assert self.executor is not None
        self.executor.shutdown(wait=True, cancel_futures=cancel)


def _dask_queued(dask_scheduler: Any) -> int:
    """Count the scheduler's tasks waiting for a worker (runs on the scheduler's loop)."""
    return sum(1 for ts in dask_scheduler.tasks.values() if ts.state in ("queued", "no-worker"))


class DaskPool(Pool):
    """``dask.distributed.LocalCluster(n_workers=W, threads_per_worker=1, processes=True)``."""

    name = "dask"
    module = "distributed"
    install = "pip install 'dask[distributed]'"

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        import distributed

        self._distributed = distributed
        self.cluster: Any = None
        self.client: Any = None

    def open(self) -> None:
        """Start the cluster (scheduler in this process, nanny + worker processes) and a client."""
        d = self._distributed
        self.cluster = d.LocalCluster(
            n_workers=self.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        self.client = d.Client(self.cluster)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Submit with ``pure=False`` (otherwise identical calls share one key and run once)."""
        return self.client.submit(fn, *args, pure=False)

    def gather(self, futures: Sequence[Any]) -> list[Any]:
        """Gather with ``Client.gather`` (one call for all futures)."""
        return list(self.client.gather(list(futures)))

    def online(self) -> int | None:
        """Workers the scheduler knows."""
        return len(self.client.scheduler_info(n_workers=-1)["workers"])

    def queued(self) -> int | None:
        """Tasks the scheduler holds back for want of a free worker."""
        return int(self.client.run_on_scheduler(_dask_queued))

    def warm_up(self, timeout: float) -> None:
        """Wait for the workers, then run warm-up tasks."""
        self.client.wait_for_workers(self.workers, timeout=timeout)
        super().warm_up(timeout)

    def close(self, cancel: bool = False) -> None:
        """Close the client (releasing its futures) and the cluster."""
        self.client.close()
        self.cluster.close()


class RayPool(Pool):
    """A local Ray instance: ``ray.init(num_cpus=W, include_dashboard=False)``, ``@ray.remote`` tasks.

    Ray's raylet runs up to ``num_cpus`` one-CPU tasks at once, each in its own worker
    process. The instance is kept on 127.0.0.1 (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``:
    otherwise Ray binds to the machine's outward address) and Ray's usage-statistics
    reporting is off (``RAY_USAGE_STATS_ENABLED=0``); both only if not set already.
    ``ray.init`` also starts Ray's own services (GCS, raylet, dashboard agent): they are
    part of the pool, so "first result" includes them.
    """

    name = "ray"
    module = "ray"
    install = "pip install ray"
    caveats: ClassVar[dict[str, str]] = {
        "memory:heap_bytes_per_task": (
            "tracemalloc sees Python objects only; Ray keeps queued tasks (specs and inlined arguments) "
            "in its C++ core worker, which only the RSS number counts"
        ),
    }

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray

        self._ray = ray
        self._remote: dict[Callable[..., Any], Any] = {}

    def open(self) -> None:
        """Start a private local Ray instance with ``workers`` CPUs."""
        self._ray.init(
            num_cpus=self.workers,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``ray.remote(fn).remote(*args)``; the remote function is made once per ``fn``."""
        remote = self._remote.get(fn)
        if remote is None:
            remote = self._remote[fn] = self._ray.remote(fn)
        return remote.remote(*args)

    def result(self, future: Any) -> Any:
        """``ray.get`` of one object reference."""
        return self._ray.get(future)

    def gather(self, futures: Sequence[Any]) -> list[Any]:
        """``ray.get`` of all object references at once."""
        return list(self._ray.get(list(futures)))

    def count_done(self, futures: Sequence[Any]) -> int:
        """Finished tasks, from ``ray.wait(..., timeout=0)`` (fetches nothing)."""
        if not futures:
            return 0
        ready, _ = self._ray.wait(list(futures), num_returns=len(futures), timeout=0, fetch_local=False)
        return len(ready)

    def close(self, cancel: bool = False) -> None:
        """``ray.shutdown()``: stops the instance, dropping whatever is still queued."""
        self._ray.shutdown()


class LokyPool(Pool):
    """``loky.get_reusable_executor(max_workers=W)``: a ProcessPoolExecutor-like pool (cloudpickle, spawn-safe)."""

    name = "loky"
    module = "loky"
    install = "pip install loky"

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        import loky  # type: ignore[import-untyped,unused-ignore]

        self._loky = loky
        self.executor: Any = None

    def open(self) -> None:
        """Create the executor; idle workers are kept 300 s (joblib's default), not loky's 10 s."""
        self.executor = self._loky.get_reusable_executor(max_workers=self.workers, timeout=300)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Submit through the executor's ``submit``."""
        return self.executor.submit(fn, *args)

    def close(self, cancel: bool = False) -> None:
        """Shut down; loky has no ``cancel_futures``, so ``cancel`` kills the workers instead."""
        self.executor.shutdown(wait=True, kill_workers=cancel)


class JoblibPool(Pool):
    """``joblib.Parallel(n_jobs=W, backend="loky")``, kept open as a context manager.

    joblib has no futures: a call of the ``Parallel`` object takes an iterable of
    ``delayed`` calls, dispatches them in automatically sized batches
    (``batch_size="auto"``, at most ``pre_dispatch="2 * n_jobs"`` batches ahead) and
    returns when every result is in. Throughput and efficiency are one such call over
    all N tasks; latency and first result are calls of one task each.
    """

    name = "joblib"
    module = "joblib"
    install = "pip install joblib"
    caveats: ClassVar[dict[str, str]] = {
        "throughput:tasks_per_s": (
            "batch_size='auto' sends many no-ops per message to a worker; the others send one message per task"
        ),
        "latency:p50_us": "each round trip is a whole Parallel call of one task, with joblib's per-call set-up",
    }
    not_applicable: ClassVar[dict[str, str]] = {
        "throughput:submit_per_s": "Parallel has no separate submit: one call dispatches and gathers",
        "memory": (
            "Parallel has no submit and keeps no backlog: it pulls tasks from the iterable lazily "
            "(pre_dispatch='2 * n_jobs') and returns only when all are done, so nothing queues in the client"
        ),
    }

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        import joblib

        self._joblib = joblib
        self.parallel: Any = None

    def open(self) -> None:
        """Create the ``Parallel`` object and enter it (workers start at the first call)."""
        self.parallel = self._joblib.Parallel(n_jobs=self.workers, backend="loky")
        self.parallel.__enter__()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """joblib cannot submit one task and return a future."""
        raise NotImplementedError("joblib.Parallel has no submit(); use call() or run_batch()")

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """One task through the open ``Parallel``: ``parallel([delayed(fn)(*args)])[0]``."""
        return self.parallel([self._joblib.delayed(fn)(*args)])[0]

    def run_batch(self, fn: Callable[..., Any], n: int, *args: Any) -> tuple[float | None, float]:
        """All ``n`` tasks in one ``Parallel`` call; there is no separate submit time."""
        delayed = self._joblib.delayed(fn)
        t0 = time.perf_counter()
        self.parallel(delayed(*args) for _ in range(n))
        return None, time.perf_counter() - t0

    def warm_up(self, timeout: float) -> None:
        """Run ``2 W`` short sleeps (every worker starts) and ``4 W`` no-ops."""
        self.run_batch(tasks.sleep, 2 * self.workers, 0.05)
        self.run_batch(tasks.noop, 4 * self.workers)

    def close(self, cancel: bool = False) -> None:
        """Leave the ``Parallel`` context and shut its loky executor down."""
        # joblib keeps the loky executor alive for reuse and has no public way to stop it;
        # take it from the backend (private attribute) so no worker outlives the measure.
        executor = getattr(getattr(self.parallel, "_backend", None), "_workers", None)
        self.parallel.__exit__(None, None, None)
        if executor is not None:
            executor.shutdown(wait=True, kill_workers=cancel)


POOLS: dict[str, type[Pool]] = {
    "pycrew": PycrewPool,
    "pycrew-nng": PycrewNngPool,
    "ppe": ProcessPool,
    "dask": DaskPool,
    "ray": RayPool,
    "loky": LokyPool,
    "joblib": JoblibPool,
}
