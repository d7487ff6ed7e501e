"""Side-by-side benchmark: pycrew vs ProcessPoolExecutor, dask, Ray, loky and joblib.

Measures, on one machine in one run, with the same worker count ``W`` (default 2) for
every framework:

1. throughput: N no-op tasks submitted one by one, then gathered (tasks/s, submit
   time included);
2. latency: sequential round trips of a no-op (submit, then wait for the result);
3. efficiency: N tasks of ``time.sleep(s)``; ideal time ``N*s/W`` over elapsed time;
4. client memory per queued task: RSS delta (psutil) and Python-heap delta
   (tracemalloc) of the client process while N tasks with a 100-byte payload wait
   behind a task that occupies the worker (this measure uses one worker throughout);
5. time to first result: from creating the pool to the first no-op's result (and, for
   pycrew, from ``start()``).

Every (framework, measure, repetition) runs in a fresh child process (this script
with ``--child``), so no measure inherits warm allocator arenas, threads or imports
from another. The table shows medians over ``--repeat`` runs (default 3) and the
ratios vs ProcessPoolExecutor that pycrew's targets use. Frameworks that are not
installed (or, for Ray, cannot start here) are skipped with a note; numbers that do
not fit a framework's model (joblib has no submit) print ``n/a`` with the reason.
The adapters are in ``bench_pools.py``, tables and plot in ``bench_report.py``. See
``benchmarks/README.md``.

Usage::

    python benchmarks/bench_compare.py --quick            # smoke run, small sizes
    python benchmarks/bench_compare.py --json out.json --plot out.png   # full run (quiet machine!)
    python benchmarks/bench_compare.py --only pycrew,ppe --repeat 5
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.util
import json
import math
import multiprocessing
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

import bench_report  # noqa: E402  (needs HERE on sys.path)
import tasks  # noqa: E402
from bench_pools import FRAMEWORKS, LABELS, POOLS, Pool, PycrewPool  # noqa: E402

__all__ = ["FRAMEWORKS", "MEASURES", "PycrewPool", "Sizes", "main", "setup_environment", "throughput_window"]

MEASURES: tuple[str, ...] = ("throughput", "latency", "efficiency", "memory", "first_result")
RESULT_MARK = "BENCH_RESULT "
#: Framework versions the JSON records (distribution names).
VERSIONED = (
    "pycrew",
    "pycrew-local",
    "dask",
    "distributed",
    "ray",
    "loky",
    "joblib",
    "cloudpickle",
    "pynng",
    "psutil",
    "matplotlib",
)


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
    """Submit ``n`` no-ops one by one, then gather them (the pool is warm).

    A framework without a separate submit (joblib) runs them in one call and reports
    no ``submit_per_s``.
    """
    submit_s, elapsed = pool.run_batch(tasks.noop, n)
    out = {"tasks_per_s": n / elapsed, "elapsed_s": elapsed}
    if submit_s is not None:
        out.update(submit_per_s=n / submit_s, submit_s=submit_s)
    return out


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
        call, fn, clock = pool.call, tasks.noop, time.perf_counter_ns
        samples: list[float] = []
        for _ in range(sizes.latency_trips):
            t0 = clock()
            call(fn)
            samples.append((clock() - t0) / 1000.0)
    finally:
        pool.close()
    return {
        "p50_us": percentile(samples, 0.50),
        "p99_us": percentile(samples, 0.99),
        "mean_us": statistics.fmean(samples),
        "max_us": max(samples),
    }


def sleep_ceiling(seconds: float, count: int) -> float:
    """Efficiency (%) of ``count`` calls of ``time.sleep(seconds)`` in a row, in this process.

    ``time.sleep`` overshoots (timer slack, the scheduler waking the thread): no pool's
    workers, which sleep the same way, can be more efficient than this.
    """
    t0 = time.perf_counter()
    for _ in range(count):
        time.sleep(seconds)
    return 100.0 * count * seconds / (time.perf_counter() - t0)


def measure_efficiency(pool: Pool, sizes: Sizes) -> dict[str, float]:
    """Measure 3: N tasks of ``sleep(s)``; efficiency = (N*s/W) / elapsed.

    Also ``ceiling_pct``: the same sleeps one after another in this process once the pool
    is closed (about one second of them), the most any pool could reach in this run.
    """
    pool.open()
    try:
        pool.warm_up(sizes.warmup_timeout)
        n, s = sizes.efficiency_tasks, sizes.sleep_seconds
        _, elapsed = pool.run_batch(tasks.sleep, n, s)
    finally:
        pool.close()
    ideal = n * s / pool.workers
    ceiling = sleep_ceiling(s, max(20, min(200, round(1.0 / s))))
    return {"efficiency_pct": 100.0 * ideal / elapsed, "elapsed_s": elapsed, "ideal_s": ideal, "ceiling_pct": ceiling}


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
            done = pool.count_done(futures)
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
    """Measure 5: from creating the pool to the first no-op's result (import excluded).

    For a pool built and started in two calls (pycrew: ``controller()``, then ``start()``)
    ``after_start_s`` is the time from the start call, the figure pycrew's target names.
    """
    t0 = time.perf_counter()
    pool.open()
    try:
        pool.call(tasks.noop)
        t1 = time.perf_counter()
    finally:
        pool.close()
    out = {"seconds": t1 - t0}
    if pool.started_at is not None:
        out["after_start_s"] = t1 - pool.started_at
    return out


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


def versions() -> dict[str, str]:
    """Versions of Python and of every framework and helper the benchmark can use."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine(load_start: Sequence[float]) -> dict[str, Any]:
    """The machine the run is on: CPUs, memory, Python, platform, load average at the start."""
    try:
        import psutil

        memory: int | None = int(psutil.virtual_memory().total)
    except ImportError:  # psutil is only needed by the memory measure; say "unknown" here
        memory = None
    return {
        "cpus": os.cpu_count(),
        "memory_bytes": memory,
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "architecture": platform.machine(),
        "ppe_start_method": multiprocessing.get_start_method(),
        "loadavg_start": list(load_start),
    }


