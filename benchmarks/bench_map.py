"""``map`` over many items: time and peak memory of the client process, pycrew beside PPE.

Each case runs in a fresh child process (this script with ``--child``), which warms its
pool up, then maps ``abs`` over ``range(--tasks)`` and consumes the results, and reports
the elapsed time and its peak RSS (``ru_maxrss``) minus its RSS before the map: what
a big map costs the user's process. Cases:

- ``pycrew auto``: ``buffersize="auto"`` (the default: a window of unfinished tasks
  refilled by a feeder thread as tasks finish);
- ``pycrew None``: every task submitted at once (``concurrent.futures``' behaviour);
- ``pycrew 4096``: Python 3.14's ``buffersize=4096`` (at most 4,096 ahead of the results taken);
- ``ppe``: ``ProcessPoolExecutor.map`` with ``chunksize=1`` (every task submitted at once).

With ``--arg-bytes N`` every task carries a large argument instead: the map is over
``functools.partial(carry, blob)`` with ``blob`` N random bytes and ``carry`` defined in this
script (so pycrew ships it by value), the way ``map(partial(fit, data), params)`` does.
With ``--result-bytes N`` every task returns N bytes instead (results read in order while
the workers produce more: what the caller holds meanwhile shows in its peak memory).

Usage::

    .venv/bin/python benchmarks/bench_map.py [--tasks 200000] [--workers 2] [--cases pycrew-auto,ppe]
    .venv/bin/python benchmarks/bench_map.py --tasks 100 --arg-bytes 20000000
    .venv/bin/python benchmarks/bench_map.py --tasks 100 --result-bytes 20000000
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CASES = ("pycrew-auto", "pycrew-None", "pycrew-4096", "ppe")
MARK = "BENCH_MAP_RESULT "


def rss_bytes() -> int:
    """This process's resident memory now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def peak_bytes() -> int:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def carry(blob: bytes, x: int) -> int:
    """``abs(x)``, with a large argument along (``--arg-bytes``)."""
    return abs(x) if blob else -1


def produce(size: int, x: int) -> bytes:
    """``size`` bytes (``--result-bytes``): ``x`` in the first eight, random after."""
    return abs(x).to_bytes(8, "little") + os.urandom(size - 8)


def child(case: str, tasks: int, workers: int, arg_bytes: int = 0, result_bytes: int = 0) -> dict[str, Any]:
    """Run one case in this process and return its numbers."""
    fn: Any = functools.partial(carry, os.urandom(arg_bytes)) if arg_bytes else abs
    if result_bytes:
        fn = functools.partial(produce, max(8, result_bytes))

    def total(results: Any) -> int:
        if not result_bytes:
            return sum(results)
        return sum(int.from_bytes(r[:8], "little") for r in results)  # each result let go once read
    if case == "ppe":
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(abs, range(2000)))
            before, t0 = rss_bytes(), time.perf_counter()
            got = total(pool.map(fn, range(tasks)))
            elapsed = time.perf_counter() - t0
    else:
        import pycrew

        buffersize: Any = {"pycrew-auto": "auto", "pycrew-None": None, "pycrew-4096": 4096}[case]
        with pycrew.controller("local", workers=workers) as c:
            list(c.map(abs, range(2000)))
            before, t0 = rss_bytes(), time.perf_counter()
            got = total(c.map(fn, range(tasks), buffersize=buffersize))
            elapsed = time.perf_counter() - t0
    assert got == tasks * (tasks - 1) // 2, "wrong results"
    return {"case": case, "tasks": tasks, "elapsed_s": elapsed, "tasks_per_s": tasks / elapsed,
            "peak_growth_bytes": max(0, peak_bytes() - before)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated, from " + ", ".join(CASES))
    parser.add_argument("--arg-bytes", type=int, default=0, help="every task carries this many bytes (a partial's argument)")
    parser.add_argument("--result-bytes", type=int, default=0, help="every task returns this many bytes")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(MARK + json.dumps(child(args.child, args.tasks, args.workers, args.arg_bytes, args.result_bytes)), flush=True)
        return 0
    cases = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"--cases: unknown {unknown}; choose from {', '.join(CASES)}")
    what = f"partial(carry, <{args.arg_bytes:,} bytes>)" if args.arg_bytes else "abs"
    if args.result_bytes:
        what = f"partial(produce, {args.result_bytes:,})"
    print(f"map({what}, range({args.tasks:,})), {args.workers} workers, each case in a fresh process")
    print(f"{'case':<14} {'seconds':>9} {'tasks/s':>10} {'peak RSS growth':>16} {'bytes/task':>11}")
    for case in cases:
        cmd = [sys.executable, __file__, "--child", case, "--tasks", str(args.tasks), "--workers", str(args.workers),
               "--arg-bytes", str(args.arg_bytes), "--result-bytes", str(args.result_bytes)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        line = next((x for x in done.stdout.splitlines() if x.startswith(MARK)), None)
        if done.returncode != 0 or line is None:
            print(f"{case:<14} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
            return 1
        r = json.loads(line[len(MARK):])
        growth = r["peak_growth_bytes"]
        print(f"{case:<14} {r['elapsed_s']:>9.2f} {r['tasks_per_s']:>10,.0f} {growth / 2**20:>12.1f} MiB "
              f"{growth / args.tasks:>11,.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
