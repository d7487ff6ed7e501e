"""Profile the client side of pycrew's throughput case with cProfile.

Runs the same case as ``bench_compare.py``'s throughput measure (a warm controller
with ``--workers`` local workers; ``--tasks`` no-ops submitted one by one, then
gathered) with cProfile on around the timed window only, and prints the top
functions by cumulative and by total (own) time.

cProfile sees one thread. With ``--threads``, every thread started after the
controller is built (the dispatcher thread, the launcher's threads) gets its own
profiler as well, printed per thread; those cover the thread's whole life (warm-up
and shutdown included), not only the timed window.

Usage::

    python benchmarks/profile_pycrew.py --tasks 200          # small, while developing
    python benchmarks/profile_pycrew.py --threads --save pycrew.prof
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any

from bench_compare import PycrewPool, setup_environment, throughput_window


class ThreadProfiles:
    """Give every thread started from now on its own enabled :class:`cProfile.Profile`."""

    def __init__(self) -> None:
        self.profiles: list[tuple[str, cProfile.Profile]] = []
        self._lock = threading.Lock()

    def install(self) -> None:
        """Install the start-up hook: threads started from now on are profiled."""
        threading.setprofile(self._first_event)

    def uninstall(self) -> None:
        """Stop hooking new threads (running profilers keep going)."""
        threading.setprofile(None)  # type: ignore[arg-type,unused-ignore]

    def _first_event(self, frame: FrameType, event: str, arg: Any) -> None:
        # Runs at a new thread's first profiling event: replace this Python-level hook
        # by a C-level cProfile profiler for the rest of the thread's life.
        sys.setprofile(None)
        profile = cProfile.Profile()
        with self._lock:
            self.profiles.append((threading.current_thread().name, profile))
        profile.enable()


def print_stats(profile: cProfile.Profile, title: str, top: int, sorts: Sequence[str]) -> None:
    """Print the ``top`` rows of ``profile`` for every sort key in ``sorts``."""
    for key in sorts:
        buf = io.StringIO()
        pstats.Stats(profile, stream=buf).sort_stats(key).print_stats(top)
        lines = buf.getvalue().splitlines()
        # Drop pstats' blank lines and preamble; keep the totals line and the table.
        head = next((i for i, line in enumerate(lines) if "function calls" in line), 0)
        print(f"\n=== {title}: top {top} by {key} ===")
        print("\n".join(line for line in lines[head:] if line.strip()))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command line."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=10_000, help="no-op tasks in the timed window (default 10000)")
    ap.add_argument("--workers", type=int, default=2, help="local workers (default 2)")
    ap.add_argument("--top", type=int, default=25, help="rows per listing (default 25)")
    ap.add_argument("--threads", action="store_true", help="also profile the controller's other threads")
    ap.add_argument("--save", metavar="PATH", help="save the main thread's profile (pstats format)")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Profile one throughput run and print the listings."""
    args = parse_args(argv)
    setup_environment()
    pool = PycrewPool(args.workers)
    threads = ThreadProfiles()
    if args.threads:
        threads.install()
    pool.open()
    try:
        pool.warm_up(60.0)
        profile = cProfile.Profile()
        wall = time.perf_counter()
        profile.enable()
        numbers = throughput_window(pool, args.tasks)
        profile.disable()
        wall = time.perf_counter() - wall
    finally:
        pool.close()
        threads.uninstall()

    print(
        f"pycrew throughput: {args.tasks} no-ops, {args.workers} workers: {numbers['tasks_per_s']:,.0f} tasks/s "
        f"under the profiler (submit {numbers['submit_s']:.3f} s, total {numbers['elapsed_s']:.3f} s, wall {wall:.3f} s)"
    )
    print("note: cProfile slows Python code several-fold; compare listings, not rates, with bench_compare.py")
    sorts = ("cumulative", "tottime")
    print_stats(profile, "main thread (timed window)", args.top, sorts)
    if args.save:
        profile.dump_stats(args.save)
        print(f"\nsaved {args.save}")
    for name, thread_profile in threads.profiles:
        if pstats.Stats(thread_profile).total_calls < 1000:  # type: ignore[attr-defined]
            continue  # idle helper threads
        print_stats(thread_profile, f"thread {name} (whole life)", args.top, sorts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