def check_frameworks(frameworks: list[str], sizes: Sizes, timeout: float) -> dict[str, str]:
    """Drop the frameworks that cannot run here; returns ``{framework: why}`` for the notes.

    A framework that is not importable is skipped. Ray, which starts services of its
    own, must also start a local instance and run one task (in a child, like every run).
    """
    skipped: dict[str, str] = {}
    for framework in list(frameworks):
        why = POOLS[framework].missing()
        if why is None and framework == "ray":
            probe = spawn(framework, "first_result", sizes, min(timeout, 300.0))
            if "error" in probe:
                why = f"ray is installed but a local instance could not run a task here: {probe['error']}"
        if why is not None:
            skipped[framework] = why
            frameworks.remove(framework)
            print(f"note: skipping {LABELS[framework]}: {why}")
    return skipped


def run_all(
    frameworks: Sequence[str], measures: Sequence[str], sizes: Sizes, repeat: int, timeout: float
) -> dict[str, dict[str, Any]]:
    """Every (repetition, measure, framework) in its own child, interleaved; progress to stderr."""
    results: dict[str, dict[str, Any]] = {f: {m: {"runs": []} for m in measures} for f in frameworks}
    for rep in range(repeat):
        for measure in measures:
            for framework in frameworks:  # interleaved, so drift hits every framework alike
                head = f"  [{rep + 1}/{repeat}] {measure:<12} {LABELS[framework]:<12}"
                reason = POOLS[framework].not_applicable.get(measure)
                if reason:
                    if rep == 0:
                        print(f"{head}   n/a: {reason}", file=sys.stderr, flush=True)
                    continue
                t0 = time.perf_counter()
                out = spawn(framework, measure, sizes, timeout)
                out["loadavg_1m_after"] = os.getloadavg()[0]  # how busy the machine was
                results[framework][measure]["runs"].append(out)
                brief = out.get("error") or ", ".join(
                    f"{k}={v:.4g}" for k, v in out.items() if isinstance(v, (int, float)) and k != "loadavg_1m_after"
                )
                brief += f"  (load {out['loadavg_1m_after']:.2f})"
                if (
                    measure == "memory"
                    and "error" not in out
                    and (out["done_at_measure"] or out["gates_running"] < sizes.memory_workers)
                ):
                    brief += "  WARNING: workers were not all blocked, so tasks ran instead of queueing"
                print(f"{head} {time.perf_counter() - t0:6.1f} s  {brief}", file=sys.stderr, flush=True)
    return results


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command line."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run with small sizes (and --repeat 1 unless given)")
    ap.add_argument("--repeat", type=int, default=None, help="runs per measure; the median is reported (default 3)")
    ap.add_argument("--only", default=",".join(FRAMEWORKS), help="frameworks, comma-separated: " + ",".join(FRAMEWORKS))
    ap.add_argument("--measures", default=",".join(MEASURES), help="measures, comma-separated: " + ",".join(MEASURES))
    ap.add_argument("--workers", type=int, default=2, help="worker processes per pool (default 2)")
    ap.add_argument(
        "--sleep-seconds", type=float, default=None,
        help="length of each efficiency task (default 0.01; 0.001 for the short-task case)",
    )
    ap.add_argument("--no-tracemalloc", action="store_true", help="skip the tracemalloc pass of the memory measure")
    ap.add_argument("--child-timeout", type=float, default=1800.0, help="seconds one child may take (default 1800)")
    ap.add_argument("--json", metavar="PATH", help="save every run, medians, ratios, machine and versions as JSON")
    ap.add_argument("--plot", metavar="PATH.png", help="save a PNG plot of the table (matplotlib, Agg backend)")
    ap.add_argument("--child", nargs=3, metavar=("FRAMEWORK", "MEASURE", "SIZES"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.repeat < 1:
        ap.error(f"--repeat must be >= 1, got {args.repeat}")
    if args.workers < 1:
        ap.error(f"--workers must be >= 1, got {args.workers}")
    if args.sleep_seconds is not None and not args.sleep_seconds > 0:
        ap.error(f"--sleep-seconds must be > 0, got {args.sleep_seconds}")
    if args.plot and not args.child and importlib.util.find_spec("matplotlib") is None:
        ap.error(f"--plot {args.plot} needs matplotlib, which is not installed: pip install matplotlib")
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
    sizes = dataclasses.replace(
        QUICK_SIZES if args.quick else Sizes(), workers=args.workers, tracemalloc=not args.no_tracemalloc
    )
    if args.sleep_seconds is not None:
        sizes = dataclasses.replace(sizes, sleep_seconds=args.sleep_seconds)
    if "memory" in measures and importlib.util.find_spec("psutil") is None:
        raise SystemExit("the memory measure needs psutil (pip install psutil)")

    load_start = os.getloadavg()
    started = time.perf_counter()
    skipped = check_frameworks(frameworks, sizes, args.child_timeout)
    print(
        f"bench_compare: {', '.join(LABELS[f] for f in frameworks)}; W={sizes.workers}; repeat={args.repeat}"
        f"{' (quick sizes)' if args.quick else ''}; cpus={os.cpu_count()}; load avg {load_start[0]:.2f}"
    )
    if args.repeat < 3:
        print(f"note: --repeat {args.repeat}: medians of fewer than 3 runs are for checking that things run")
    print(f"sizes: {dataclasses.asdict(sizes)}")

    results = run_all(frameworks, measures, sizes, args.repeat, args.child_timeout)
    load_end = os.getloadavg()
    total = time.perf_counter() - started
    meta = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": args.quick,
        "repeat": args.repeat,
        "measures": measures,
        "sizes": dataclasses.asdict(sizes),
        "seconds": total,
        "command": [os.path.basename(sys.argv[0]), *(sys.argv[1:] if argv is None else argv)],
    }
    info = machine(load_start) | {"loadavg_end": list(load_end)}
    doc = bench_report.build_document(results, frameworks, skipped, meta, info, versions())
    bench_report.print_report(doc)
    print(f"\ntotal {total:.1f} s; load avg at start {load_start[0]:.2f}, at end {load_end[0]:.2f}")

    if args.json:
        with open(args.json, "w") as fh:
            json.dump(doc, fh, indent=1)
            fh.write("\n")
        print(f"saved {args.json}")
    if args.plot:
        bench_report.plot(doc, args.plot)
        print(f"saved {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
