"""Where a pycrew task's time goes: a per-step timeline of one round trip, and CPU per task.

Two measures, both on the local launcher with the default (socket) wire:

``timeline``
    Sequential round trips of a no-op on one warm worker (submit, wait for the result,
    repeat). Timestamps are taken at every step, in the controller and in the worker
    process (``time.perf_counter_ns`` is ``CLOCK_MONOTONIC`` on Linux, so the two
    processes' clocks agree), and the median time of each step is printed::

        caller: submit() called ............ 0
        caller: submit() returned .......... pack + future + hand to the dispatcher
        dispatcher: woke with the task ...... self-pipe wake, select() return
        dispatcher: TASKS frame sent ........ assign + encode + send()
        worker: TASKS frame read ............ kernel + worker's read
        worker: task started / ended ........ unpickle, run, pickle the result
        worker: RESULTS frame sent .......... batch + encode + send()
        dispatcher: RESULTS frame read ...... kernel + select() + read
        dispatcher: future resolved ......... decode + resolve
        caller: result() returned ........... wake the waiting thread

    The worker's steps are recorded by running it under a small wrapper interpreter
    (the local launcher's ``python=`` option) that wraps the same methods; the wrappers
    add about 1 µs per step, so the sum is a little over the untraced round trip, which
    is printed too.

``gaps``
    ``--tasks`` sleeps of ``--seconds`` (0.01) submitted at once to ``--workers`` workers,
    pycrew and :class:`concurrent.futures.ProcessPoolExecutor` in turn, ``--rounds`` times:
    per worker process, the time from one task's end to the next one's start, from the
    tasks' own ``time.monotonic()`` stamps. That gap is what ``bench_compare.py``'s
    efficiency measure loses per task besides the sleep's own overshoot.

``cpu``
    ``--tasks`` no-ops submitted one by one and gathered (the throughput case of
    ``bench_compare.py``) with ``--workers`` workers, beside
    :class:`concurrent.futures.ProcessPoolExecutor`. Each thread's and each worker
    process's CPU time is read from ``/proc/<pid>/task/<tid>/schedstat`` (nanoseconds)
    before and after, and printed as CPU µs per task per thread. On a machine with
    ``C`` cores the sum bounds throughput at ``C / sum`` tasks per second.

Usage::

    python benchmarks/profile_roundtrip.py timeline --trips 2000
    python benchmarks/profile_roundtrip.py cpu --tasks 20000 --workers 2
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import tasks
from bench_compare import setup_environment

STEPS = [
    ("submit", "caller: submit() called"),
    ("submitted", "caller: submit() returned"),
    ("woke", "dispatcher: woke with the task"),
    ("sent", "dispatcher: sends the TASKS frame"),
    ("w_read", "worker: TASKS frame read"),
    ("w_start", "worker: task started"),
    ("w_end", "worker: task ended (result pickled)"),
    ("w_sent", "worker: sends the RESULTS frame"),
    ("read", "dispatcher: RESULTS frame read"),
    ("resolved", "dispatcher: future resolved"),
    ("returned", "caller: result() returned"),
]

# Runs inside the worker process, before ``pycrew.worker``'s main: wraps the steps and
# writes their timestamps to $PYCREW_TRACE_FILE when the worker exits.
WORKER_WRAPPER = r'''
import atexit, json, os, runpy, sys, time

clock = time.perf_counter_ns
events = []
dumped = []

from pycrew.wire import protocol as p
from pycrew.worker import execution, loop

handle = loop.Worker._handle
def traced_handle(self, frame):
    if frame and frame[0] == p.TASKS:
        events.append(("w_read", clock()))
    elif frame and frame[0] == p.STOP:
        dump()  # now: the launcher may kill the worker soon after the controller's STOP
    return handle(self, frame)
loop.Worker._handle = traced_handle

run = execution.TaskRunner.run
def traced_run(self, task_id, payload):
    events.append(("w_start", clock()))
    out = run(self, task_id, payload)
    events.append(("w_end", clock()))
    return out
execution.TaskRunner.run = traced_run

send = loop.Worker._send
def traced_send(self, frame):
    if frame and frame[0] == p.RESULTS:
        events.append(("w_sent", clock()))
    send(self, frame)
loop.Worker._send = traced_send

import threading
dump_lock = threading.RLock()  # the SIGTERM handler may interrupt a dump on the main thread

def dump():
    with dump_lock:  # a SIGTERM during the STOP's dump waits for it
        if not dumped:
            write()
            dumped.append(True)

def write():
    path = os.environ["PYCREW_TRACE_FILE"] + f".{os.getpid()}"
    with open(path + ".part", "w") as f:
        json.dump(events, f)
    os.rename(path + ".part", path)  # whole or absent for the reader
atexit.register(dump)

import signal
def on_term(signum, frame):
    dump()
    os._exit(0)
signal.signal(signal.SIGTERM, on_term)  # the launcher ends its workers with SIGTERM

# argv: [this file, "-m", "pycrew.worker", worker options...]
sys.argv = ["pycrew.worker", *sys.argv[3:]]
runpy.run_module("pycrew.worker", run_name="__main__", alter_sys=True)
'''


@contextmanager
def traced_controller(events: list[tuple[str, int]]) -> Iterator[None]:
    """Wrap the controller side's steps (class attributes, undone on exit)."""
    from pycrew.control.dispatcher import Dispatcher
    from pycrew.control.futures import TaskFuture
    from pycrew.wire import protocol as p
    from pycrew.wire.transport.socket_server import SocketServer

    clock = time.perf_counter_ns
    saved: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        original = owner.__dict__[name]
        saved.append((owner, name, original))
        setattr(owner, name, make(original))

    def step(original: Any) -> Any:
        def traced(self: Any) -> None:
            if self.submissions:
                events.append(("woke", clock()))
            original(self)

        return traced

    def server_send(original: Any) -> Any:
        def traced(self: Any, link: Any, frame: bytes) -> None:
            if frame and frame[0] == p.TASKS:
                events.append(("sent", clock()))
            original(self, link, frame)

        return traced

    def frame_received(original: Any) -> Any:
        def traced(self: Any, link: Any, frame: bytes) -> None:
            if frame and frame[0] == p.RESULTS:
                events.append(("read", clock()))
            original(self, link, frame)

        return traced

    def set_result(original: Any) -> Any:
        def traced(self: Any, result: Any) -> None:
            events.append(("resolved", clock()))
            original(self, result)

        return traced

    import concurrent.futures as cf

    wrap(Dispatcher, "_step", step)
    wrap(SocketServer, "send", server_send)
    wrap(Dispatcher, "frame_received", frame_received)
    saved.append((TaskFuture, "set_result", TaskFuture.__dict__.get("set_result")))
    TaskFuture.set_result = set_result(cf.Future.set_result)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for owner, name, original in reversed(saved):
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)


