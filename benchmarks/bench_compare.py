"""Side-by-side benchmark: pycrew vs ProcessPoolExecutor vs dask.distributed.

Measures, on one machine in one run, with the same worker count ``W`` (default 2) for
every framework:

1. throughput: N no-op tasks submitted one by one, then gathered (tasks/s, submit
   time included);
2. latency: sequential round trips of a no-op (submit, then wait for the result);
3. efficiency: N tasks of ``time.sleep(s)``; ideal time ``N*s/W`` over elapsed time;
4. client memory per queued task: RSS delta (psutil) and Python-heap delta
   (tracemalloc) of the client process while N tasks with a 100-byte payload wait
   behind a task that occupies the worker (this measure uses one worker throughout);
5. time to first result: from creating the pool to the first no-op's result.

Every (framework, measure, repetition) runs in a fresh child process (this script
with ``--child``), so no measure inherits warm allocator arenas, threads or imports
from another. The table shows medians over ``--repeat`` runs and the ratios vs
ProcessPoolExecutor that pycrew's targets use. See ``benchmarks/README.md``.

Usage::

    python benchmarks/bench_compare.py --quick            # smoke run, small sizes
    python benchmarks/bench_compare.py --json out.json    # full run (quiet machine!)
    python benchmarks/bench_compare.py --only pycrew,ppe --repeat 5
"""

from __future__ import annotations

import abc
import argparse
import concurrent.futures
import dataclasses
import gc
import importlib.util
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import tasks  # noqa: E402  (needs HERE on sys.path)

FRAMEWORKS: tuple[str, ...] = ("pycrew", "pycrew-nng", "ppe", "dask")
LABELS: dict[str, str] = {"pycrew": "pycrew", "pycrew-nng": "pycrew (nng)", "ppe": "ProcessPool", "dask": "dask"}
MEASURES: tuple[str, ...] = ("throughput", "latency", "efficiency", "memory", "first_result")
RESULT_MARK = "BENCH_RESULT "


# -- configuration ---------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """Problem sizes of every measure (the defaults are the full benchmark)."""

    workers: int = 2
    throughput_tasks: int = 10_000
    latency_trips: int = 1_000
    efficiency_tasks: int = 1_000
    sleep_seconds: float = 0.01
    memory_tasks: int = 100_000
    heap_tasks: int = 10_000
    memory_workers: int = 1
    payload_bytes: int = 100
    tracemalloc: bool = True
    warmup_timeout: float = 60.0
    gate_timeout: float = 600.0


QUICK_SIZES = Sizes(
    throughput_tasks=200,
    latency_trips=200,
    efficiency_tasks=100,
    memory_tasks=2_000,
    heap_tasks=1_000,
    gate_timeout=60.0,
)


def setup_environment() -> None:
    """Make ``tasks`` importable by every worker process any framework starts.

    pycrew's local launcher and dask's nanny pass this process's environment to the
    workers; ProcessPoolExecutor forks (Linux default) and inherits ``sys.path`` too.
    """
    path = os.environ.get("PYTHONPATH", "")
    parts = [p for p in path.split(os.pathsep) if p]
    if HERE not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([HERE, *parts])


# -- the three frameworks behind one small interface ---------------------------------------


class Pool(abc.ABC):
    """A pool of ``workers`` worker processes; one adapter per framework.

    The constructor imports the framework (not timed); :meth:`open` creates the pool
    (timed by "first result").
    """

    name: str = ""

    def __init__(self, workers: int) -> None:
        self.workers = workers

    @abc.abstractmethod
    def open(self) -> None:
        """Create the pool (and whatever it needs to run tasks)."""

    @abc.abstractmethod
    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Submit ``fn(*args)``; returns the framework's future."""

    def result(self, future: Any) -> Any:
        """Wait for one future's value."""
        return future.result()

    def gather(self, futures: Sequence[Any]) -> list[Any]:
        """Wait for every future's value (in order)."""
        return [f.result() for f in futures]

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

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        import pycrew

        self._pycrew = pycrew
        self.controller: Any = None

    transport = "socket"

    def open(self) -> None:
        """Build the controller and start it (workers launch on demand)."""
        self.controller = self._pycrew.controller("local", workers=self.workers, wire=self.transport)
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


