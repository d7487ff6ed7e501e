"""SLURM launcher numbers (issue 5), measured on a running SLURM cluster.

Prints:

1. time to first result: from the first ``push`` of a fresh controller (no worker yet) to
   its result, with the part spent in ``sbatch`` (until the launch hook returned);
2. time until ``--workers`` (16) workers are connected when that many are needed at once:
   the launcher's one job array per scaling round vs one ``sbatch`` per worker (a small
   launcher defined here, ``slurm-each``, that submits each call of the batch alone);
3. SLURM commands an idle controller with those workers makes per minute (``squeue``,
   ``sbatch``, ``scancel``, ``scontrol``), counted by shims put first on ``PATH`` that log each
   call and ``exec`` the real command; and, for comparison, how many ``squeue`` calls a
   monitor polled 20 times a second makes (capped by ``seconds_poll``).

Needs the SLURM client commands and a reachable cluster (``SLURM_CONF``), e.g. the test
cluster: ``scripts/slurm/install.sh; eval "$(scripts/slurm/start.sh)"``. Workers run the
controller's interpreter, so the nodes must see this Python environment; ``--host`` is the
address they dial (``127.0.0.1`` for the single-node test cluster, which is this machine).

Usage::

    python benchmarks/bench_slurm.py                      # 16 workers, 60 s idle window
    python benchmarks/bench_slurm.py --workers 8 --idle-seconds 20 --json slurm.json
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pycrew
from pycrew_slurm import SlurmOptions, plugin

COMMANDS = ("squeue", "sbatch", "scancel", "scontrol")


def hold(seconds: float) -> float:
    """A task that keeps its worker busy, so that demand stays until every worker is up."""
    time.sleep(seconds)
    return seconds


def noop() -> None:
    """The first-result task."""


class CommandCounter:
    """Shims for the SLURM commands, first on ``PATH``: each call appends its name to a log."""

    def __init__(self, directory: Path) -> None:
        self.log = directory / "calls.log"
        self.log.touch()
        bin_dir = directory / "bin"
        bin_dir.mkdir()
        for name in COMMANDS:
            real = shutil.which(name)
            if real is None:
                raise SystemExit(f"bench_slurm: {name} not found on PATH; install the SLURM client commands")
            shim = bin_dir / name
            shim.write_text(f'#!/bin/sh\necho "{name} $(date +%s.%N)" >> "{self.log}"\nexec "{real}" "$@"\n')
            shim.chmod(0o755)
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"

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


class OneSbatchPerWorker:
    """Launcher ``slurm-each``: the slurm plugin, but every call of a batch is its own ``sbatch``.

    The baseline of measure 2: what a launcher without array submission does.
    """

    name = "slurm-each"

    @pycrew.hookimpl
    def pycrew_register_launchers(self, register: Callable[..., None]) -> None:
        register(self.name, SlurmOptions, summary="slurm, one sbatch per worker (benchmark baseline)", remote=True)

    @pycrew.hookimpl
    def pycrew_launch_workers(self, launcher: pycrew.LauncherInfo, calls: Sequence[pycrew.WorkerCall]) -> list[Any]:
        cli = plugin.client(launcher)
        return [handle for call in calls for handle in cli.launch(launcher, [call])]

    @pycrew.hookimpl
    def pycrew_terminate_workers(self, launcher: pycrew.LauncherInfo, handles: Sequence[Any]) -> None:
        plugin.client(launcher).cancel(handles)

    @pycrew.hookimpl
    def pycrew_list_workers(self, launcher: pycrew.LauncherInfo, controller_id: str | None) -> list[pycrew.WorkerInfo]:
        return plugin.client(launcher).workers(controller_id)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_slurm: timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)


def controller(launcher: str, args: argparse.Namespace, workers: int, **kw: Any) -> pycrew.Controller:
    return pycrew.controller(
        launcher, workers=workers, host=args.host, directory=args.directory, seconds_time=900,
        seconds_launch=args.timeout, **kw,
    )


def first_result(args: argparse.Namespace, launches: LaunchTimes) -> dict[str, list[float]]:
    """Measure 1, ``--repeat`` times: push -> sbatch returned, push -> first result."""
    out: dict[str, list[float]] = {"submitted": [], "result": []}
    for _ in range(args.repeat):
        with controller("slurm", args, workers=1) as c:
            c.start()
            t0 = time.monotonic()
            c.push(noop)
            if not c.wait(timeout=args.timeout):
                raise SystemExit(f"bench_slurm: no result within {args.timeout:g} s\n{c.summary()}")
            t1 = time.monotonic()
            out["submitted"].append(launches.of(c.id)[0] - t0)
            out["result"].append(t1 - t0)
    return out


def all_connected(
    launcher: str, args: argparse.Namespace, launches: LaunchTimes, counter: CommandCounter, idle: bool
) -> dict[str, Any]:
    """Measure 2 for one launcher (and, with ``idle``, measure 3 on the same workers)."""
    n = args.workers
    c = controller(launcher, args, workers=n, seconds_idle=args.idle_seconds + 120)
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
            "sbatch_calls": calls["sbatch"],
        }
        if idle:
            if not c.wait(timeout=args.hold + args.timeout):
                raise SystemExit(f"bench_slurm: the hold tasks did not finish\n{c.summary()}")
            c.collect()
            mark = counter.mark()
            time.sleep(args.idle_seconds)
            calls = counter.since(mark)
            online = c.summary().controller.workers_online
            result["idle"] = {"seconds": args.idle_seconds, "workers_online": online, **{k: calls[k] for k in COMMANDS}}
        return result
    finally:
        c.terminate()


def monitor_polling(args: argparse.Namespace, counter: CommandCounter, seconds: float = 10.0) -> dict[str, Any]:
    """A monitor asked 20 times a second: squeue calls, capped by seconds_poll (default 1 s)."""
    monitor = pycrew.Monitor("slurm", directory=args.directory)
    mark = counter.mark()
    asked = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        monitor.list(None)
        asked += 1
        time.sleep(0.05)
    return {"seconds": seconds, "asked": asked, "squeue": counter.since(mark)["squeue"]}


def summary(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f} s"
    return f"median {statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=16, help="workers needed at once (measures 2 and 3)")
    ap.add_argument("--repeat", type=int, default=3, help="repetitions of measure 1")
    ap.add_argument("--repeat-connect", type=int, default=3, help="repetitions of measure 2 (each side, alternating)")
    ap.add_argument("--idle-seconds", type=float, default=60.0, help="idle window of measure 3")
    ap.add_argument("--hold", type=float, default=10.0, help="seconds each of the n tasks keeps its worker busy")
    ap.add_argument("--host", default="127.0.0.1", help="the address workers dial (127.0.0.1: single-node test cluster)")
    ap.add_argument("--timeout", type=float, default=120.0, help="give up on a step after this many seconds")
    ap.add_argument("--json", help="also write the numbers to this file")
    args = ap.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="pycrew-bench-slurm-"))
    os.environ.setdefault("PYCREW_STATE_DIR", str(scratch / "state"))
    args.directory = str(scratch / "slurm")
    counter = CommandCounter(scratch)
    launches = LaunchTimes()
    baseline = OneSbatchPerWorker()
    pycrew.register(launches, name="bench-slurm-launch-times")
    pycrew.register(baseline, name="bench-slurm-each")
    try:
        sinfo = shutil.which("sinfo")
        print(f"pycrew SLURM benchmark: SLURM_CONF={os.environ.get('SLURM_CONF', '(default)')}, python {sys.version.split()[0]}, "
              f"host {args.host}, {os.cpu_count()} CPUs here{'' if sinfo else ', no sinfo'}")
        first = first_result(args, launches)
        print("\n1. first push -> first result (fresh controller, 1 worker)")
        print(f"   push -> sbatch returned : {summary(first['submitted'])}")
        print(f"   push -> first result    : {summary(first['result'])}")

        arrays: list[dict[str, Any]] = []
        eaches: list[dict[str, Any]] = []
        for i in range(args.repeat_connect):  # alternate, so that neither side gets the warmer caches
            arrays.append(all_connected("slurm", args, launches, counter, idle=i == 0))
            eaches.append(all_connected(baseline.name, args, launches, counter, idle=False))
        n = args.workers
        print(f"\n2. {n} workers needed at once: push of {n} tasks -> {n} workers connected")
        for label, runs in (("one array (launcher)", arrays), (f"{n} separate sbatch".ljust(20), eaches)):
            print(
                f"   {label}: {summary([r['connected'] for r in runs])}; {runs[0]['sbatch_calls']} sbatch call(s), "
                f"launch hook returned after {summary([r['submitted_last'] for r in runs])}"
            )

        idle = arrays[0]["idle"]
        per_minute = {k: idle[k] * 60.0 / idle["seconds"] for k in COMMANDS}
        print(f"\n3. idle controller with {idle['workers_online']} connected workers, {idle['seconds']:g} s window")
        print("   calls per minute: " + ", ".join(f"{k} {per_minute[k]:.1f}" for k in COMMANDS))
        polled = monitor_polling(args, counter)
        print(
            f"   (for comparison, a monitor asked {polled['asked']} times in {polled['seconds']:g} s ran squeue "
            f"{polled['squeue']} times: at most once per seconds_poll=1 s)"
        )
        if args.json:
            Path(args.json).write_text(
                json.dumps({"first_result": first, "array": arrays, "separate_sbatch": eaches, "monitor": polled}, indent=2)
            )
    finally:
        pycrew.unregister(baseline)
        pycrew.unregister(launches)
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
