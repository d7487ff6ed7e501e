"""``pycrew demo``: estimate pi on local workers with a progress bar."""

from __future__ import annotations

import random
import sys
import time
from concurrent.futures import as_completed

from tqdm import tqdm

from pycrew.config import SEQUENTIAL, load_profile
from pycrew.control.factory import controller
from pycrew.errors import OptionsError


def count_inside(seed: int, draws: int) -> int:
    """Monte Carlo: how many of ``draws`` random points fall inside the unit quarter circle."""
    rng = random.Random(seed)
    return sum(1 for _ in range(draws) if rng.random() ** 2 + rng.random() ** 2 <= 1.0)


def run_demo(workers: int = 2, tasks: int = 200, draws: int = 20_000, launcher: str = "local") -> tuple[float, str]:
    """Run the demo (a progress bar on stdout); return the estimate of pi and a report to show.

    Raises:
        OptionsError: ``workers``, ``tasks`` or ``draws`` is not a whole number >= 1.
    """
    for name, value in (("workers", workers), ("tasks", tasks), ("draws", draws)):
        if type(value) is not int or value < 1:
            raise OptionsError(f"demo: {name} must be a whole number >= 1, got {value!r}")
    profile = load_profile(launcher) if launcher != SEQUENTIAL else None
    sequential = SEQUENTIAL in (launcher, profile and profile.launcher)
    idle = {} if sequential else {"seconds_idle": 10.0}  # the sequential controller has no workers to idle
    t0 = time.monotonic()
    inside = 0
    with controller(launcher, workers=workers, **idle) as c:
        futures = [c.submit(count_inside, seed, draws) for seed in range(tasks)]
        with tqdm(total=tasks, unit="task", desc=f"pi on {workers} {launcher} workers", file=sys.stdout) as bar:
            for future in as_completed(futures):
                inside += future.result()
                s = c.summary().controller
                bar.set_postfix(running=s.running, queued=s.queued, online=s.workers_online, refresh=False)
                bar.update(1)
        summary = c.summary()
    estimate = 4.0 * inside / (tasks * draws)
    report = f"pi ~= {estimate:.5f} from {tasks * draws:,} draws in {time.monotonic() - t0:.2f} s\n{summary}"
    return estimate, report