POOLS: dict[str, type[Pool]] = {"pycrew": PycrewPool, "pycrew-nng": PycrewNngPool, "ppe": ProcessPool, "dask": DaskPool}


# -- measures (run in a child process) ---------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Return the ``q``-quantile (0..1) of ``values``, linearly interpolated."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def rss() -> int:
    """Resident set size of this process, in bytes."""
    import psutil

    return int(psutil.Process().memory_info().rss)


def heap() -> int:
    """Bytes of Python heap currently traced by tracemalloc."""
    return tracemalloc.get_traced_memory()[0]


def settle(read: Callable[[], int], slack: int = 64 * 1024, timeout: float = 60.0, interval: float = 0.2) -> int:
    """Read ``read()`` until two readings ``interval`` apart differ by at most ``slack`` (or 0.5 %)."""
    deadline = time.monotonic() + timeout
    last = read()
    while True:
        time.sleep(interval)
        now = read()
        if abs(now - last) <= max(slack, 0.005 * abs(last)) or time.monotonic() > deadline:
            return now
        last = now


def throughput_window(pool: Pool, n: int) -> dict[str, float]:
    """Submit ``n`` no-ops one by one, then gather them (the pool is warm)."""
    submit, fn = pool.submit, tasks.noop
    t0 = time.perf_counter()
    futures = [submit(fn) for _ in range(n)]
    t1 = time.perf_counter()
    pool.gather(futures)
    t2 = time.perf_counter()
    return {"tasks_per_s": n / (t2 - t0), "submit_per_s": n / (t1 - t0), "elapsed_s": t2 - t0, "submit_s": t1 - t0}


def measure_throughput(pool: Pool, sizes: Sizes) -> dict[str, float]:
    """Measure 1: no-op throughput, submit time included."""
    pool.open()
    try:
        pool.warm_up(sizes.warmup_timeout)
        return throughput_window(pool, sizes.throughput_tasks)
    finally:
        pool.close()


def measure_latency(pool: Pool, sizes: Sizes) -> dict[str, float]:
    """Measure 2: sequential submit-then-result round trips of a no-op."""
    pool.open()
    try:
        pool.warm_up(sizes.warmup_timeout)
        submit, result, fn, clock = pool.submit, pool.result, tasks.noop, time.perf_counter_ns
        samples: list[float] = []
        for _ in range(sizes.latency_trips):
            t0 = clock()
            result(submit(fn))
            samples.append((clock() - t0) / 1000.0)
    finally:
        pool.close()
    return {
        "p50_us": percentile(samples, 0.50),
        "p99_us": percentile(samples, 0.99),
        "mean_us": statistics.fmean(samples),
        "max_us": max(samples),
    }


def measure_efficiency(pool: Pool, sizes: Sizes) -> dict[str, float]:
    """Measure 3: N tasks of ``sleep(s)``; efficiency = (N*s/W) / elapsed."""
    pool.open()
    try:
        pool.warm_up(sizes.warmup_timeout)
        n, s = sizes.efficiency_tasks, sizes.sleep_seconds
        submit, fn = pool.submit, tasks.sleep
        t0 = time.perf_counter()
        pool.gather([submit(fn, s) for _ in range(n)])
        elapsed = time.perf_counter() - t0
    finally:
        pool.close()
    ideal = n * s / pool.workers
    return {"efficiency_pct": 100.0 * ideal / elapsed, "elapsed_s": elapsed, "ideal_s": ideal}


