"""No-op throughput with a function workers import (by reference) against one defined here.

A function defined in the user's script (``__main__``), a lambda or a closure cannot be
imported by a worker: pycrew pickles it by value (cloudpickle). This prints tasks/s for
``tasks.noop`` (by reference) and for a no-op defined in this file, for pycrew and for
ProcessPoolExecutor (which, started by ``fork``, finds ``__main__`` functions in its
children by reference), each the median of ``--repeat`` runs of ``--tasks`` submits then
results; and for a no-op by value over an instance of a dataclass defined here (its class
goes by value too)::

    .venv/bin/python benchmarks/bench_by_value.py [--tasks 20000] [--repeat 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_compare
import bench_pools
import tasks


def noop_here() -> None:
    """A no-op defined in ``__main__``: pickled by value for pycrew's workers."""


@dataclasses.dataclass
class Config:
    """A dataclass of the script: an argument whose class workers cannot import."""

    a: int = 1
    b: float = 0.5
    name: str = "run"


def take_config(config: Config) -> None:
    """A no-op over a :class:`Config`."""


def throughput(pool: bench_pools.Pool, fn: object, n: int, repeat: int, *args: object) -> float:
    """Median tasks/s of ``repeat`` batches of ``n`` calls of ``fn(*args)`` on an open, warm pool."""
    rates = []
    for _ in range(repeat):
        _, elapsed = pool.run_batch(fn, n, *args)  # type: ignore[arg-type]
        rates.append(n / elapsed)
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    bench_compare.setup_environment()  # workers import ``tasks`` as this process does
    print(f"{'framework':<14} {'by reference/s':>15} {'by value/s':>12} {'ratio':>6} {'class arg/s':>12}")
    for cls in (bench_pools.PycrewPool, bench_pools.ProcessPool):
        pool = cls(args.workers)
        pool.open()
        try:
            pool.warm_up(60)
            by_ref = throughput(pool, tasks.noop, args.tasks, args.repeat)
            by_value = throughput(pool, noop_here, args.tasks, args.repeat)
            class_arg = throughput(pool, take_config, args.tasks, args.repeat, Config())
        finally:
            pool.close()
        print(f"{cls.name:<14} {by_ref:>15,.0f} {by_value:>12,.0f} {by_value / by_ref:>6.2f} {class_arg:>12,.0f}", flush=True)


if __name__ == "__main__":
    main()
