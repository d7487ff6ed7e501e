"""Batch-scheduler launcher numbers (SLURM, SGE, PBS, LSF), measured on a running scheduler.

Prints, for ``--launcher`` (default ``slurm``; give several to compare them in one run):

1. time to first result: from the first ``push`` of a fresh controller (no worker yet) to
   its result, with the part spent submitting (until the launch hook returned);
2. time until ``--workers`` (16) workers are connected when that many are needed at once:
   the launcher's one job array per scaling round vs one submit per worker (the same
   launcher with ``array_size_max=1``);
3. scheduler commands an idle controller with those workers makes per minute, counted by
   shims in a directory given as the launcher's ``bin_directory`` that log each call and
   ``exec`` the real command; and, for comparison, how many listing calls a monitor polled
   20 times a second makes (capped by ``seconds_poll``).

Needs the scheduler's client commands and a reachable cluster, e.g. the test clusters:
``scripts/slurm/install.sh; eval "$(scripts/slurm/start.sh)"`` or
``scripts/sge/install.sh; eval "$(scripts/sge/start.sh)"``. Workers run the controller's
interpreter, so the nodes must see this Python environment; ``--host`` is the address they
dial (``127.0.0.1`` for the single-node test clusters, which are this machine).

Usage::

    python benchmarks/bench_scheduler.py --launcher slurm --launcher sge
    python benchmarks/bench_scheduler.py --workers 8 --idle-seconds 20 --json slurm.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pycrew

#: Each launcher's commands: submit, list, cancel, then the rest.
COMMANDS = {
    "slurm": ("sbatch", "squeue", "scancel", "scontrol"),
    "sge": ("qsub", "qstat", "qdel", "qconf"),
    "pbs": ("qsub", "qstat", "qdel", "qmgr"),
    "lsf": ("bsub", "bjobs", "bkill", "bparams", "lsid"),
}


def hold(seconds: float) -> float:
    """A task that keeps its worker busy, so that demand stays until every worker is up."""
    time.sleep(seconds)
    return seconds


def noop() -> None:
    """The first-result task."""


class CommandCounter:
    """Shims for a scheduler's commands in ``bin_dir`` (the launcher's ``bin_directory``): each
    call appends its name to a log and ``exec``s the real command found on ``PATH``."""

    def __init__(self, directory: Path, launcher: str) -> None:
        self.log = directory / "calls.log"
        self.log.touch()
        self.bin_dir = directory / "bin"
        self.bin_dir.mkdir()
        for name in COMMANDS[launcher]:
            real = shutil.which(name)
            if real is None:
                if name == COMMANDS[launcher][0]:
                    raise SystemExit(f"bench_scheduler: {name} not found on PATH; install the {launcher} client commands")
                continue  # an optional command (the site's array limit): the launcher copes without it
            shim = self.bin_dir / name
            shim.write_text(f'#!/bin/sh\necho "{name} $(date +%s.%N)" >> "{self.log}"\nexec "{real}" "$@"\n')
            shim.chmod(0o755)

    def mark(self) -> int:
        """A position in the log (the number of calls so far)."""
        return len(self.log.read_text().splitlines())

    def since(self, mark: int) -> Counter[str]:
        """Calls per command since ``mark``."""
        return Counter(line.split()[0] for line in self.log.read_text().splitlines()[mark:])


class LaunchTimes:
    """Observer plugin: when each controller's launch hook returned (``pycrew_worker_launched``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.times: dict[str, list[float]] = {}

    @pycrew.hookimpl
    def pycrew_worker_launched(self, launcher: pycrew.LauncherInfo, call: pycrew.WorkerCall, handle: Any) -> None:
        with self.lock:
            self.times.setdefault(call.controller_id, []).append(time.monotonic())

    def of(self, controller_id: str) -> list[float]:
        with self.lock:
            return list(self.times.get(controller_id, []))


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_scheduler: timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)


def controller(launcher: str, args: argparse.Namespace, workers: int, **kw: Any) -> pycrew.Controller:
    return pycrew.controller(
        launcher, workers=workers, host=args.host, directory=args.directory, seconds_walltime=900,
        seconds_launch=args.timeout, bin_directory=str(args.bin_directory), **kw,
    )


def first_result(launcher: str, args: argparse.Namespace, launches: LaunchTimes) -> dict[str, list[float]]:
    """Measure 1, ``--repeat`` times: push -> submit returned, push -> first result."""
    out: dict[str, list[float]] = {"submitted": [], "result": []}
    for _ in range(args.repeat):
        with controller(launcher, args, workers=1) as c:
            c.start()
            t0 = time.monotonic()
            c.push(noop)
            if not c.wait(timeout=args.timeout):
                raise SystemExit(f"bench_scheduler: no result within {args.timeout:g} s\n{c.summary()}")
            t1 = time.monotonic()
            out["submitted"].append(launches.of(c.id)[0] - t0)
            out["result"].append(t1 - t0)
    return out