def _queued_memory(pool: Pool, sizes: Sizes, use_tracemalloc: bool) -> dict[str, float]:
    """Bytes per task of payload tasks queued behind busy workers.

    Every worker first runs a ``tasks.gate`` task that blocks until released, so the
    payload tasks cannot start; the baseline is read once every gate runs. The RSS
    pass queues ``memory_tasks`` tasks; the tracemalloc pass, which slows allocation
    several-fold (dask's in-process scheduler most), queues ``heap_tasks``: traced
    bytes per task do not depend on the count, unlike RSS (pages, allocator arenas).
    """
    n, size = (sizes.heap_tasks if use_tracemalloc else sizes.memory_tasks), sizes.payload_bytes
    pool.open()
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        started, release = os.path.join(tmp, "started"), os.path.join(tmp, "release")
        os.mkdir(started)
        try:
            pool.warm_up(sizes.warmup_timeout)
            # Keep the gate futures referenced: dask cancels tasks whose futures are dropped.
            gates = [pool.submit(tasks.gate, started, release, sizes.gate_timeout) for _ in range(pool.workers)]
            deadline = time.monotonic() + 30.0
            while len(os.listdir(started)) < len(gates) and time.monotonic() < deadline:
                time.sleep(0.01)
            gates_running = len({name.split("-")[0] for name in os.listdir(started)})  # distinct worker pids
            submit, fn = pool.submit, tasks.payload
            futures: list[Any] = []
            gc.collect()
            if use_tracemalloc:
                tracemalloc.start()
            read = heap if use_tracemalloc else rss
            before = settle(read)
            for i in range(n):
                # A distinct payload per task, referenced only by the framework.
                futures.append(submit(fn, b"%0*d" % (size, i)))
            if pool.queued() is not None:  # wait until the framework has taken every task in
                settle(lambda: pool.queued() or 0, slack=0, timeout=600.0, interval=0.5)
            gc.collect()
            after = settle(read)
            done = sum(1 for f in futures if f.done())
            queued = pool.queued()
        finally:
            tracemalloc.stop()  # no-op if not tracing
            with open(release, "w"):
                pass
            pool.close(cancel=True)
    out: dict[str, float] = {
        "bytes_per_task": (after - before) / n,
        "done_at_measure": done,
        "gates_running": gates_running,
    }
    if queued is not None:
        out["queued_at_measure"] = queued
    return out


def measure_memory(pool: Pool, sizes: Sizes) -> dict[str, float]:
    """Measure 4: client memory per queued task (RSS pass, then a tracemalloc pass)."""
    first = _queued_memory(pool, sizes, use_tracemalloc=False)
    out = {"rss_bytes_per_task": first.pop("bytes_per_task"), **first}
    if sizes.tracemalloc:
        second = _queued_memory(pool, sizes, use_tracemalloc=True)
        out["heap_bytes_per_task"] = second["bytes_per_task"]
    return out


def measure_first_result(pool: Pool, sizes: Sizes) -> dict[str, float]:
    """Measure 5: from creating the pool to the first no-op's result (import excluded)."""
    t0 = time.perf_counter()
    pool.open()
    try:
        pool.result(pool.submit(tasks.noop))
        seconds = time.perf_counter() - t0
    finally:
        pool.close()
    return {"seconds": seconds}


MEASURE_FUNCS: dict[str, Callable[[Pool, Sizes], dict[str, float]]] = {
    "throughput": measure_throughput,
    "latency": measure_latency,
    "efficiency": measure_efficiency,
    "memory": measure_memory,
    "first_result": measure_first_result,
}


def run_child(framework: str, measure: str, sizes: Sizes) -> None:
    """Child process: run one measure of one framework, print its JSON on one line."""
    setup_environment()
    # The memory measure blocks every worker with one gate task; one worker makes that
    # deterministic (with more, a framework may prefetch both gates onto one worker and
    # leave another free to drain the queue). Client memory per queued task does not
    # depend on the number of workers.
    workers = sizes.memory_workers if measure == "memory" else sizes.workers
    pool = POOLS[framework](workers)
    result = MEASURE_FUNCS[measure](pool, sizes)
    print(RESULT_MARK + json.dumps(result), flush=True)