def median_us(values: Sequence[int]) -> float:
    return statistics.median(values) / 1000.0


def timeline(trips: int, warmup: int) -> dict[str, Any]:
    """Sequential round trips on one warm worker, with every step timed."""
    import pycrew

    clock = time.perf_counter_ns
    # Untraced first: the round trip the timeline should explain.
    plain: list[int] = []
    with pycrew.controller("local", workers=1) as c:
        for _ in range(warmup):
            c.submit(tasks.noop).result()
        for _ in range(trips):
            t0 = clock()
            c.submit(tasks.noop).result()
            plain.append(clock() - t0)

    with tempfile.TemporaryDirectory(prefix="pycrew-trace-") as tmp:
        wrapper = os.path.join(tmp, "traced-python")
        with open(wrapper, "w") as f:
            f.write(f"#!{sys.executable}\n{WORKER_WRAPPER}")
        os.chmod(wrapper, 0o755)
        trace_file = os.path.join(tmp, "worker")
        os.environ["PYCREW_TRACE_FILE"] = trace_file
        controller_events: list[tuple[str, int]] = []
        rounds: list[dict[str, int]] = []
        try:
            with traced_controller(controller_events), pycrew.controller("local", workers=1, python=wrapper) as c:
                for _ in range(warmup):
                    c.submit(tasks.noop).result()
                for _ in range(trips):
                    controller_events.clear()
                    t0 = clock()
                    future = c.submit(tasks.noop)
                    t1 = clock()
                    future.result()
                    t2 = clock()
                    marks = dict(controller_events)
                    marks.update(submit=t0, submitted=t1, returned=t2)
                    rounds.append(marks)
        finally:
            del os.environ["PYCREW_TRACE_FILE"]
        worker_events: list[tuple[str, int]] = []
        deadline = time.monotonic() + 15.0  # the worker writes its events as it exits
        while not any(n.startswith("worker.") and not n.endswith(".part") for n in os.listdir(tmp)):
            if time.monotonic() > deadline:
                raise RuntimeError("the traced worker wrote no events (did it exit?)")
            time.sleep(0.05)
        for name in os.listdir(tmp):
            if name.startswith("worker.") and not name.endswith(".part"):
                with open(os.path.join(tmp, name)) as f:
                    worker_events.extend((k, v) for k, v in json.load(f))
    # The worker's events, in order, belong to the round whose window holds them.
    worker_events.sort(key=lambda e: e[1])
    w_iter = iter(worker_events)
    pending = next(w_iter, None)
    for marks in rounds:
        while pending is not None and pending[1] < marks["submit"]:
            pending = next(w_iter, None)
        while pending is not None and pending[1] <= marks["returned"]:
            marks.setdefault(pending[0], pending[1])
            pending = next(w_iter, None)
    complete = [m for m in rounds if all(k in m for k, _ in STEPS)]
    steps = []
    previous = "submit"
    for key, label in STEPS[1:]:
        deltas = [m[key] - m[previous] for m in complete]
        steps.append({"step": key, "label": label, "p50_us": median_us(deltas), "p90_us": statistics.quantiles(deltas, n=10)[-1] / 1000.0})
        previous = key
    totals = [m["returned"] - m["submit"] for m in complete]
    return {
        "trips": trips,
        "complete": len(complete),
        "untraced_p50_us": median_us(plain),
        "traced_p50_us": median_us(totals),
        "steps": steps,
    }