def all_connected(
    launcher: str, args: argparse.Namespace, launches: LaunchTimes, counter: CommandCounter, idle: bool, arrays: bool
) -> dict[str, Any]:
    """Measure 2 for one launcher, with arrays or one submit per worker (and, with ``idle``,
    measure 3 on the same workers)."""
    n = args.workers
    extra: dict[str, Any] = {} if arrays else {"array_size_max": 1}
    c = controller(launcher, args, workers=n, seconds_idle=args.idle_seconds + 120, **extra)
    try:
        c.start()
        mark = counter.mark()
        t0 = time.monotonic()
        for _ in range(n):
            c.push(hold, (args.hold,))
        wait_for(lambda: c.summary().controller.workers_online >= n, args.timeout, f"{n} workers to connect")
        connected = time.monotonic() - t0
        submitted = [t - t0 for t in launches.of(c.id)]
        calls = counter.since(mark)
        result: dict[str, Any] = {
            "connected": connected,
            "submitted_first": min(submitted),
            "submitted_last": max(submitted),
            "submit_calls": calls[COMMANDS[launcher][0]],
        }
        if idle:
            if not c.wait(timeout=args.hold + args.timeout):
                raise SystemExit(f"bench_scheduler: the hold tasks did not finish\n{c.summary()}")
            c.collect()
            mark = counter.mark()
            time.sleep(args.idle_seconds)
            calls = counter.since(mark)
            online = c.summary().controller.workers_online
            result["idle"] = {
                "seconds": args.idle_seconds, "workers_online": online, **{k: calls[k] for k in COMMANDS[launcher]}
            }
        return result
    finally:
        c.terminate()


def monitor_polling(
    launcher: str, args: argparse.Namespace, counter: CommandCounter, seconds: float = 10.0
) -> dict[str, Any]:
    """A monitor asked 20 times a second: listing calls, capped by seconds_poll (default 1 s)."""
    monitor = pycrew.Monitor(launcher, directory=args.directory, bin_directory=str(args.bin_directory))
    mark = counter.mark()
    asked = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        monitor.list(None)
        asked += 1
        time.sleep(0.05)
    return {"seconds": seconds, "asked": asked, "listings": counter.since(mark)[COMMANDS[launcher][1]]}


def summary(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f} s"
    return f"median {statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"


def run_launcher(launcher: str, args: argparse.Namespace, launches: LaunchTimes) -> dict[str, Any]:
    """Measures 1-3 for one launcher; prints them and returns the numbers."""
    scratch = Path(tempfile.mkdtemp(prefix=f"pycrew-bench-{launcher}-"))
    args.directory = str(scratch / launcher)
    counter = CommandCounter(scratch, launcher)
    args.bin_directory = counter.bin_dir
    submit, listing = COMMANDS[launcher][:2]
    try:
        print(f"\n== {launcher} ==")
        first = first_result(launcher, args, launches)
        print("1. first push -> first result (fresh controller, 1 worker)")
        print(f"   push -> {submit} returned".ljust(28) + f": {summary(first['submitted'])}")
        print("   push -> first result".ljust(28) + f": {summary(first['result'])}")

        arrays: list[dict[str, Any]] = []
        eaches: list[dict[str, Any]] = []
        for i in range(args.repeat_connect):  # alternate, so that neither side gets the warmer caches
            arrays.append(all_connected(launcher, args, launches, counter, idle=i == 0, arrays=True))
            eaches.append(all_connected(launcher, args, launches, counter, idle=False, arrays=False))
        n = args.workers
        print(f"2. {n} workers needed at once: push of {n} tasks -> {n} workers connected")
        for label, runs in (("one array (default)", arrays), (f"{n} separate {submit} (array_size_max=1)", eaches)):
            print(
                f"   {label.ljust(38)}: {summary([r['connected'] for r in runs])}; {runs[0]['submit_calls']} {submit} "
                f"call(s), launch hook returned after {summary([r['submitted_last'] for r in runs])}"
            )
        idle = arrays[0]["idle"]
        per_minute = {k: idle[k] * 60.0 / idle["seconds"] for k in COMMANDS[launcher]}
        print(f"3. idle controller with {idle['workers_online']} connected workers, {idle['seconds']:g} s window")
        print("   calls per minute: " + ", ".join(f"{k} {per_minute[k]:.1f}" for k in COMMANDS[launcher]))
        polled = monitor_polling(launcher, args, counter)
        print(
            f"   (for comparison, a monitor asked {polled['asked']} times in {polled['seconds']:g} s ran {listing} "
            f"{polled['listings']} times: at most once per seconds_poll=1 s)"
        )
        return {"first_result": first, "array": arrays, "separate_submits": eaches, "monitor": polled}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--launcher", action="append", choices=sorted(COMMANDS), help="launcher(s) to measure (default slurm)")
    ap.add_argument("--workers", type=int, default=16, help="workers needed at once (measures 2 and 3)")
    ap.add_argument("--repeat", type=int, default=3, help="repetitions of measure 1")
    ap.add_argument("--repeat-connect", type=int, default=3, help="repetitions of measure 2 (each side, alternating)")
    ap.add_argument("--idle-seconds", type=float, default=60.0, help="idle window of measure 3")
    ap.add_argument("--hold", type=float, default=10.0, help="seconds each of the n tasks keeps its worker busy")
    ap.add_argument("--host", default="127.0.0.1", help="the address workers dial (127.0.0.1: single-node test cluster)")
    ap.add_argument("--timeout", type=float, default=120.0, help="give up on a step after this many seconds")
    ap.add_argument("--json", help="also write the numbers to this file")
    args = ap.parse_args(argv)
    launchers = args.launcher or ["slurm"]

    state = Path(tempfile.mkdtemp(prefix="pycrew-bench-state-"))
    os.environ.setdefault("PYCREW_STATE_DIR", str(state))
    launches = LaunchTimes()
    pycrew.register(launches, name="bench-scheduler-launch-times")
    results: dict[str, Any] = {}
    try:
        print(f"pycrew batch-scheduler benchmark: python {sys.version.split()[0]}, host {args.host}, "
              f"{os.cpu_count()} CPUs here, {args.workers} workers")
        for launcher in launchers:
            results[launcher] = run_launcher(launcher, args, launches)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
    finally:
        pycrew.unregister(launches)
        shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
