"""``/metrics``: a controller's counts in the Prometheus text exposition format (0.0.4).

Written by hand (no dependency), in the shape ``prometheus_client`` writes, and checked
in the tests with that client's own parser. Every sample carries the labels
``controller`` and ``launcher``; a Prometheus server scraping several controllers tells
them apart by those (or by the scrape target).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from pycrew.results import STATUSES

if TYPE_CHECKING:
    from pycrew.dashboard.state import DashboardState

#: The Content-Type of the text format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = Sequence[tuple[str, str]]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels) + "}"


class _Writer:
    def __init__(self, common: Labels) -> None:
        self.common = list(common)
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: Iterable[tuple[str, Labels, float]]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for sample_name, labels, value in samples:
            self.lines.append(f"{sample_name}{_labels([*self.common, *labels])} {_number(value)}")

    def one(self, name: str, kind: str, help_text: str, value: float) -> None:
        self.family(name, kind, help_text, [(name, (), value)])


def render(state: DashboardState) -> str:
    """The metrics of the controller behind ``state``, as Prometheus text."""
    c = state.controller
    s = c.summary()
    t = s.controller
    w = _Writer((("controller", c.name), ("launcher", c.spec.name)))
    counts = {status: getattr(t, status) for status in STATUSES}
    w.family(
        "pycrew_tasks_total",
        "counter",
        "Tasks resolved, by status.",
        [("pycrew_tasks_total", (("status", status),), n) for status, n in counts.items()],
    )
    w.one("pycrew_tasks_pushed_total", "counter", "Tasks submitted.", t.pushed)
    w.one(
        "pycrew_tasks_abandoned_total",
        "counter",
        "Tasks that will never resolve: failed by a LaunchError, or held when the controller was terminated.",
        t.abandoned,
    )
    w.one("pycrew_tasks_queued", "gauge", "Tasks waiting for a worker.", t.queued)
    w.one("pycrew_tasks_running", "gauge", "Tasks sent to a worker and not resolved yet.", t.running)
    w.one("pycrew_task_retries_total", "counter", "Times a task was requeued after its worker was lost.", t.retries)
    w.one("pycrew_workers_online", "gauge", "Workers connected now.", t.workers_online)
    w.one("pycrew_workers_launching", "gauge", "Workers launched and not connected yet.", t.workers_launching)
    w.one("pycrew_workers_max", "gauge", "Most workers running at once (the workers option).", c.options.workers)
    w.one("pycrew_worker_launches_total", "counter", "Worker launches attempted.", sum(x.launches for x in s.workers))
    w.one(
        "pycrew_worker_launch_failures_total",
        "counter",
        "Launches that never connected within seconds_launch (or whose launch failed).",
        sum(x.launch_failures for x in s.workers),
    )
    w.one(
        "pycrew_worker_crashes_total",
        "counter",
        "Worker instances lost without a goodbye.",
        sum(x.crashes for x in s.workers),
    )
    buckets, total, count = state.round_trips.cumulative()
    name = "pycrew_task_round_trip_seconds"
    samples: list[tuple[str, Labels, float]] = [
        (f"{name}_bucket", (("le", _number(bound)),), n) for bound, n in buckets
    ]
    samples += [(f"{name}_count", (), count), (f"{name}_sum", (), total)]
    w.family(name, "histogram", "Seconds from submitting a task to its resolution.", samples)
    latest = state.latest
    if latest:
        w.family(
            "pycrew_worker_cpu_percent",
            "gauge",
            "CPU use of a connected worker (and its children) at its latest sample.",
            [("pycrew_worker_cpu_percent", (("worker", str(k)),), r.cpu_percent) for k, r in sorted(latest.items())],
        )
        w.family(
            "pycrew_worker_memory_bytes",
            "gauge",
            "Resident memory of a connected worker (and its children) at its latest sample.",
            [("pycrew_worker_memory_bytes", (("worker", str(k)),), r.rss_bytes) for k, r in sorted(latest.items())],
        )
    return "\n".join(w.lines) + "\n"