def print_timeline(out: dict[str, Any]) -> None:
    print(f"round trips: {out['trips']} ({out['complete']} with every step seen)")
    print(f"untraced round trip p50: {out['untraced_p50_us']:.1f} µs;  traced: {out['traced_p50_us']:.1f} µs")
    print(f"{'step (time since the previous one)':46} {'p50 µs':>8} {'p90 µs':>8}")
    for s in out["steps"]:
        print(f"{s['label']:46} {s['p50_us']:8.1f} {s['p90_us']:8.1f}")
    print(f"{'sum of medians':46} {sum(s['p50_us'] for s in out['steps']):8.1f}")


# -- CPU per task --------------------------------------------------------------------


def thread_cpu(pid: int) -> dict[int, int]:
    """CPU nanoseconds of every thread of ``pid`` (from schedstat)."""
    out: dict[int, int] = {}
    base = f"/proc/{pid}/task"
    for tid in os.listdir(base):
        try:
            with open(f"{base}/{tid}/schedstat") as f:
                out[int(tid)] = int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return out


def children(pid: int) -> list[int]:
    """Every descendant process of ``pid``."""
    import psutil

    return [p.pid for p in psutil.Process(pid).children(recursive=True)]


def cpu_case(name: str, submit: Callable[..., Any], gather: Callable[[list[Any]], None], n: int) -> dict[str, Any]:
    me = os.getpid()
    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    before = {me: thread_cpu(me)}
    kids = children(me)
    for pid in kids:
        before[pid] = thread_cpu(pid)
    t0 = time.perf_counter()
    futures = [submit(tasks.noop) for _ in range(n)]
    t1 = time.perf_counter()
    gather(futures)
    elapsed = time.perf_counter() - t0
    after = {pid: thread_cpu(pid) for pid in before}
    rows: list[tuple[str, float]] = []
    for pid, threads in after.items():
        per_process = 0
        for tid, ns in threads.items():
            spent = ns - before[pid].get(tid, 0)
            if pid == me:
                label = "caller (main thread)" if tid == me else names.get(tid, f"thread {tid}")
                if spent > 0.001 * n * 1000:  # ignore threads that did (almost) nothing
                    rows.append((f"controller: {label}", spent / n / 1000.0))
            else:
                per_process += spent
        if pid != me:
            rows.append((f"worker process {kids.index(pid) + 1}", per_process / n / 1000.0))
    return {
        "framework": name,
        "tasks": n,
        "tasks_per_s": n / elapsed,
        "submit_us": (t1 - t0) / n * 1e6,
        "wall_us_per_task": elapsed / n * 1e6,
        "cpu_us_per_task": dict(rows),
        "cpu_us_total": sum(v for _, v in rows),
    }