# -- orchestration (parent process) -------------------------------------------------------


def spawn(framework: str, measure: str, sizes: Sizes, timeout: float) -> dict[str, Any]:
    """Run one measure in a fresh child; returns its numbers or ``{"error": ...}``."""
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        framework,
        measure,
        json.dumps(dataclasses.asdict(sizes)),
    ]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(proc.pid)
            proc.communicate()
            return {"error": f"timed out after {timeout:g} s"}
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return dict(json.loads(line[len(RESULT_MARK) :]))
    tail = "\n".join(stderr.strip().splitlines()[-8:])
    return {"error": f"exit code {proc.returncode}: {tail}"}


def kill_tree(pid: int) -> None:
    """Kill a child that overran and every process it started (workers included)."""
    import psutil

    try:
        parent = psutil.Process(pid)
        family = [*parent.children(recursive=True), parent]
    except psutil.Error:
        return
    for process in family:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(family, timeout=10)


def medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Median of every numeric key over the successful runs."""
    ok = [r for r in runs if "error" not in r]
    keys = sorted({k for r in ok for k, v in r.items() if isinstance(v, (int, float))})
    return {k: statistics.median(r[k] for r in ok if k in r) for k in keys}


def spread(runs: list[dict[str, Any]], key: str) -> float | None:
    """Half the (max - min) range of ``key`` over the runs, relative to the median."""
    values = [r[key] for r in runs if "error" not in r and key in r]
    if len(values) < 2:
        return None
    mid = statistics.median(values)
    return (max(values) - min(values)) / 2 / abs(mid) if mid else None


@dataclass(frozen=True)
class Row:
    """One line of the table: a number some measure reports."""

    label: str
    measure: str
    key: str
    fmt: str


ROWS: tuple[Row, ...] = (
    Row("throughput (tasks/s)", "throughput", "tasks_per_s", "{:,.0f}"),
    Row("  submit only (tasks/s)", "throughput", "submit_per_s", "{:,.0f}"),
    Row("latency p50 (us)", "latency", "p50_us", "{:,.0f}"),
    Row("latency p99 (us)", "latency", "p99_us", "{:,.0f}"),
    Row("efficiency (%)", "efficiency", "efficiency_pct", "{:.1f}"),
    Row("memory RSS (B/task)", "memory", "rss_bytes_per_task", "{:,.0f}"),
    Row("memory heap (B/task)", "memory", "heap_bytes_per_task", "{:,.0f}"),
    Row("first result (s)", "first_result", "seconds", "{:.3f}"),
)


@dataclass(frozen=True)
class Target:
    """A goal for pycrew: either a ratio vs ProcessPoolExecutor or an absolute bound."""

    label: str
    measure: str
    key: str
    higher_is_better: bool
    goal: float
    vs_ppe: bool

    def check(self, pycrew: float | None, ppe: float | None) -> tuple[float | None, str]:
        """Return (the compared number, ``PASS``/``MISS``/``n/a``)."""
        if pycrew is None or (self.vs_ppe and (ppe is None or ppe <= 0)):
            return None, "n/a"
        value = pycrew / ppe if self.vs_ppe and ppe else pycrew
        ok = value >= self.goal if self.higher_is_better else value <= self.goal
        return value, "PASS" if ok else "MISS"


TARGETS: tuple[Target, ...] = (
    Target("throughput >= 2x PPE", "throughput", "tasks_per_s", True, 2.0, True),
    Target("latency p50 <= 1.2x PPE", "latency", "p50_us", False, 1.2, True),
    Target("efficiency >= 95 %", "efficiency", "efficiency_pct", True, 95.0, False),
    Target("memory/task (RSS) <= PPE", "memory", "rss_bytes_per_task", False, 1.0, True),
    Target("memory/task (heap) <= PPE", "memory", "heap_bytes_per_task", False, 1.0, True),
    Target("first result <= 0.5 s", "first_result", "seconds", False, 0.5, False),
)


def cell(results: dict[str, Any], framework: str, row: Row) -> str:
    """One table cell: the median, with the run-to-run spread when there are several runs."""
    entry = results.get(framework, {}).get(row.measure)
    if entry is None:
        return "-"
    value = entry["median"].get(row.key)
    if value is None:
        return "error" if any("error" in r for r in entry["runs"]) else "-"
    text = row.fmt.format(value)
    s = spread(entry["runs"], row.key)
    return f"{text} ±{100 * s:.0f}%" if s is not None else text


def median_of(results: dict[str, Any], framework: str, measure: str, key: str) -> float | None:
    """Return the median of ``key``, or ``None`` if it was not measured."""
    entry = results.get(framework, {}).get(measure)
    return None if entry is None else entry["median"].get(key)


def report(results: dict[str, Any], frameworks: Sequence[str], repeat: int) -> list[dict[str, Any]]:
    """Print the side-by-side table, ratios vs PPE and the targets; return the targets."""
    width = max(len(r.label) for r in ROWS) + 2
    col = 18
    print(f"\nmedians of {repeat} run(s); ±x% = half the min-max range of the runs\n")
    print("".ljust(width) + "".join(LABELS[f].rjust(col) for f in frameworks))
    for row in ROWS:
        print(row.label.ljust(width) + "".join(cell(results, f, row).rjust(col) for f in frameworks))

    others = [f for f in frameworks if f != "ppe"]
    if "ppe" in frameworks and others:
        print("\nratio vs ProcessPoolExecutor (value / PPE value)\n")
        print("".ljust(width) + "".join(LABELS[f].rjust(col) for f in others))
        for row in ROWS:
            base = median_of(results, "ppe", row.measure, row.key)
            cells = []
            for f in others:
                value = median_of(results, f, row.measure, row.key)
                cells.append(f"{value / base:.2f}x" if value is not None and base else "-")
            print(row.label.ljust(width) + "".join(c.rjust(col) for c in cells))

    print("\npycrew targets (numbers, not assertions)\n")
    checked = []
    for t in TARGETS:
        value, verdict = t.check(
            median_of(results, "pycrew", t.measure, t.key), median_of(results, "ppe", t.measure, t.key)
        )
        shown = "-" if value is None else (f"{value:.2f}x" if t.vs_ppe else f"{value:.3g}")
        print(f"  {t.label.ljust(28)}{shown.rjust(10)}   {verdict}")
        checked.append({"target": t.label, "value": value, "vs_ppe": t.vs_ppe, "goal": t.goal, "verdict": verdict})
    return checked


def versions(frameworks: Sequence[str]) -> dict[str, str]:
    """Versions of Python and of the frameworks measured."""
    out = {"python": platform.python_version()}
    for name in ("pycrew", "distributed", "psutil", "pynng", "cloudpickle"):
        if name == "distributed" and "dask" not in frameworks:
            continue
        try:
            from importlib.metadata import version

            out[name] = version(name)
        except Exception:
            out[name] = "?"
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command line."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run with small sizes (and --repeat 1 unless given)")
    ap.add_argument("--repeat", type=int, default=None, help="runs per measure; the median is reported (default 3)")
    ap.add_argument("--only", default=",".join(FRAMEWORKS), help="frameworks, comma-separated: pycrew,pycrew-nng,ppe,dask")
    ap.add_argument("--measures", default=",".join(MEASURES), help="measures, comma-separated: " + ",".join(MEASURES))
    ap.add_argument("--workers", type=int, default=2, help="worker processes per pool (default 2)")
    ap.add_argument("--no-tracemalloc", action="store_true", help="skip the tracemalloc pass of the memory measure")
    ap.add_argument("--child-timeout", type=float, default=1800.0, help="seconds one child may take (default 1800)")
    ap.add_argument("--json", metavar="PATH", help="also save every number as JSON")
    ap.add_argument("--child", nargs=3, metavar=("FRAMEWORK", "MEASURE", "SIZES"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    return args


def select(text: str, allowed: Sequence[str], what: str) -> list[str]:
    """Parse a comma-separated selection, keeping the canonical order."""
    chosen = {s.strip() for s in text.split(",") if s.strip()}
    unknown = chosen - set(allowed)
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(sorted(unknown))} (choose from {', '.join(allowed)})")
    return [a for a in allowed if a in chosen]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or, with ``--child``, one measure of it)."""
    args = parse_args(argv)
    if args.child:
        framework, measure, sizes_json = args.child
        run_child(framework, measure, Sizes(**json.loads(sizes_json)))
        return 0

    setup_environment()
    frameworks = select(args.only, FRAMEWORKS, "framework")
    measures = select(args.measures, MEASURES, "measure")
    if "dask" in frameworks and importlib.util.find_spec("distributed") is None:
        print("note: dask.distributed is not installed; skipping dask (pip install 'dask[distributed]')")
        frameworks.remove("dask")
    sizes = dataclasses.replace(
        QUICK_SIZES if args.quick else Sizes(), workers=args.workers, tracemalloc=not args.no_tracemalloc
    )
    if "memory" in measures and importlib.util.find_spec("psutil") is None:
        raise SystemExit("the memory measure needs psutil (pip install psutil)")

    load_before = os.getloadavg()
    print(
        f"bench_compare: {', '.join(LABELS[f] for f in frameworks)}; W={sizes.workers}; repeat={args.repeat}"
        f"{' (quick sizes)' if args.quick else ''}; cpus={os.cpu_count()}; load avg {load_before[0]:.2f}"
    )
    print(f"sizes: {dataclasses.asdict(sizes)}")

    results: dict[str, dict[str, Any]] = {f: {} for f in frameworks}
    started = time.perf_counter()
    for rep in range(args.repeat):
        for measure in measures:
            for framework in frameworks:  # interleaved, so drift hits every framework alike
                t0 = time.perf_counter()
                out = spawn(framework, measure, sizes, args.child_timeout)
                entry = results[framework].setdefault(measure, {"runs": []})
                entry["runs"].append(out)
                brief = out.get("error") or ", ".join(
                    f"{k}={v:.4g}" for k, v in out.items() if isinstance(v, (int, float))
                )
                if (
                    measure == "memory"
                    and "error" not in out
                    and (out["done_at_measure"] or out["gates_running"] < sizes.memory_workers)
                ):
                    brief += "  WARNING: workers were not all blocked, so tasks ran instead of queueing"
                print(
                    f"  [{rep + 1}/{args.repeat}] {measure:<12} {LABELS[framework]:<12} {time.perf_counter() - t0:6.1f} s  {brief}",
                    file=sys.stderr,
                    flush=True,
                )
    for per in results.values():
        for entry in per.values():
            entry["median"] = medians(entry["runs"])

    targets = report(results, frameworks, args.repeat)
    load_after = os.getloadavg()
    total = time.perf_counter() - started
    print(f"\ntotal {total:.1f} s; load avg before {load_before[0]:.2f}, after {load_after[0]:.2f}")

    if args.json:
        doc = {
            "meta": {
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "quick": args.quick,
                "repeat": args.repeat,
                "sizes": dataclasses.asdict(sizes),
                "versions": versions(frameworks),
                "loadavg_before": load_before,
                "loadavg_after": load_after,
                "seconds": total,
            },
            "results": results,
            "targets": targets,
        }
        with open(args.json, "w") as fh:
            json.dump(doc, fh, indent=2)
        print(f"saved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
