"""What the dashboard shows, gathered from a controller without slowing it down.

Three sources, none of which takes a lock the dispatcher holds:

- :meth:`DashboardState.on_result` runs on the dispatcher's thread for every resolved
  task: it adds the round trip to a histogram and keeps failed tasks (bounded). O(1).
- :meth:`DashboardState.sample` runs once a second on the dashboard's own thread: the
  throughput series, the launcher's events and the workers' CPU/memory samples.
- :meth:`DashboardState.snapshot` runs per request on a server thread: it adds the
  controller's :meth:`~pycrew.Controller.summary` to the above.
"""

from __future__ import annotations

import bisect
import collections
import math
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from pycrew.dashboard.events import SlotWatcher
from pycrew.dashboard.samples import WorkerSamples, metrics_source
from pycrew.metrics import MetricRow
from pycrew.results import STATUSES, Summary, TaskResult

if TYPE_CHECKING:
    from pycrew.control.controller import Controller
    from pycrew.control.tasks import Task

#: Upper bounds (seconds) of the round-trip histogram's buckets.
ROUND_TRIP_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, math.inf,
)  # fmt: skip
#: Failed tasks kept for the page.
ERRORS_MAX = 20
#: Characters of a traceback kept per failed task.
TRACEBACK_CHARS_MAX = 8000
#: Throughput points kept (one a second: ten minutes).
POINTS_MAX = 600


class RoundTrips:
    """Histogram of seconds from submit to resolution.

    One writer (the dispatcher's thread) and lock-free readers: a reader may miss the
    observation being added, never sees a torn one, and derives the count from the
    buckets so that ``_count`` always equals the ``+Inf`` bucket.
    """

    def __init__(self, bounds: tuple[float, ...] = ROUND_TRIP_BUCKETS) -> None:
        if bounds[-1] != math.inf:
            raise ValueError(f"the last bucket bound must be math.inf, got {bounds[-1]!r}")
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        """Count one round trip (dispatcher thread)."""
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds

    def cumulative(self) -> tuple[list[tuple[float, int]], float, int]:
        """``([(upper bound, observations <= bound)], sum, count)``."""
        counts = list(self.counts)
        total = self.sum
        out, running = [], 0
        for bound, n in zip(self.bounds, counts, strict=True):
            running += n
            out.append((bound, running))
        return out, total, running

    def quantile(self, q: float) -> float | None:
        """The bucket bound below which a fraction ``q`` of round trips fall (``None``: none yet)."""
        buckets, _, count = self.cumulative()
        if count == 0:
            return None
        for bound, n in buckets:
            if n >= q * count:
                return bound
        return math.inf


@dataclass(frozen=True)
class FailedTask:
    """A task that did not succeed, as the page lists it."""

    time: float
    name: str
    status: str
    error_type: str
    error: str
    traceback: str
    worker: int | None
    host: str | None
    attempts: int


def _failed(result: TaskResult) -> FailedTask:
    tb = result.traceback
    if len(tb) > TRACEBACK_CHARS_MAX:
        tb = "...\n" + tb[-TRACEBACK_CHARS_MAX:]
    return FailedTask(
        time=result.time_end or time.time(),
        name=result.name,
        status=result.status,
        error_type=result.error_type,
        error=result.error[:2000],
        traceback=tb,
        worker=result.worker,
        host=result.host,
        attempts=result.attempts,
    )


class DashboardState:
    """Everything the page and ``/metrics`` report about one controller."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.round_trips = RoundTrips()
        self.failed: collections.deque[FailedTask] = collections.deque(maxlen=ERRORS_MAX)
        self.points: collections.deque[tuple[float, float, int, int, int]] = collections.deque(maxlen=POINTS_MAX)
        self.watcher = SlotWatcher(controller.launcher, controller.options.launch_max)
        source = metrics_source(controller.options.seconds_metrics, controller.options.metrics_dir)
        self.metrics_note = source.note
        self._samples = WorkerSamples(source.directory) if source.directory else None
        self.latest: dict[int, MetricRow] = {}  # slot -> newest sample of its connected worker
        self._last: tuple[float, int] | None = None

    def on_result(self, task: Task, result: TaskResult) -> None:
        """Dispatcher thread, every resolved task: O(1), never blocks (the controller logs a raise)."""
        if task.submitted:
            self.round_trips.observe(time.monotonic() - task.submitted)
        if result.status != "success":
            self.failed.append(_failed(result))

    def sample(self, now: float) -> None:
        """Dashboard thread, once a second (``now``: monotonic): throughput, events, worker samples."""
        c = self.controller
        resolved = c.resolved
        if self._last is not None and now > self._last[0]:
            rate = (resolved - self._last[1]) / (now - self._last[0])
            summary = c.summary().controller
            self.points.append((time.time(), rate, summary.queued, summary.running, summary.workers_online))
        self._last = (now, resolved)
        self.watcher.look(now)
        if self._samples is not None:
            latest: dict[int, MetricRow] = {}
            instances = set()
            for slot in c.launcher.slots:
                instance = slot.instance
                if slot.state == "connected" and instance:
                    instances.add(instance)
                    row = self._samples.latest(instance)
                    if row is not None:
                        latest[slot.index] = row
            self._samples.keep_only(instances)
            self.latest = latest  # replaced whole: readers see the old or the new dict

    def snapshot(self, summary: Summary | None = None) -> dict[str, Any]:
        """The page's data, JSON-ready."""
        c = self.controller
        s = summary or c.summary()
        tasks = asdict(s.controller)
        slots = {slot.index: slot for slot in c.launcher.slots}
        now = time.time()
        rows = []
        for w in s.workers:
            slot = slots.get(w.worker)
            row = asdict(w)
            row["state"] = slot.state if slot is not None else "idle"
            row["running"] = w.running
            sample = self.latest.get(w.worker) if w.online else None
            row["cpu_percent"] = sample.cpu_percent if sample else None
            row["rss_bytes"] = sample.rss_bytes if sample else None
            row["sample_age"] = now - sample.time if sample else None
            rows.append(row)
        launcher = s.launcher
        error = c.launcher.error
        _, rt_sum, rt_count = self.round_trips.cumulative()
        return {
            "time": now,
            "controller": {
                "name": c.name,
                "id": c.id,
                "launcher": c.spec.name,
                "workers_max": c.options.workers,
                "seconds": tasks.pop("seconds"),
                "state": "terminated" if c._terminated else "running" if c._started else "new",
            },
            "tasks": tasks,
            "statuses": list(STATUSES),
            "workers": rows,
            "metrics_note": self.metrics_note,
            "launcher": {
                "launches": launcher.get("launches", 0),
                "launch_failures": launcher.get("launch_failures", 0),
                "last_launch_error": launcher.get("last_launch_error", ""),
                "error": str(error) if error is not None else "",
            },
            "throughput": [list(p) for p in list(self.points)],
            "round_trip": {
                "count": rt_count,
                "mean": rt_sum / rt_count if rt_count else None,
                "p50": _finite(self.round_trips.quantile(0.5)),
                "p95": _finite(self.round_trips.quantile(0.95)),
            },
            "failed": [asdict(f) for f in reversed(list(self.failed))],
            "events": self.watcher.recent(),
        }


def _finite(value: float | None) -> float | None:
    """JSON has no infinity: a quantile in the ``+Inf`` bucket is reported as ``None``."""
    return None if value is None or math.isinf(value) else value