def cpu(n: int, workers: int) -> list[dict[str, Any]]:
    import pycrew

    results = []
    with pycrew.controller("local", workers=workers) as c:
        deadline = time.monotonic() + 60
        while c.summary().controller.workers_online < workers and time.monotonic() < deadline:
            [f.result() for f in [c.submit(tasks.noop) for _ in range(200)]]
        [f.result() for f in [c.submit(tasks.noop) for _ in range(2000)]]
        results.append(cpu_case("pycrew", c.submit, lambda fs: [f.result() for f in fs], n))
    with concurrent.futures.ProcessPoolExecutor(workers) as ex:
        [f.result() for f in [ex.submit(tasks.noop) for _ in range(2000)]]
        results.append(cpu_case("ProcessPoolExecutor", ex.submit, lambda fs: [f.result() for f in fs], n))
    return results


def print_cpu(results: list[dict[str, Any]]) -> None:
    cores = os.cpu_count() or 1
    for r in results:
        print(f"\n{r['framework']}: {r['tasks']} no-ops, {r['tasks_per_s']:,.0f} tasks/s "
              f"(wall {r['wall_us_per_task']:.1f} µs/task, submit loop {r['submit_us']:.1f} µs/task)")
        for label, us in sorted(r["cpu_us_per_task"].items(), key=lambda kv: -kv[1]):
            print(f"  {label:44} {us:7.1f} µs CPU/task")
        total = r["cpu_us_total"]
        print(f"  {'total':44} {total:7.1f} µs CPU/task -> at most {cores / total * 1e6:,.0f} tasks/s on {cores} cores")


def gap_case(name: str, submit: Callable[..., Any], n: int, seconds: float, workers: int,
             task: Callable[[Any], tuple[int, float, float]] = tasks.timed_sleep, arg: Any = None) -> dict[str, Any]:
    """``n`` tasks of ``seconds`` (``task(arg)``, by default ``timed_sleep(seconds)``) submitted
    at once; per worker process, the time from one task's end to the next one's start (the
    task's own timestamps)."""
    t0 = time.monotonic()
    futures = [submit(task, seconds if arg is None else arg) for _ in range(n)]
    runs = [f.result() for f in futures]
    wall = time.monotonic() - t0
    by_pid: dict[int, list[tuple[float, float]]] = {}
    for pid, began, ended in runs:
        by_pid.setdefault(pid, []).append((began, ended))
    gaps: list[float] = []
    lengths: list[float] = []
    for spans in by_pid.values():
        spans.sort()
        lengths += [e - b for b, e in spans]
        gaps += [nxt[0] - cur[1] for cur, nxt in itertools.pairwise(spans)]
    gaps.sort()
    return {
        "framework": name,
        "tasks": n,
        "seconds": seconds,
        "efficiency_pct": 100.0 * n * seconds / workers / wall,
        "task_ms_p50": statistics.median(lengths) * 1e3,
        "gap_us_p50": statistics.median(gaps) * 1e6,
        "gap_us_p90": gaps[int(0.9 * (len(gaps) - 1))] * 1e6,
        "gap_us_mean": statistics.fmean(gaps) * 1e6,
    }


def gaps(n: int, seconds: float, workers: int, rounds: int, busy: bool = False) -> list[dict[str, Any]]:
    """The gap between consecutive tasks of one worker: pycrew and ProcessPoolExecutor, alternating.

    The tasks sleep (the GIL is free while they run), or with ``busy`` do a fixed amount of
    pure-Python work calibrated here to take ``seconds`` (a worker thread that takes the GIL
    meanwhile makes the task longer: compare "task ms")."""
    import pycrew

    task: Callable[[Any], tuple[int, float, float]] = tasks.timed_work if busy else tasks.timed_sleep
    arg: Any = tasks.work_iterations(seconds) if busy else seconds
    results = []
    for _ in range(rounds):
        with pycrew.controller("local", workers=workers) as c:
            [f.result() for f in [c.submit(tasks.timed_sleep, 0.0) for _ in range(4 * workers)]]
            results.append(gap_case("pycrew", c.submit, n, seconds, workers, task, arg))
        with concurrent.futures.ProcessPoolExecutor(workers) as ex:
            [f.result() for f in [ex.submit(tasks.timed_sleep, 0.0) for _ in range(4 * workers)]]
            results.append(gap_case("ProcessPoolExecutor", ex.submit, n, seconds, workers, task, arg))
    return results


def print_gaps(results: list[dict[str, Any]]) -> None:
    print(f"{'framework':22} {'efficiency %':>12} {'task ms':>8} {'gap p50 us':>11} {'gap p90 us':>11} {'gap mean us':>12}")
    for r in results:
        print(f"{r['framework']:22} {r['efficiency_pct']:12.2f} {r['task_ms_p50']:8.3f} {r['gap_us_p50']:11.0f} "
              f"{r['gap_us_p90']:11.0f} {r['gap_us_mean']:12.0f}")
    for name in dict.fromkeys(r["framework"] for r in results):
        mine = [r["gap_us_p50"] for r in results if r["framework"] == name]
        print(f"{name}: median gap over {len(mine)} round(s) {statistics.median(mine):.0f} us")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="measure", required=True)
    t = sub.add_parser("timeline", help="per-step timeline of sequential round trips")
    t.add_argument("--trips", type=int, default=2000)
    t.add_argument("--warmup", type=int, default=200)
    c = sub.add_parser("cpu", help="CPU per task per thread and process, beside ProcessPoolExecutor")
    c.add_argument("--tasks", type=int, default=20000)
    c.add_argument("--workers", type=int, default=2)
    g = sub.add_parser("gaps", help="time between consecutive sleep tasks of a worker, beside ProcessPoolExecutor")
    g.add_argument("--tasks", type=int, default=600)
    g.add_argument("--seconds", type=float, default=0.01)
    g.add_argument("--workers", type=int, default=2)
    g.add_argument("--rounds", type=int, default=3)
    g.add_argument("--busy", action="store_true", help="tasks keep the CPU busy in Python instead of sleeping")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    setup_environment()
    if args.measure == "timeline":
        out: Any = timeline(args.trips, args.warmup)
        print_timeline(out)
    elif args.measure == "cpu":
        out = cpu(args.tasks, args.workers)
        print_cpu(out)
    else:
        out = gaps(args.tasks, args.seconds, args.workers, args.rounds, args.busy)
        print_gaps(out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
